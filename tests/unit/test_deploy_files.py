"""The deployment files, checked without Docker (there is none here): parse ``deploy/docker-compose.yml`` and
``deploy/Dockerfile`` and check what can go stale:

* every file they reference exists (build context, Dockerfile, bind-mounted configs of Prometheus,
  Alertmanager and Grafana);
* every port published or exposed is the one the settings (and the Prometheus/Grafana configs) use;
* every ``CXPULSE_*`` variable is a real settings key, and its value validates;
* the wallboard container really listens beyond its loopback (a token, or the explicit open flag).

Kubernetes is the Helm chart's alone (``tests/unit/test_helm_chart.py``); there are no hand-written manifests.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from cxpulse.settings import Settings
from cxpulse.wallboard.server import bind_host

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
DEFAULTS = Settings()
# CXPULSE_* names that are not settings keys: the settings file itself, and Grafana's provisioning variable
NOT_SETTINGS = {"CXPULSE_CONFIG", "CXPULSE_GRAFANA_DASHBOARDS"}
COMMANDS = {"worker", "wallboard", "simulate", "produce", "replay", "schema"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------------ settings keys
def _settings_key_ok(name: str) -> str | None:
    """None if ``CXPULSE_A__B__C`` names a settings field, else why not (walks the pydantic models)."""
    parts = name.removeprefix("CXPULSE_").lower().split("__")
    model: Any = Settings
    for depth, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            return f"{name}: {'.'.join(parts[:depth + 1])} is not a settings key (one of {sorted(fields)})"
        annotation = fields[part].annotation
        if depth == len(parts) - 1:
            return None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
            continue
        if getattr(annotation, "__origin__", None) is dict:  # kpi.queues.<name>..., kpi.channels.<name>...
            return None
        return f"{name}: {'.'.join(parts[:depth + 1])} has no sub-keys"
    return None


def _check_env(env: dict[str, str], where: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """Every CXPULSE_* of ``env`` is a settings key and ``Settings`` accepts the values together."""
    ours = {k: str(v) for k, v in env.items() if k.startswith("CXPULSE_") and k not in NOT_SETTINGS}
    problems = [p for p in (_settings_key_ok(k) for k in ours) if p]
    assert not problems, f"{where}: " + "; ".join(problems)
    with monkeypatch.context() as m:
        for key in list(os.environ):
            if key.startswith("CXPULSE_"):
                m.delenv(key)
        for key, value in ours.items():
            if "${" not in value:
                m.setenv(key, value)
        Settings()  # raises on a bad value
    return len(ours)


def test_the_key_walker_knows_good_from_bad() -> None:
    assert _settings_key_ok("CXPULSE_WORKER__DATA_DIR") is None
    assert _settings_key_ok("CXPULSE_KAFKA__TOPICS__SLA_BREACHES") is None
    assert _settings_key_ok("CXPULSE_KPI__QUEUES__BILLING__SL_TARGET") is None
    assert _settings_key_ok("CXPULSE_WORKER__DATADIR") is not None
    assert _settings_key_ok("CXPULSE_REDIS__URL__X") is not None
    assert _settings_key_ok("CXPULSE_WALLBOARD") is None


# ------------------------------------------------------------------------------------------------ compose
def _env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _container_ports(service: dict[str, Any]) -> set[int]:
    """Container ports of ``ports`` (short syntax ``[ip:]host[-range]:container``) and ``expose``."""
    out = {int(str(p).split("/")[0]) for p in service.get("expose", [])}
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out.add(int(port["target"]))
        else:
            out.add(int(str(port).split("/")[0].rsplit(":", 1)[-1]))
    return out


def _published(service: dict[str, Any]) -> list[str]:
    return [str(p) for p in service.get("ports", [])]


def test_compose_has_every_service(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= {"kafka", "redis", "prometheus", "alertmanager", "grafana", "worker",
                                         "wallboard", "simulator"}
    s = compose["services"]
    assert s["kafka"]["image"].startswith("apache/kafka:4.")
    assert s["worker"]["command"] == ["worker"] and s["wallboard"]["command"] == ["wallboard"]
    assert s["simulator"]["command"][:1] == ["simulate"]
    for name in ("worker", "wallboard", "simulator"):
        assert s[name]["command"][0] in COMMANDS


def test_compose_simulator_writes_the_past_hour_then_real_time(compose: dict[str, Any], tmp_path: Path) -> None:
    """The demo shows data at once: its command, run for real (to a file, ending at now), writes the last hour
    and no event later than the wall clock (a --speed above 1 would stamp the future: empty windows)."""
    import time

    import orjson
    from typer.testing import CliRunner

    from cxpulse.cli import app

    command = compose["services"]["simulator"]["command"]
    assert "--speed" not in command and "--fast" not in command, command
    out = tmp_path / "demo.jsonl"
    before = time.time()
    result = CliRunner().invoke(app, [*command, "--seed", "7", "--duration", "1h", "--out", str(out)])
    after = time.time()
    assert result.exit_code == 0, result.output
    from cxpulse.models.events import parse_rfc3339

    stamps = [parse_rfc3339(orjson.loads(line)["ts"]).timestamp() for line in out.read_bytes().splitlines()]
    assert len(stamps) > 500
    assert max(stamps) <= after, "an event in the future: the windows would stay empty"
    assert min(stamps) >= before - 3600 - 1
    assert max(stamps) - min(stamps) > 50 * 60  # the whole hour, not a burst at its end


def test_compose_kafka_is_kraft_single_node_on_9092(compose: dict[str, Any]) -> None:
    env = _env_of(compose["services"]["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "PLAINTEXT://:9092" in env["KAFKA_LISTENERS"] and env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    controller_port = re.search(r"CONTROLLER://:(\d+)", env["KAFKA_LISTENERS"]).group(1)
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:{controller_port}"
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
        assert env[key] == "1"
    assert 9092 in _container_ports(compose["services"]["kafka"])
    assert "zookeeper" not in COMPOSE_FILE.read_text().lower()


def test_compose_build_and_mounted_files_exist(compose: dict[str, Any]) -> None:
    base = COMPOSE_FILE.parent
    builds = 0
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = (base / (build if isinstance(build, str) else build["context"])).resolve()
            assert context.is_dir(), f"{name}: build context {context}"
            dockerfile = context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
            assert dockerfile.resolve() == DOCKERFILE, f"{name}: {dockerfile}"
            builds += 1
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else str(volume).split(":")[0]
            if source.startswith((".", "/")) and ":" in str(volume):  # a bind mount (not a named/anonymous volume)
                assert (base / source).resolve().exists(), f"{name}: mounted {source} does not exist"
    assert builds == 3  # worker, wallboard, simulator share the image
    mounts = {str(v).split(":")[0] for s in compose["services"].values() for v in s.get("volumes", [])}
    assert {"./prometheus", "./alertmanager/alertmanager.yml", "../grafana/provisioning", "../grafana/dashboards"} <= mounts
    # what the mounted directories must hold for the services to start
    for path in ("deploy/prometheus/rules/recording.yml", "deploy/prometheus/rules/alerts.yml",
                 "deploy/alertmanager/alertmanager.yml", "grafana/provisioning/dashboards/cxpulse.yml",
                 "grafana/provisioning/datasources/prometheus.yml"):
        assert (ROOT / path).is_file(), path
    assert list((ROOT / "grafana" / "dashboards").glob("*.json")), "no dashboard JSON to provision"


def test_compose_inline_configs_point_at_the_mounts(compose: dict[str, Any]) -> None:
    prom = yaml.safe_load(compose["configs"]["prometheus-compose"]["content"])
    for rule in prom["rule_files"]:
        relative = rule.removeprefix("/etc/prometheus/cxpulse/")
        assert rule != relative and (DEPLOY / "prometheus" / relative).is_file(), rule
    local = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert [f"/etc/prometheus/cxpulse/{r}" for r in local["rule_files"]] == prom["rule_files"]
    job = prom["scrape_configs"][0]
    assert job["job_name"] == local["scrape_configs"][0]["job_name"]  # the rules select on it
    assert job["dns_sd_configs"][0]["names"] == ["worker"] and job["dns_sd_configs"][0]["port"] == DEFAULTS.worker.web_port
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    datasource = yaml.safe_load(compose["configs"]["grafana-datasource-compose"]["content"])["datasources"][0]
    shipped = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    assert datasource["uid"] == shipped["uid"] and datasource["url"] == "http://prometheus:9090"
    grafana = compose["services"]["grafana"]
    assert grafana["configs"][0]["target"] == "/etc/grafana/provisioning/datasources/prometheus.yml"
    assert _env_of(grafana)["CXPULSE_GRAFANA_DASHBOARDS"] in {str(v).split(":")[1] for v in grafana["volumes"]}


def test_compose_ports_match_the_settings(compose: dict[str, Any]) -> None:
    s = compose["services"]
    assert _container_ports(s["worker"]) == {DEFAULTS.worker.web_port}
    assert _env_of(s["worker"])["CXPULSE_WORKER__WEB_PORT"] == str(DEFAULTS.worker.web_port)
    assert _container_ports(s["wallboard"]) == {DEFAULTS.wallboard.port}
    assert _env_of(s["wallboard"])["CXPULSE_WALLBOARD__PORT"] == str(DEFAULTS.wallboard.port)
    assert _container_ports(s["prometheus"]) == {9090} and _container_ports(s["alertmanager"]) == {9093}
    assert _container_ports(s["grafana"]) == {3000} and _container_ports(s["redis"]) == {6379}
    for name, service in s.items():
        for port in _published(service):  # published only on the loopback of the host
            assert port.startswith("127.0.0.1:"), f"{name}: {port} is published on every interface"
    for name in ("worker", "wallboard", "simulator"):
        env = _env_of(s[name])
        host, port = env["CXPULSE_KAFKA__BOOTSTRAP_SERVERS"].split(":")
        assert host in s and int(port) in _container_ports(s[host])
        redis_host = re.match(r"rediss?://([^:/]+):(\d+)", env["CXPULSE_REDIS__URL"])
        assert redis_host.group(1) in s and int(redis_host.group(2)) in _container_ports(s["redis"])
    # the worker replicas get at most one host port each, up to the partition count
    low, high = re.search(r":(\d+)-(\d+):", _published(s["worker"])[0]).groups()
    assert int(low) == DEFAULTS.worker.web_port
    assert int(high) - int(low) + 1 == int(_env_of(s["worker"])["CXPULSE_KAFKA__PARTITIONS"])


def test_compose_environment_is_real_settings(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    checked = 0
    for name, service in compose["services"].items():
        checked += _check_env(_env_of(service), f"compose service {name}", monkeypatch)
    assert checked >= 15
    env = _env_of(compose["services"]["worker"])
    assert env["CXPULSE_WORKER__DATA_DIR"] == "/data" and "/data" in compose["services"]["worker"]["volumes"]


# ------------------------------------------------------------------------------------------------ Dockerfile
def test_dockerfile() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    assert re.search(r"pip install \.", text)
    user = [line for line in lines if line.startswith("USER ")][-1]
    assert user.split()[1].split(":")[0] not in ("root", "0")
    assert 'ENTRYPOINT ["cxpulse"]' in lines
    for line in lines:
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: not in the build context"
    env = dict(re.findall(r"(CXPULSE_\w+)=(\S+)", text))
    assert env == {"CXPULSE_WORKER__DATA_DIR": "/data"}
    assert _settings_key_ok("CXPULSE_WORKER__DATA_DIR") is None
    exposed = {int(p) for line in lines if line.startswith("EXPOSE") for p in line.split()[1:]}
    assert exposed == {DEFAULTS.worker.web_port, DEFAULTS.wallboard.port}
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert "*" in ignore and "!cxpulse/" in ignore and "!pyproject.toml" in ignore


def test_compose_wallboard_listens_beyond_its_container_loopback(compose: dict[str, Any],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a token the wallboard binds to 127.0.0.1 (issue 15), which a published port cannot reach: the
    compose service must carry a token source or the explicit open flag, and then binds 0.0.0.0."""
    service = compose["services"]["wallboard"]
    env = _env_of(service)
    token_sources = {"CXPULSE_WALLBOARD__TOKEN", "CXPULSE_WALLBOARD__TOKEN_FILE"} & env.keys()
    assert token_sources or env.get("CXPULSE_WALLBOARD__ALLOW_UNAUTHENTICATED") == "true", env
    with monkeypatch.context() as m:
        for key in list(os.environ):
            if key.startswith("CXPULSE_"):
                m.delenv(key)
        for key, value in env.items():
            if key.startswith("CXPULSE_") and key not in NOT_SETTINGS:
                m.setenv(key, value)
        settings = Settings()
    assert settings.wallboard.host == "0.0.0.0"
    assert bind_host(settings, settings.wallboard.host) == "0.0.0.0"
    if not token_sources:  # an open board: published on the host's loopback only
        assert _published(service) and all(p.startswith("127.0.0.1:") for p in _published(service))
    # the check can fail: the same host without the flag and without a token binds to loopback
    assert bind_host(Settings(wallboard={"host": "0.0.0.0"}), "0.0.0.0") == "127.0.0.1"
