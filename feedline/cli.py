"""The ``feedline`` command line: run roles, produce events, manage the local broker, demo.

Every role reads its settings from the environment (``FEEDLINE_*``); the options here only
override the most common ones.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from feedline.dual_cli import eval_app, train_dual_encoder_command, world_training_set_command
from feedline.dual_export_cli import export_training_set_command
from feedline.errors import FeedlineError
from feedline.export_cli import export_app
from feedline.import_cli import import_app
from feedline.lag_cli import lag_app
from feedline.logs import configure_logging, log_effective_config
from feedline.loo_cli import eval_leave_one_out_command
from feedline.snapshot_cli import snapshot_app
from feedline.topics_cli import topics_describe
from feedline.train_cli import train_app

if TYPE_CHECKING:
    from processors.token_budget import TokenMeter

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, help=__doc__)
kafka_app = typer.Typer(no_args_is_help=True, help="The local development Kafka broker.")
worker_app = typer.Typer(no_args_is_help=True, help="Pipeline workers.")
schemas_app = typer.Typer(no_args_is_help=True, help="Wire schemas.")
world_app = typer.Typer(no_args_is_help=True, help="The synthetic demo world.")
topics_app = typer.Typer(no_args_is_help=True, help="Kafka topics of the catalog.")
for sub, name in (
    (kafka_app, "kafka"),
    (worker_app, "worker"),
    (schemas_app, "schemas"),
    (world_app, "world"),
    (topics_app, "topics"),
    (snapshot_app, "snapshot"),
    (export_app, "export"),
    (train_app, "train"),
    (eval_app, "eval"),
    (lag_app, "lag"),
    (import_app, "import"),
):
    app.add_typer(sub, name=name)
train_app.command("dual-encoder")(train_dual_encoder_command)
export_app.command("training-set")(export_training_set_command)
world_app.command("training-set")(world_training_set_command)
eval_app.command("leave-one-out")(eval_leave_one_out_command)

log = logging.getLogger("feedline")
LOG_LEVEL = os.environ.get("FEEDLINE_LOG_LEVEL", "INFO")
DEFAULT_KAFKA_DIR = Path(".feedline/kafka")


@kafka_app.command("start")
def kafka_start(data_dir: Annotated[Path, typer.Option()] = DEFAULT_KAFKA_DIR) -> None:
    """Start a single-node KRaft broker in the background; prints its bootstrap address.

    A directory that already holds a broker's data restarts that broker: same cluster id, same
    ports, every topic and committed offset kept. Delete the directory to start afresh.
    """
    from streams.local_broker import LocalKafka, pid_alive

    state_file = data_dir / "broker.json"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        if pid_alive(int(state["pid"])):
            typer.echo(f"export FEEDLINE_KAFKA_BOOTSTRAP_SERVERS={state['bootstrap_servers']}")
            log.info("the broker in %s is already running (pid %s)", data_dir, state["pid"])
            return
    broker = LocalKafka(data_dir.resolve())
    restarted = broker.formatted
    bootstrap = broker.start(detach=True)
    state_file.write_text(json.dumps({"pid": broker.pid, "bootstrap_servers": bootstrap}))
    log.info("%s the broker in %s", "restarted" if restarted else "started", data_dir)
    typer.echo(f"export FEEDLINE_KAFKA_BOOTSTRAP_SERVERS={bootstrap}")


@kafka_app.command("stop")
def kafka_stop(data_dir: Annotated[Path, typer.Option()] = DEFAULT_KAFKA_DIR) -> None:
    """Stop the broker started by ``feedline kafka start`` (its data stays for a restart)."""
    from streams.local_broker import stop_pid

    state_file = data_dir / "broker.json"
    if not state_file.exists():
        raise FeedlineError(f"no broker state in {state_file}; was it started with this dir?")
    stopped = stop_pid(int(json.loads(state_file.read_text())["pid"]))
    state_file.unlink()
    typer.echo("stopped" if stopped else "was not running")


topics_app.command("describe")(topics_describe)


@topics_app.command("create")
def topics_create() -> None:
    """Create every missing topic of the catalog (idempotent)."""
    from streams.settings import KafkaSettings
    from streams.topics import ensure_topics

    created = ensure_topics(KafkaSettings())
    typer.echo(f"created {len(created)} topics" + (": " + ", ".join(created) if created else ""))


@app.command()
def produce(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    topic: Annotated[str | None, typer.Option(help="topic of bare (non-envelope) lines")] = None,
) -> None:
    """Validate and publish the events of a JSON Lines file (nothing is sent if any is bad)."""
    from streams.jsonl_input import produce_file
    from streams.producer import EventProducer
    from streams.settings import KafkaSettings

    with EventProducer(KafkaSettings()) as producer:
        counts = produce_file(file, producer, topic)
    typer.echo(json.dumps(dict(counts)))


@worker_app.command("prompts")
def worker_prompts() -> None:
    """Run the prompt processor (Faust) until SIGTERM."""
    from models.settings import EncoderSettings
    from streams.prompt_settings import PromptWorkerSettings
    from streams.prompt_worker import run_prompt_worker
    from streams.settings import KafkaSettings

    kafka, settings, encoder = KafkaSettings(), PromptWorkerSettings(), EncoderSettings()
    log_effective_config("prompts", kafka, settings, encoder)
    run_prompt_worker(kafka, settings, encoder)


@worker_app.command("embed")
def worker_embed() -> None:
    """Run the embedding worker until SIGTERM."""
    from models.settings import EncoderSettings
    from streams.embed_worker import EmbedWorkerSettings, run_embed_worker
    from streams.settings import KafkaSettings

    kafka, settings, encoder = KafkaSettings(), EmbedWorkerSettings(), EncoderSettings()
    log_effective_config("embed", kafka, settings, encoder)
    run_embed_worker(kafka, settings, encoder)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Run the index store + query service (HTTP) until SIGTERM."""
    import uvicorn

    from index_store import IndexSettings
    from models.settings import EncoderSettings
    from service.app import create_app
    from service.ranker_settings import RankerSettings
    from service.settings import ServiceSettings
    from streams.settings import KafkaSettings

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    kafka, encoder, index = KafkaSettings(), EncoderSettings(), IndexSettings()
    settings, ranker = ServiceSettings().model_copy(update=overrides), RankerSettings()
    log_effective_config("serve", kafka, settings, encoder, index, ranker)
    api = create_app(kafka, settings, encoder, index, ranker)
    uvicorn.run(api, host=settings.host, port=settings.port, log_level=settings.log_level)


@app.command()
def status(
    once: Annotated[bool, typer.Option(help="print one screen and exit")] = False,
    interval: Annotated[float, typer.Option(min=0.5, help="seconds between refreshes")] = 2.0,
    service: Annotated[str, typer.Option(help="query service URL")] = "http://127.0.0.1:8080",
    prompts_metrics: Annotated[
        str, typer.Option(help="prompt processor /metrics URL")
    ] = "http://127.0.0.1:9101/metrics",
    embed_metrics: Annotated[
        str, typer.Option(help="embedding worker /metrics URL")
    ] = "http://127.0.0.1:9102/metrics",
) -> None:
    """One screen with the pipeline's health: roles, lag, freshness p99, index, DLQ counts."""
    from rich.console import Console
    from rich.live import Live

    from feedline.status import collect_status, kafka_lag_source, render
    from streams.settings import KafkaSettings

    urls = {"prompts": prompts_metrics, "embed": embed_metrics, "serve": f"{service}/metrics"}
    lag = kafka_lag_source(KafkaSettings())
    console = Console()
    if once:
        console.print(render(collect_status(service, urls, lag)))
        return
    with (
        Live(render(collect_status(service, urls, lag)), console=console) as live,
        contextlib.suppress(KeyboardInterrupt),  # Ctrl-C ends the watch
    ):
        while True:
            time.sleep(interval)
            live.update(render(collect_status(service, urls, lag)))


@schemas_app.command("export")
def schemas_export(directory: Annotated[Path | None, typer.Argument()] = None) -> None:
    """Write the JSON Schema of every wire record (default: schemas/json) and the query API's
    OpenAPI document (service/openapi.json)."""
    from schemas.export import JSON_SCHEMA_DIR, export_json_schemas
    from service.app import build_api
    from service.openapi import OPENAPI_FILE, render_openapi

    for path in export_json_schemas(directory or JSON_SCHEMA_DIR):
        typer.echo(str(path))
    OPENAPI_FILE.write_text(render_openapi(build_api()))
    typer.echo(str(OPENAPI_FILE))


@world_app.command("generate")
def world_generate(
    out: Annotated[Path, typer.Argument(dir_okay=False)],
    seed: int = 7,
    members: int = 200,
    authors: int = 60,
    posts: int = 1000,
) -> None:
    """Write the synthetic world's events as JSON Lines for ``feedline produce``."""
    from feedline.world import WorldConfig, generate_world

    world = generate_world(WorldConfig(seed=seed, members=members, authors=authors, posts=posts))
    typer.echo(f"wrote {world.write_jsonl(out)} events to {out}")


@world_app.command("prompts")
def world_prompts(
    post: Annotated[list[str] | None, typer.Option(help="post id to render")] = None,
    member: Annotated[list[str] | None, typer.Option(help="member id to render")] = None,
    seed: int = 7,
) -> None:
    """Render prompts of the synthetic world with the prompt library (default settings)."""
    from feedline.world import WorldConfig, generate_world
    from feedline.world_prompts import member_inputs, post_inputs
    from models.encoder import load_tokenizer
    from models.settings import EncoderSettings
    from processors.prompts import PromptLibrary
    from processors.token_budget import TokenMeter
    from streams.prompt_settings import PromptWorkerSettings

    world = generate_world(WorldConfig(seed=seed))
    tokenizer, _ = load_tokenizer(EncoderSettings())
    meter = TokenMeter(tokenizer)
    library = PromptLibrary(PromptWorkerSettings().prompt_config(), meter)
    posts, members = post_inputs(world), member_inputs(world, library)
    for post_id in post or ([] if member else [world.posts[0]["post_id"]]):
        _show(f"{post_id} ({library.post_version})", library.render_post(*posts[post_id]), meter)
    for member_id in member or ([] if post else [world.members[0]["member_id"]]):
        text = library.render_member(*members[member_id])
        _show(f"{member_id} ({library.member_version})", text, meter)


def _show(title: str, prompt: str, meter: TokenMeter) -> None:
    tokens = meter.count(prompt) + meter.special_tokens
    typer.echo(f"--- {title}, {tokens} tokens ---\n{prompt}\n")


@app.command()
def demo(
    keep_running: Annotated[bool, typer.Option(help="leave the stack up for curl")] = False,
    seed: int = 7,
    members: int = 200,
    authors: int = 60,
    posts: int = 1000,
    live_posts: Annotated[int, typer.Option(help="posts published one by one to time")] = 30,
) -> None:
    """Start Kafka and the three roles, publish the world, print feeds and a JSON summary."""
    from feedline.demo import DemoConfig, run_demo

    config = DemoConfig(
        seed=seed,
        members=members,
        authors=authors,
        posts=posts,
        live_posts=live_posts,
        keep_running=keep_running,
    )
    summary = run_demo(config)
    sys.stdout.write(json.dumps(summary) + "\n")


@app.command()
def soak(
    cycles: Annotated[int, typer.Option(min=1, help="role kill cycles")] = 100,
    seed: int = 7,
    broker_restarts: Annotated[int, typer.Option(min=0, help="broker kills on top")] = 4,
    kill_min_s: Annotated[float, typer.Option(min=0.0)] = 10.0,
    kill_max_s: Annotated[float, typer.Option(min=0.0)] = 40.0,
    events_per_s: Annotated[float, typer.Option(min=0.1)] = 8.0,
    members: Annotated[int, typer.Option(min=1)] = 40,
    partitions: Annotated[int, typer.Option(min=1)] = 4,
    prompt_workers: Annotated[int, typer.Option(min=1)] = 2,
    embed_workers: Annotated[int, typer.Option(min=1)] = 2,
    serve_replicas: Annotated[int, typer.Option(min=1)] = 1,
    steps: Annotated[
        str | None,
        typer.Option(
            help="a fixed schedule instead of random kills, comma-separated: a role name "
            "(kill -9, restart), broker, +name (start a new role), -name (SIGTERM it for good)"
        ),
    ] = None,
    work_dir: Annotated[Path | None, typer.Option(help="keep broker data and logs here")] = None,
) -> None:
    """Chaos soak: kill -9 roles and the broker under a seeded workload, then check the index
    and the compacted topics against the ground truth. Last line: one JSON object; exits 1
    when anything was lost, stale or dead-lettered, a replica answered differently, a scaled
    group did not settle, or a late replica said ready before catching up."""
    from feedline.soak import LOSS_COUNTS, SoakConfig, config_json, run_soak

    if kill_max_s < kill_min_s:
        raise FeedlineError(f"--kill-max-s {kill_max_s} is below --kill-min-s {kill_min_s}")
    config = SoakConfig(
        seed=seed,
        cycles=cycles,
        broker_restarts=broker_restarts,
        kill_every_s=(kill_min_s, kill_max_s),
        events_per_s=events_per_s,
        members=members,
        partitions=partitions,
        prompt_workers=prompt_workers,
        embed_workers=embed_workers,
        serve_replicas=serve_replicas,
        victims=tuple(s.strip() for s in steps.split(",") if s.strip()) if steps else None,
        work_dir=work_dir,
    )
    log.info("soak config: %s", config_json(config))
    summary = run_soak(config)
    sys.stdout.write(json.dumps(summary) + "\n")
    if not summary["caught_up"] or any(summary[k] for k in LOSS_COUNTS):
        raise SystemExit(1)


def main() -> None:
    """Entry point: configure logging, run the command, turn feedline errors into exit 2."""
    configure_logging(LOG_LEVEL)
    try:
        app()
    except FeedlineError as error:
        log.error("%s", error)
        raise SystemExit(2) from None
