"""compose.yaml and the code must agree: every role command exists, every env var is a setting
with a valid value, every published port, healthcheck and scrape target is where the role
serves, state lives on volumes. deploy/kubernetes has the same checks in tests/unit/deploy."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import pytest
import yaml
from typer.testing import CliRunner

from feedline.cli import app
from tests.support.deploy_facts import (
    LOOPBACK,
    ROLES,
    SETTINGS,
    cli_accepts,
    known_env_vars,
    listen_address,
    read_settings,
    role_of,
    served_paths,
    under,
    written_dirs,
)

ROOT = Path(__file__).resolve().parents[3]
URL = re.compile(r"http://[^/:]+:(\d+)(/[^'\"\s]*)")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def roles(compose: dict) -> dict[str, dict]:
    """The services that run the feedline image."""
    return {n: s for n, s in compose["services"].items() if s.get("build")}


def environment(service: dict) -> dict[str, str]:
    """A service's environment as its process sees it (strings)."""
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def test_every_feedline_service_runs_a_real_cli_command(compose: dict) -> None:
    assert set(roles(compose)) == {"topics", "prompts", "embed", "serve", "lag"}
    for name, service in roles(compose).items():
        ok, output = cli_accepts(service["command"])
        assert ok, (name, output)
        assert role_of(service["command"]) == name


def test_every_feedline_env_var_in_compose_is_a_setting(compose: dict) -> None:
    known = known_env_vars()
    for name, service in compose["services"].items():
        for variable in service.get("environment") or {}:
            if variable.startswith("FEEDLINE_"):
                assert variable in known, f"{name}: {variable} is not read by any settings class"
    for service in roles(compose).values():
        for settings in SETTINGS:  # every value parses as the role would parse it
            read_settings(settings, environment(service))


def test_published_ports_and_healthchecks_are_where_each_role_serves(compose: dict) -> None:
    for name, service in roles(compose).items():
        if ROLES[name].settings is None:
            assert "ports" not in service and "healthcheck" not in service, name
            continue
        host, port = listen_address(name, environment(service), service["command"])
        assert host not in LOOPBACK, f"{name} listens on {host}: no other container reaches it"
        for published in service.get("ports", []):
            assert int(str(published).rsplit(":", 1)[-1]) == port, (name, published)
        if "healthcheck" in service:
            (url,) = URL.findall(" ".join(service["healthcheck"]["test"]))
            assert (int(url[0]), url[1] in served_paths(name)) == (port, True), (name, url)


def scrape_targets(job: dict) -> set[str]:
    """``host:port`` of a scrape job's static targets and DNS names (every replica)."""
    static = {t for c in job.get("static_configs", []) for t in c["targets"]}
    dns = {f"{n}:{c['port']}" for c in job.get("dns_sd_configs", []) for n in c["names"]}
    return static | dns


def test_prometheus_scrapes_each_role_on_its_metrics_port(compose: dict) -> None:
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] for t in scrape_targets(job)}
    assert targets == {
        f"{name}:{listen_address(name, environment(service), service['command'])[1]}"
        for name, service in roles(compose).items()
        if ROLES[name].settings is not None
    }


def mount_point(volume: object) -> str:
    """Where a compose volume is mounted: ``name:/path``, ``./host:/path:ro``, or ``/path``
    (an anonymous volume, one per replica)."""
    parts = str(volume).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


@pytest.mark.parametrize(
    "name",
    [
        "prompts",
        "serve",
    ],
)
def test_state_is_written_to_volumes(compose: dict, name: str) -> None:
    service = compose["services"][name]
    mounts = [mount_point(v) for v in service.get("volumes", [])]
    dirs = written_dirs(name, environment(service))
    assert dirs, f"{name} writes no state with this environment"
    for path in dirs:
        assert under(PurePosixPath(path), mounts), f"{name} writes {path}, on no volume"


def test_world_generate_writes_jsonl_the_producer_accepts(tmp_path: Path) -> None:
    from streams.jsonl_input import read_events

    out = tmp_path / "world.jsonl"
    result = CliRunner().invoke(app, ["world", "generate", str(out), "--members", "20",
                                      "--authors", "5", "--posts", "40"])  # fmt: skip
    assert result.exit_code == 0, result.output
    events = list(read_events(out))
    assert sum(1 for e in events if type(e).__name__ == "PostCreated") == 40
    assert sum(1 for e in events if type(e).__name__ == "MemberProfile") == 20


def test_replicated_roles_are_scraped_per_replica(compose: dict) -> None:
    """A role that scales (``deploy.replicas``) is discovered by DNS, not scraped as one
    static target (which would hit a random replica each time)."""
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    for name, service in roles(compose).items():
        if "replicas" in service.get("deploy", {}):  # meant to scale: embed, serve
            assert "dns_sd_configs" in jobs[f"feedline-{name}"], name


def test_the_load_balancer_fronts_every_serve_replica_and_retries_unready_ones(
    compose: dict,
) -> None:
    serve = compose["services"]["serve"]
    assert serve["deploy"]["replicas"] >= 2 and "ports" not in serve
    lb = compose["services"]["lb"]
    config = (ROOT / "deploy" / "compose" / "nginx.conf").read_text()
    port = listen_address("serve", environment(serve), serve["command"])[1]
    assert f"server serve:{port} resolve" in config
    assert lb["ports"] == [f"{port}:8080"] and "listen 8080;" in config
    assert re.search(r"proxy_next_upstream [^;]*http_503[^;]*non_idempotent;", config)
    # a rollout is per replica: never retried on another one
    admin = config[config.index("location /v1/admin/") :]
    assert "proxy_next_upstream off;" in admin[: admin.index("}")]
    assert "/v1/admin/rollout" in served_paths("serve")
    assert lb["depends_on"] == {"serve": {"condition": "service_healthy"}}
