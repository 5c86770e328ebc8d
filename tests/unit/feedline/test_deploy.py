"""compose.yaml and the CLI must agree: every role command exists, every env var is a setting."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic_settings import BaseSettings
from typer.testing import CliRunner

from feedline.cli import app
from models.settings import EncoderSettings
from service.settings import ServiceSettings
from streams.embed_worker import EmbedWorkerSettings
from streams.lag_exporter import LagExporterSettings
from streams.prompt_settings import PromptWorkerSettings
from streams.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[3]
SETTINGS: list[type[BaseSettings]] = [
    KafkaSettings, PromptWorkerSettings, EmbedWorkerSettings, EncoderSettings, ServiceSettings,
    LagExporterSettings,
]  # fmt: skip


def known_env_vars() -> set[str]:
    names = set()
    for settings in SETTINGS:
        prefix = settings.model_config.get("env_prefix", "")
        names |= {f"{prefix}{field}".upper() for field in settings.model_fields}
    return names | {"FEEDLINE_LOG_LEVEL"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_every_feedline_service_runs_a_real_cli_command(compose: dict) -> None:
    runner = CliRunner()
    roles = {n: s for n, s in compose["services"].items() if s.get("build")}
    assert set(roles) == {"topics", "prompts", "embed", "serve", "lag"}
    for name, service in roles.items():
        result = runner.invoke(app, [*service["command"], "--help"])
        assert result.exit_code == 0, (name, result.output)


def test_every_feedline_env_var_in_compose_is_a_setting(compose: dict) -> None:
    known = known_env_vars()
    for name, service in compose["services"].items():
        for variable in service.get("environment") or {}:
            if variable.startswith("FEEDLINE_"):
                assert variable in known, f"{name}: {variable} is not read by any settings class"


def test_prometheus_scrapes_each_role_on_its_metrics_port(compose: dict) -> None:
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets = {
        t for job in scrape["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    }
    env = {n: s.get("environment") or {} for n, s in compose["services"].items()}
    assert targets == {
        f"prompts:{env['prompts']['FEEDLINE_PROMPTS_METRICS_PORT']}",
        f"embed:{env['embed']['FEEDLINE_EMBED_METRICS_PORT']}",
        "serve:8080",
        f"lag:{env['lag']['FEEDLINE_LAG_PORT']}",
    }


def test_world_generate_writes_jsonl_the_producer_accepts(tmp_path: Path) -> None:
    from streams.jsonl_input import read_events

    out = tmp_path / "world.jsonl"
    result = CliRunner().invoke(app, ["world", "generate", str(out), "--members", "20",
                                      "--authors", "5", "--posts", "40"])  # fmt: skip
    assert result.exit_code == 0, result.output
    events = list(read_events(out))
    assert sum(1 for e in events if type(e).__name__ == "PostCreated") == 40
    assert sum(1 for e in events if type(e).__name__ == "MemberProfile") == 20
