"""deploy/monitoring (alert rules, their promtool tests, the Grafana dashboard) and its wiring
into compose: rules pass promtool, every alert is tested and follows the mixin conventions,
every metric an alert or panel reads is one the code exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from service.metrics import ServiceMetrics
from streams.metrics import EmbedMetrics, PromptMetrics
from tests.support.promtool import find_promtool

ROOT = Path(__file__).resolve().parents[3]
MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "alerts" / "feedline.rules.yaml"
RULE_TESTS = MONITORING / "tests" / "feedline.rules.test.yaml"
DASHBOARD = MONITORING / "dashboards" / "feedline.json"
LAG_EXPORTER = ROOT / "streams" / "lag_exporter.py"
# The lag exporter's names, for as long as streams/lag_exporter.py does not exist.
LAG_EXPORTER_NAMES = {"kafka_consumergroup_lag", "kafka_consumergroup_lag_seconds"}
PROMETHEUS_BUILTINS = {"up"}
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "gauge": ("",),
}
# Grafana's interval variables, replaced by a duration so promtool can parse panel queries.
GRAFANA_VARIABLES = re.compile(r"\$(__rate_interval|__interval|__range)\b|\$\{[^}]+\}")


@pytest.fixture(scope="module")
def promtool() -> str:
    """The path scripts/promtool.sh finds or fetches (Debian's prometheus package)."""
    return find_promtool()


def run_promtool(promtool: str, *args: str | Path) -> str:
    result = subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(map(str, args))} failed:\n{output}"
    return output


@pytest.fixture(scope="module")
def alerts() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict) -> Iterator[dict]:
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_exprs(dashboard: dict) -> list[str]:
    return [target["expr"] for panel in panels(dashboard) for target in panel["targets"]]


def test_rules_pass_promtool_check(promtool: str, alerts: list[dict]) -> None:
    output = run_promtool(promtool, "check", "rules", RULES)
    assert f"SUCCESS: {len(alerts)} rules found" in output, output


def test_rule_unit_tests_pass(promtool: str) -> None:
    run_promtool(promtool, "test", "rules", RULE_TESTS)


def test_every_alert_is_tested_firing_and_not_firing(alerts: list[dict]) -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    for alert in alerts:
        name = alert["alert"]
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case.get("exp_alerts") for case in mine), f"no test where {name} fires"
        assert any(not case.get("exp_alerts") for case in mine), f"no test where {name} is quiet"
    tested = {case["alertname"] for case in cases}
    assert tested <= {a["alert"] for a in alerts}, "tests of alerts that no longer exist"


def test_alerts_follow_the_mixin_conventions(alerts: list[dict]) -> None:
    header = RULES.read_text().split("groups:")[0]
    for alert in alerts:
        name = alert["alert"]
        assert re.fullmatch(r"Feedline(?:[A-Z][a-z0-9]*|[A-Z]+(?![a-z]))+", name), name
        assert alert["labels"]["severity"] in {"warning", "critical"}, name
        assert alert["annotations"]["summary"].strip(), name
        assert "{{" in alert["annotations"]["description"], f"{name}: say which and how much"
        assert name in header, f"{name}: list its threshold in the comment block at the top"
    assert len({a["alert"] for a in alerts}) == len(alerts), "duplicate alert names"


def test_dashboard_panels_each_query_prometheus(dashboard: dict) -> None:
    assert dashboard["schemaVersion"] >= 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(dashboard):
        title = panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        assert panel["targets"], f"{title}: no query"
        for target in panel["targets"]:
            assert target["expr"].strip(), f"{title}: empty expr"
            assert target["datasource"]["uid"] == "${datasource}", title


def test_dashboard_queries_are_valid_promql(promtool: str, dashboard: dict, tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:panel_{n}", "expr": GRAFANA_VARIABLES.sub("5m", expr)}
        for n, expr in enumerate(panel_exprs(dashboard))
    ]
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_promtool(promtool, "check", "rules", path)


def exported_names() -> set[str]:
    """Every sample name the roles' registries and the lag exporter can expose."""
    families = []
    for role in (PromptMetrics, EmbedMetrics, ServiceMetrics):  # serve: index, rollouts too
        registry = CollectorRegistry()  # one per role, as each process has
        role(registry)
        families += [(m.name, m.type) for m in registry.collect()]
    names = {name + suffix for name, kind in families for suffix in SUFFIXES.get(kind, ("",))}
    return names | lag_exporter_names() | PROMETHEUS_BUILTINS


def lag_exporter_names() -> set[str]:
    if not LAG_EXPORTER.exists():
        return LAG_EXPORTER_NAMES
    pattern = re.compile(r"(Gauge|Counter|Histogram|Summary)MetricFamily\(\s*\"([a-z_:]+)\"")
    found = pattern.findall(LAG_EXPORTER.read_text())
    return {name + suffix for kind, name in found for suffix in SUFFIXES[kind.lower()]}


def metric_names(expr: str) -> set[str]:
    """Names in ``expr`` that look like ours (label values and strings left out)."""
    expr = re.sub(r'"[^"]*"', '""', expr)
    tokens = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {t for t in tokens if t.startswith(("feedline_", "kafka_")) or t == "up"}


def test_every_metric_an_alert_or_panel_reads_is_exported(
    alerts: list[dict], dashboard: dict
) -> None:
    known = exported_names()
    exprs = [a["expr"] for a in alerts] + panel_exprs(dashboard)
    used = {name for expr in exprs for name in metric_names(expr)}
    assert used, "no metric names found: the extraction is broken"
    assert used <= known, f"not exported by any role: {sorted(used - known)}"


def test_readme_lists_every_alert_and_panel(alerts: list[dict], dashboard: dict) -> None:
    readme = (MONITORING / "README.md").read_text()
    for alert in alerts:
        assert f"`{alert['alert']}`" in readme, alert["alert"]
    for panel in panels(dashboard):
        assert panel["title"] in readme, panel["title"]
        for target in panel["targets"]:
            assert target["expr"] in readme, target["expr"]


def test_role_down_names_every_feedline_scrape_job(alerts: list[dict]) -> None:
    """absent() needs each job by name: a job added to or renamed in deploy/prometheus.yml
    must be in FeedlineRoleDown, or that role going away entirely would never alert."""
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in scrape["scrape_configs"]}
    (role_down,) = [a for a in alerts if a["alert"] == "FeedlineRoleDown"]
    absent = set(re.findall(r'absent\(up\{job="([^"]+)"\}\)', role_down["expr"]))
    assert absent == {job for job in jobs if job.startswith("feedline-")}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def mounts(service: dict) -> dict[str, Path]:
    """Container path -> host path of a compose service's bind mounts."""
    pairs = (volume.split(":")[:2] for volume in service.get("volumes", []))
    return {container: ROOT / host for host, container in pairs}


def test_prometheus_in_compose_loads_the_rules(
    promtool: str, compose: dict, tmp_path: Path
) -> None:
    """Rebuild /etc/prometheus from the compose mounts and let promtool check the config,
    which also loads the rule files it names."""
    for container, host in mounts(compose["services"]["prometheus"]).items():
        target = tmp_path / Path(container).relative_to("/etc/prometheus")
        if host.is_dir():
            shutil.copytree(host, target)
        else:
            shutil.copy(host, target)
    output = run_promtool(promtool, "check", "config", tmp_path / "prometheus.yml")
    assert f"{RULES.name}" in output, output


def test_prometheus_scrapes_the_lag_exporter_on_its_port(compose: dict) -> None:
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    lag = compose["services"]["lag"]
    assert lag["command"] == ["lag", "serve"]
    port = lag["environment"]["FEEDLINE_LAG_PORT"]
    assert jobs["feedline-lag"]["static_configs"] == [{"targets": [f"lag:{port}"]}]
    assert lag["environment"]["FEEDLINE_LAG_HOST"] == "0.0.0.0"


def test_grafana_provisioning_matches_the_compose_mounts(compose: dict) -> None:
    grafana = compose["services"]["grafana"]
    volumes = mounts(grafana)
    provisioning = volumes["/etc/grafana/provisioning"]
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    (source,) = sources["datasources"]
    port = compose["services"]["prometheus"]["ports"][0].split(":")[-1]
    assert (source["type"], source["url"]) == ("prometheus", f"http://prometheus:{port}")
    providers = yaml.safe_load((provisioning / "dashboards" / "feedline.yaml").read_text())
    (provider,) = providers["providers"]
    dashboards = provider["options"]["path"]
    assert volumes[dashboards] == DASHBOARD.parent
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DASHBOARD.parent / Path(home).relative_to(dashboards)).is_file()
