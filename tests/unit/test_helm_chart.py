"""The Helm chart ``deploy/helm/cxpulse``, rendered by a real Helm and checked object by object.

Helm is built by the Makefile (``make helm``: ``go install helm.sh/helm/v3/cmd/helm@<version>`` into
``.local/bin``; ``CXPULSE_HELM`` names it). ``helm lint --strict`` and ``helm template`` must pass; the rendered
built-in objects are validated against the Kubernetes OpenAPI schemas of ``kubernetes-validate`` (offline,
strict: an unknown field fails); the Prometheus Operator objects are checked for what they must do: the
PrometheusRule holds exactly the groups of ``deploy/prometheus/rules`` (and promtool accepts them), the
ServiceMonitor selects the worker Service's metrics port. No container runs without requests and limits.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from cxpulse.settings import Settings, load_settings
from cxpulse.wallboard.boards import Boards
from cxpulse.wallboard.server import bind_host

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "cxpulse"
RULES = ROOT / "deploy" / "prometheus" / "rules"
DASHBOARDS = ROOT / "grafana" / "dashboards"
HELM_VERSION = re.search(r"^HELM_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1)
HELM = os.environ.get("CXPULSE_HELM") or str(ROOT / ".local" / "bin" / f"helm-{HELM_VERSION}")
# the oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and the newest schemas shipped
KUBE_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
WIKI = "https://wiki.internal.test/ops/cxpulse-runbooks"


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    assert Path(HELM).is_file(), f"{HELM} not found: `make helm` builds it (go install helm.sh/helm/v3/cmd/helm@{HELM_VERSION})"
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HELM_CACHE_HOME": "/tmp/cxpulse-helm-cache",
                               "HELM_CONFIG_HOME": "/tmp/cxpulse-helm-config",
                               "HELM_DATA_HOME": "/tmp/cxpulse-helm-data"})


# the chart renders no wallboard that would bind to its pod's loopback: a token Secret is the usual choice
TOKEN = "wallboard.token.name=cxpulse-wallboard"


def template(*sets: str) -> subprocess.CompletedProcess[str]:
    # a go-install build of Helm assumes Kubernetes 1.20 unless told (its release builds stamp a newer one)
    argv = ["template", "cx", str(CHART), "--namespace", "contact-centre", "--kube-version", "1.30.0"]
    for item in sets:
        argv += ["--set", item]
    return helm(*argv)


def render(*sets: str) -> list[dict[str, Any]]:
    done = template(*sets)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render(TOKEN)


@pytest.fixture(scope="module")
def everything() -> list[dict[str, Any]]:
    """Every optional part on: Ingress with TLS, secrets by reference, a storage class, operator labels."""
    return render(TOKEN, "wallboard.token.key=board-token", "wallboard.adminToken.name=cxpulse-wallboard-admin",
                  "ingress.enabled=true", "ingress.tls[0].secretName=wallboard-tls",
                  "ingress.tls[0].hosts[0]=wallboard.example.internal",
                  "secrets.redisUrl.name=cxpulse-redis", "secrets.kafkaSaslPassword.name=cxpulse-kafka",
                  "worker.persistence.storageClassName=fast-ssd", "serviceMonitor.labels.release=kps",
                  f"prometheusRule.runbookBaseUrl={WIKI}/")


def one(objects: list[dict[str, Any]], kind: str, component: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind
             and (component is None or o["metadata"]["labels"].get("app.kubernetes.io/component") == component)]
    assert len(found) == 1, f"{kind}/{component}: {len(found)} rendered"
    return found[0]


# ------------------------------------------------------------------------------------------------ helm itself
def test_helm_is_the_pinned_version() -> None:
    done = helm("version", "--short")
    assert done.returncode == 0, done.stderr
    # a go-install build reports the version of its source, without the patch level of the module (v3.22)
    reported = done.stdout.strip().split("+")[0]
    assert re.fullmatch(r"v3\.\d+(\.\d+)?", reported) and HELM_VERSION.startswith(reported), done.stdout


def test_helm_lint_strict_passes() -> None:
    done = helm("lint", str(CHART), "--strict", "--kube-version", "1.30.0", "--set", TOKEN)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


def test_helm_lint_catches_a_broken_template(tmp_path: Path) -> None:
    """The lint above means something: the same chart with one unclosed action fails it."""
    broken = tmp_path / "cxpulse"
    shutil.copytree(CHART, broken)
    service = broken / "templates" / "worker-service.yaml"
    service.write_text(service.read_text(encoding="utf-8").replace("{{ .Values.worker.port }}", "{{ .Values.worker.port "),
                       encoding="utf-8")
    done = helm("lint", str(broken), "--strict", "--set", TOKEN)
    assert done.returncode != 0
    assert "worker-service.yaml" in done.stdout + done.stderr


def test_chart_copies_of_rules_and_dashboards_are_current() -> None:
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").is_dir() else "python3",
                           str(ROOT / "deploy" / "helm" / "sync_files.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------------------------------------ what is rendered
def test_the_objects_a_platform_team_expects(objects: list[dict[str, Any]], everything: list[dict[str, Any]]) -> None:
    kinds = Counter(o["kind"] for o in objects)
    assert kinds == Counter({"ConfigMap": 4, "StatefulSet": 1, "Service": 2, "PodDisruptionBudget": 1,
                             "Deployment": 1, "NetworkPolicy": 2, "ServiceMonitor": 1, "PrometheusRule": 1})
    assert Counter(o["kind"] for o in everything) == kinds + Counter({"Ingress": 1})
    assert all(o["metadata"]["name"].startswith("cx-cxpulse") for o in objects)


def test_built_in_objects_validate_against_the_kubernetes_schemas(everything: list[dict[str, Any]]) -> None:
    checked = 0
    for version in KUBE_VERSIONS:
        for obj in everything:
            if obj["kind"] in OPERATOR_KINDS:
                continue
            kubernetes_validate.validate(obj, version, strict=True)
            checked += 1
    assert checked == 2 * (len(everything) - 2)


def test_the_schema_check_refuses_a_wrong_field(objects: list[dict[str, Any]]) -> None:
    broken = json.loads(json.dumps(one(objects, "StatefulSet", "worker")))
    broken["spec"]["replica"] = 2  # a typo of replicas
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(broken, KUBE_VERSIONS[-1], strict=True)


def test_worker_statefulset_keeps_its_state_and_its_budget(everything: list[dict[str, Any]]) -> None:
    sts = one(everything, "StatefulSet", "worker")
    spec = sts["spec"]
    assert spec["serviceName"] == one(everything, "Service", "worker")["metadata"]["name"]
    [claim] = spec["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data" and claim["spec"]["storageClassName"] == "fast-ssd"
    container = spec["template"]["spec"]["containers"][0]
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = {e["name"]: e for e in container["env"]}
    assert env["CXPULSE_REDIS__URL"]["valueFrom"]["secretKeyRef"] == {"name": "cxpulse-redis", "key": "url"}
    assert env["CXPULSE_KAFKA__SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "cxpulse-kafka"
    # static group membership by pod name: a pod restarted after a crash takes its partitions back at once
    assert env["CXPULSE_WORKER__GROUP_INSTANCE_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    pdb = one(everything, "PodDisruptionBudget", "worker")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert pdb["spec"]["maxUnavailable"] == 1


def test_settings_configmap_is_a_settings_file_cxpulse_loads(objects: list[dict[str, Any]], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-settings"))
    path = tmp_path / "settings.yaml"
    path.write_text(config["data"]["settings.yaml"], encoding="utf-8")
    for key in list(os.environ):
        if key.startswith("CXPULSE_"):
            monkeypatch.delenv(key)
    settings = load_settings(path)
    assert (settings.worker.web_host, settings.worker.web_port, settings.worker.data_dir) == ("0.0.0.0", 6066, "/data")
    assert (settings.wallboard.host, settings.wallboard.port) == ("0.0.0.0", 8088)
    assert settings.kafka.partitions == 8


def test_no_container_runs_without_requests_and_limits(everything: list[dict[str, Any]]) -> None:
    workloads = [o for o in everything if o["kind"] in ("StatefulSet", "Deployment")]
    assert len(workloads) == 2
    for obj in workloads:
        pod = obj["spec"]["template"]["spec"]
        for container in pod["containers"] + pod.get("initContainers", []):
            resources = container.get("resources", {})
            for side in ("requests", "limits"):
                assert set(resources.get(side, {})) >= {"cpu", "memory"}, (obj["kind"], container["name"], side)
            assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_ingress_serves_the_wallboard_with_sse_safe_settings(everything: list[dict[str, Any]]) -> None:
    ingress = one(everything, "Ingress", "wallboard")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == one(everything, "Service", "wallboard")["metadata"]["name"]
    assert ingress["spec"]["tls"][0]["secretName"] == "wallboard-tls"


def test_network_policies_admit_prometheus_to_the_worker_only_on_its_port(objects: list[dict[str, Any]]) -> None:
    policy = one(objects, "NetworkPolicy", "worker")
    sts = one(objects, "StatefulSet", "worker")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    [rule] = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}} in rule["from"]


def test_the_chart_refuses_a_wallboard_that_nothing_could_reach() -> None:
    """Without a token the wallboard binds to 127.0.0.1 inside its pod (issue 15), out of reach of its Service
    and probes: the defaults alone do not render, and the error says what to set."""
    done = template()
    assert done.returncode != 0
    assert "wallboard.token.name" in done.stderr and "wallboard.allowUnauthenticated=true" in done.stderr, done.stderr
    without = render("wallboard.enabled=false")
    assert not [o for o in without if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "wallboard"]


def _wallboard_settings(objects: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The settings the rendered wallboard container loads: its ConfigMap as the file, its environment, a
    token file where its Secret volume would put one; every CXPULSE_* variable must be a settings key."""
    pod = one(objects, "Deployment", "wallboard")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-settings"))
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    for key in list(os.environ):
        if key.startswith("CXPULSE_"):
            monkeypatch.delenv(key)
    for var in container["env"]:
        name = var["name"]
        section = name.removeprefix("CXPULSE_").split("__")[0].lower()
        assert name == "CXPULSE_CONFIG" or section in Settings.model_fields, name
        if "valueFrom" in var:  # a Secret's value (a Redis URL, a password): not here, the settings default
            continue
        value = var["value"]
        if name == "CXPULSE_CONFIG":
            assert Path(value).parent.as_posix() in mounts and "configMap" in mounts[Path(value).parent.as_posix()]
            value = str(tmp_path / "settings.yaml")
            Path(value).write_text(config["data"]["settings.yaml"], encoding="utf-8")
        elif name.endswith("_FILE"):  # a file some mounted Secret provides
            volume = mounts[Path(value).parent.as_posix()]
            assert [i["path"] for i in volume["secret"]["items"]] == [Path(value).name]
            local = tmp_path / "secret" / Path(value).name
            local.parent.mkdir(exist_ok=True)
            local.write_text("a-long-random-token\n", encoding="utf-8")
            value = str(local)
        monkeypatch.setenv(name, value)
    return load_settings()


def test_the_wallboard_has_a_token_from_its_secret_and_listens_on_the_pod_network(
        everything: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pod = one(everything, "Deployment", "wallboard")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert "CXPULSE_WALLBOARD__ALLOW_UNAUTHENTICATED" not in env
    assert env["CXPULSE_WALLBOARD__ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "cxpulse-wallboard-admin", "key": "token"}
    [secret] = [v["secret"] for v in pod["volumes"] if "secret" in v]
    assert secret["secretName"] == "cxpulse-wallboard" and secret["items"][0]["key"] == "board-token"
    settings = _wallboard_settings(everything, tmp_path, monkeypatch)
    assert settings.wallboard.token is None and settings.wallboard.token_file
    assert Boards(settings).global_token == "a-long-random-token"
    assert bind_host(settings, settings.wallboard.host) == "0.0.0.0"
    assert settings.wallboard.port == container["ports"][0]["containerPort"]


def test_an_open_wallboard_is_explicit_and_listens_on_the_pod_network(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    objects = render("wallboard.allowUnauthenticated=true")
    pod = one(objects, "Deployment", "wallboard")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["CXPULSE_WALLBOARD__ALLOW_UNAUTHENTICATED"] == "true" and "CXPULSE_WALLBOARD__TOKEN_FILE" not in env
    assert not [v for v in pod["volumes"] if "secret" in v]
    settings = _wallboard_settings(objects, tmp_path, monkeypatch)
    assert Boards(settings).global_token is None
    assert bind_host(settings, settings.wallboard.host) == "0.0.0.0"
    # what the chart guards against: the same settings without the flag bind to the pod's loopback
    assert bind_host(settings.model_copy(update={"wallboard": settings.wallboard.model_copy(
        update={"allow_unauthenticated": False})}), settings.wallboard.host) == "127.0.0.1"


# ------------------------------------------------------------------------------------------------ operator objects
def test_service_monitor_selects_the_worker_services_metrics_port(everything: list[dict[str, Any]]) -> None:
    monitor = one(everything, "ServiceMonitor", "worker")
    worker, wallboard = one(everything, "Service", "worker"), one(everything, "Service", "wallboard")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= worker["metadata"]["labels"].items()
    assert not selector.items() <= wallboard["metadata"]["labels"].items()
    [endpoint] = monitor["spec"]["endpoints"]
    port = next(p for p in worker["spec"]["ports"] if p["name"] == endpoint["port"])
    assert port["port"] == 6066 and endpoint["path"] == "/metrics"
    # the alert rules select job="cxpulse": the jobLabel names a Service label whose value is that
    assert worker["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "cxpulse"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["contact-centre"]}
    assert monitor["metadata"]["labels"]["release"] == "kps"


def _rule_file_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in sorted(RULES.glob("*.yml")):
        groups += yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    return groups


def test_prometheus_rule_groups_are_the_rules_files(objects: list[dict[str, Any]]) -> None:
    rule = one(objects, "PrometheusRule")
    assert rule["spec"]["groups"] == _rule_file_groups()
    assert len(rule["spec"]["groups"]) >= 5


def test_prometheus_rule_takes_the_runbook_base_and_promtool_accepts_it(everything: list[dict[str, Any]],
                                                                      tmp_path: Path) -> None:
    groups = one(everything, "PrometheusRule")["spec"]["groups"]
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    assert alerts and all(r["annotations"]["runbook_url"] == f"{WIKI}#{r['alert'].lower()}" for r in alerts)
    expected = json.loads(json.dumps(_rule_file_groups()).replace(
        "https://github.com/cxpulse/cxpulse/blob/main/docs/runbooks.md#", f"{WIKI}#"))
    assert groups == expected
    path = tmp_path / "rendered-rules.yml"
    path.write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: install the Debian 'prometheus' package (the Makefile does)"
    check = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


def test_grafana_dashboards_are_configmaps_for_the_sidecar(objects: list[dict[str, Any]]) -> None:
    maps = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["labels"].get("grafana_dashboard") == "1"]
    shipped = {p.name: p.read_text(encoding="utf-8") for p in DASHBOARDS.glob("*.json")}
    found = {}
    for config in maps:
        [(name, text)] = config["data"].items()
        found[name.removeprefix("cxpulse-")] = text
        assert config["metadata"]["annotations"]["grafana_folder"] == "cxpulse"
    assert found.keys() == shipped.keys()
    for name, text in found.items():
        assert json.loads(text) == json.loads(shipped[name]), name
