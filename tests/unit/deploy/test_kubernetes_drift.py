"""deploy/kubernetes and the code agree, in every overlay: each container runs a real
``feedline`` command, each ``FEEDLINE_*`` variable is a setting with a valid value, each port,
probe and Service reaches what the role serves, state lives on volumes, the KEDA triggers
watch the roles' real consumer groups and topics, capped at the partitions, and Prometheus
finds every role under the job its alerts select on."""

from __future__ import annotations

import re

import pytest
import yaml

from streams.settings import KafkaSettings
from tests.support.deploy_facts import (
    LOOPBACK,
    ROLES,
    SETTINGS,
    cli_accepts,
    consumer_group,
    known_env_vars,
    listen_address,
    read_settings,
    role_of,
    served_paths,
    under,
    written_dirs,
)
from tests.support.k8s_tools import KUBERNETES, ROOT, K8sTools
from tests.unit.deploy.manifests import OVERLAYS, Container, Manifests, Obj, selects

SCALED_ROLES = {"prompts", "embed"}
KEDA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}
FOUND_FROM_ENV = "FromEnv"
POD_IP = "pod-ip"  # any host: the relabelling keeps it and swaps the port

pytestmark = pytest.mark.parametrize("overlay", OVERLAYS)


def test_every_container_runs_a_real_feedline_command(builds: dict[str, Manifests], overlay: str):
    roles = set()
    for c in builds[overlay].containers():
        assert "command" not in c.spec, f"{c.where}: keep the image's entrypoint (feedline)"
        ok, output = cli_accepts(c.spec["args"])
        assert ok, f"{c.where}: feedline {' '.join(c.spec['args'])}: {output}"
        roles.add(role_of(c.spec["args"]))
    assert roles == set(ROLES)


def test_every_feedline_variable_is_a_setting_with_a_valid_value(
    builds: dict[str, Manifests], overlay: str
) -> None:
    manifests, known = builds[overlay], known_env_vars()
    for c in manifests.containers():
        names = {v["name"] for v in c.spec.get("env", [])}
        for _, _, data in manifests.env_sources(c.spec):
            names |= set(data or {})
        unknown = {n for n in names if n.startswith("FEEDLINE_") and n not in known}
        assert unknown == set(), f"{c.where}: {sorted(unknown)} are read by no settings class"
        for settings in SETTINGS:  # every value parses as the role would parse it
            read_settings(settings, c.env)


def test_ports_and_probes_are_where_each_role_serves(builds: dict[str, Manifests], overlay: str):
    for c in builds[overlay].containers():
        role = role_of(c.spec["args"])
        if ROLES[role].settings is None:
            assert not c.ports and not list(c.probes()), f"{c.where} serves nothing"
            continue
        host, port = listen_address(role, c.env, c.spec["args"])
        assert host not in LOOPBACK, f"{c.where} listens on {host}: probes cannot reach it"
        assert set(c.ports.values()) == {port}, f"{c.where}: {role} serves on {port}"
        for kind, probe in c.probes():
            action = probe.get("httpGet") or probe["tcpSocket"]
            assert c.port_number(action["port"]) == port, f"{c.where} {kind}: {action}"
            if "httpGet" in probe:
                assert probe["httpGet"]["path"] in served_paths(role), f"{c.where} {kind}"
        annotations = c.pod["metadata"].get("annotations", {})
        assert annotations.get("prometheus.io/scrape") == "true", c.where
        assert annotations["prometheus.io/port"] == str(port), c.where
        assert annotations["prometheus.io/path"] in served_paths(role), c.where


def test_the_query_service_is_ready_when_caught_up_and_live_while_its_feed_runs(
    builds: dict[str, Manifests], overlay: str
) -> None:
    probes = dict(builds[overlay].container_of("Deployment", "feedline-serve").probes())
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_every_service_port_reaches_a_container_port(builds: dict[str, Manifests], overlay: str):
    manifests = builds[overlay]
    for service in manifests.of_kind("Service"):
        selector = service["spec"]["selector"]
        backends = [
            c for c in manifests.containers() if selects(selector, c.pod["metadata"]["labels"])
        ]
        assert backends, f"Service/{service['metadata']['name']} selects no pod"
        for port in service["spec"]["ports"]:
            for c in backends:
                assert c.port_number(port["targetPort"]) is not None, (service, c.where)


def test_state_is_on_volumes_and_prompt_workers_have_stable_ids(
    builds: dict[str, Manifests], overlay: str
) -> None:
    manifests = builds[overlay]
    for c in manifests.containers():
        for path in written_dirs(role_of(c.spec["args"]), c.env):
            assert under(path, list(c.mounts())), f"{c.where} writes {path}, on no volume"
    prompts = manifests.container_of("StatefulSet", "feedline-prompts")
    claims = {t["metadata"]["name"] for t in prompts.workload["spec"]["volumeClaimTemplates"]}
    (data_dir,) = written_dirs("prompts", prompts.env)
    mount = next(m for m in prompts.mounts() if under(data_dir, [m]))
    assert prompts.mounts()[mount] in claims, "the RocksDB tables need a volume per pod"
    (instance,) = [v for v in prompts.spec["env"] if v["name"] == "FEEDLINE_PROMPTS_INSTANCE_ID"]
    assert instance["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_keda_scales_the_workers_on_their_real_groups_up_to_the_partitions(
    k8s_tools: K8sTools, builds: dict[str, Manifests], overlay: str
) -> None:
    manifests, params = builds[overlay], k8s_tools.kafka_scaler_params()
    scaled = set()
    for obj in manifests.of_kind("ScaledObject"):
        ref = obj["spec"]["scaleTargetRef"]
        target = manifests.container_of(ref["kind"], ref["name"])
        role = role_of(target.spec["args"])
        group = consumer_group(role, target.env)
        triggers = obj["spec"]["triggers"]
        watched = {(t["metadata"]["consumerGroup"], t["metadata"]["topic"]) for t in triggers}
        assert watched == {(group.group, topic) for topic in group.topics}, obj["metadata"]
        partitions = read_settings(KafkaSettings, target.env).partitions
        assert obj["spec"]["maxReplicaCount"] == partitions, "partitions are the unit of scale"
        for trigger in triggers:
            assert trigger["type"] == "kafka"
            _check_trigger_metadata(trigger["metadata"], params, target)
            name = trigger["authenticationRef"]["name"]
            assert manifests.get("TriggerAuthentication", name), f"no TriggerAuthentication {name}"
        scaled.add(role)
    assert scaled == SCALED_ROLES


def test_keda_authenticates_as_the_workers_do(
    k8s_tools: K8sTools, builds: dict[str, Manifests], overlay: str
) -> None:
    manifests, params = builds[overlay], k8s_tools.kafka_scaler_params()
    kafka = read_settings(KafkaSettings, manifests.container_of("Deployment", "feedline-embed").env)
    for auth in manifests.of_kind("TriggerAuthentication"):
        values = {}
        for key, kind in (("secretTargetRef", "Secret"), ("configMapTargetRef", "ConfigMap")):
            for ref in auth["spec"].get(key, []):
                assert "authParams" in params[ref["parameter"]], ref
                data = manifests.data(kind, ref["name"])
                assert data is None or ref["key"] in data, f"{kind}/{ref['name']} lacks {ref}"
                values[ref["parameter"]] = (data or {}).get(ref["key"], ref["key"])
        assert values.get("sasl") == KEDA_SASL.get(kafka.sasl_mechanism or ""), values
        assert values.get("tls", "disable") == (
            "enable" if kafka.security_protocol in ("SSL", "SASL_SSL") else "disable"
        )
        if "username" in values:  # the workers' own credentials, not a second copy
            assert (values["username"], values["password"]) == (
                kafka.sasl_username,
                kafka.sasl_password_value(),
            )


def test_prometheus_finds_each_role_under_the_job_its_alerts_select(
    builds: dict[str, Manifests], overlay: str
) -> None:
    config = yaml.safe_load((KUBERNETES / "prometheus" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    compose_jobs = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    expected = {j["job_name"] for j in compose_jobs["scrape_configs"]}
    targets = {}
    for c in builds[overlay].containers():
        for port in c.ports.values():
            labels = _relabel(job["relabel_configs"], _pod_discovery(c, port, job["job_name"]))
            if labels is not None:
                targets[labels["job"]] = (labels["__address__"], labels["__metrics_path__"])
    assert set(targets) == expected
    for c in builds[overlay].containers():
        annotations = c.pod["metadata"].get("annotations", {})
        if "prometheus.io/port" in annotations:
            job_name = f"feedline-{c.pod['metadata']['labels']['app.kubernetes.io/component']}"
            address = f"{POD_IP}:{annotations['prometheus.io/port']}"
            assert targets[job_name] == (address, annotations["prometheus.io/path"])


def _check_trigger_metadata(
    metadata: dict[str, str], params: dict[str, set[str]], target: Container
) -> None:
    for key, value in metadata.items():
        if key.endswith(FOUND_FROM_ENV):
            param = key.removesuffix(FOUND_FROM_ENV)
            assert "resolvedEnv" in params.get(param, set()), f"KEDA has no {key}"
            assert value in target.env, f"{key}: {target.where} has no {value}"
            assert value in known_env_vars(), value
        else:
            assert "triggerMetadata" in params.get(key, set()), f"KEDA's kafka scaler has no {key}"


def _pod_discovery(c: Container, port: int, job_name: str) -> dict[str, str]:
    """The labels Prometheus's kubernetes_sd (role: pod) gives one container port."""
    meta = c.pod["metadata"]
    labels = {
        "__address__": f"{POD_IP}:{port}",
        "__metrics_path__": "/metrics",
        "job": job_name,
        "__meta_kubernetes_namespace": c.workload["metadata"].get("namespace", "default"),
        "__meta_kubernetes_pod_name": f"{c.workload['metadata']['name']}-0",
        "__meta_kubernetes_pod_container_port_number": str(port),
    }
    for prefix, values in (("label", meta["labels"]), ("annotation", meta.get("annotations", {}))):
        for key, value in values.items():
            labels[f"__meta_kubernetes_pod_{prefix}_{re.sub(r'[^a-zA-Z0-9_]', '_', key)}"] = value
    return labels


def _relabel(rules: list[Obj], labels: dict[str, str]) -> dict[str, str] | None:
    """Prometheus's keep and replace relabelling (the actions the config uses)."""
    for rule in rules:
        value = rule.get("separator", ";").join(labels.get(s, "") for s in rule["source_labels"])
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        action = rule.get("action", "replace")
        if action == "keep":
            if not match:
                return None
        elif action == "replace":
            if match:
                replacement = re.sub(r"\$(\d+)", r"\\\1", rule.get("replacement", "$1"))
                labels[rule["target_label"]] = match.expand(replacement)
        else:
            raise AssertionError(f"relabel action {action} is not modelled here")
    return labels
