"""Alertmanager config: amtool validation, routing by severity, and inhibition on a real Alertmanager.

Needs the Debian ``prometheus-alertmanager`` package (``amtool``, ``/usr/bin/prometheus-alertmanager``),
as installed by the Makefile.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from local_server import serving

ROOT = Path(__file__).resolve().parents[2]
AM_DIR = ROOT / "deploy" / "alertmanager"
CONFIG = AM_DIR / "alertmanager.yml"
ALERTS = ROOT / "deploy" / "prometheus" / "rules" / "alerts.yml"
AMTOOL = shutil.which("amtool")
AM_SERVER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert AMTOOL, "amtool not found: install the Debian 'prometheus-alertmanager' package (the Makefile does)"
    return subprocess.run([AMTOOL, *args], capture_output=True, text=True, timeout=60)


def route(*labels: str) -> str:
    """The receiver(s) amtool picks for an alert with these labels."""
    result = amtool("config", "routes", "test", f"--config.file={CONFIG}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def alert_names() -> set[str]:
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return {r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r}


def test_amtool_check_config() -> None:
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_critical_pages_warnings_go_to_slack_and_everything_to_the_webhook() -> None:
    assert route("severity=critical", "queue=billing") == "webhook,pagerduty"
    assert route("severity=critical", "alertname=CxPipelineStalled") == "webhook,pagerduty"
    assert route("severity=warning", "queue=billing") == "webhook,slack"
    assert route("severity=info", "queue=billing") == "webhook,slack"
    assert route("alertname=SomethingWithoutSeverity") == "webhook,slack"  # nothing is dropped


def test_every_alert_severity_has_a_route() -> None:
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    severities = {r["labels"]["severity"] for g in doc["groups"] for r in g["rules"] if "alert" in r}
    assert severities <= {"critical", "warning", "info"}, severities
    assert "critical" in severities and "warning" in severities


SECRET_FILES = {  # receiver -> (config list, the *_file key, the file under /etc/alertmanager/secrets)
    "pagerduty": ("pagerduty_configs", "routing_key_file", "pagerduty-routing-key"),
    "slack": ("slack_configs", "api_url_file", "slack-webhook-url"),
    "webhook": ("webhook_configs", "credentials_file", "webhook-token"),
}


def _secret_path(receiver: dict[str, object], configs: str, key: str) -> str:
    [entry] = receiver[configs]  # type: ignore[index]
    return entry["http_config"]["authorization"][key] if key == "credentials_file" else entry[key]


def test_receivers_are_native_and_read_their_secrets_from_files() -> None:
    cfg = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    receivers = {r["name"]: r for r in cfg["receivers"]}
    assert receivers.keys() == SECRET_FILES.keys()
    for name, (configs, key, file) in SECRET_FILES.items():
        assert _secret_path(receivers[name], configs, key) == f"/etc/alertmanager/secrets/{file}", name
    text = CONFIG.read_text(encoding="utf-8")
    for literal in ("routing_key:", "service_key:", "api_url:", "credentials:", "password:"):
        assert literal not in text, f"a secret in the config: {literal}"
    assert cfg["route"]["group_by"] == ["alertname", "queue"]
    # Compose mounts the directory, and its README names every file
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text(encoding="utf-8"))
    assert "./alertmanager/secrets:/etc/alertmanager/secrets:ro" in compose["services"]["alertmanager"]["volumes"]
    readme = (AM_DIR / "secrets" / "README.md").read_text(encoding="utf-8")
    assert all(f"`{file}`" in readme for _, _, file in SECRET_FILES.values())


def test_the_shipped_version_has_no_webhook_url_file(tmp_path: Path) -> None:
    """Why render.sh still exists: the Alertmanager here (0.25) refuses ``url_file`` on a webhook."""
    cfg = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    webhook = next(r for r in cfg["receivers"] if r["name"] == "webhook")["webhook_configs"][0]
    webhook["url_file"] = webhook.pop("url")
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    result = amtool("check-config", str(path))
    assert result.returncode != 0
    assert "field url_file not found" in result.stdout + result.stderr


def test_inhibition_source_is_a_real_alert() -> None:
    cfg = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    sources = [m for rule in cfg["inhibit_rules"] for m in rule["source_matchers"]]
    assert 'alertname="CxPipelineStalled"' in sources
    assert "CxPipelineStalled" in alert_names()


def test_render_substitutes_the_webhook_url(tmp_path: Path) -> None:
    out = tmp_path / "alertmanager.yml"
    env = dict(os.environ, CXPULSE_ALERT_WEBHOOK_URL="https://tickets.example/it's|here?a=1&b=2")
    result = subprocess.run([str(AM_DIR / "render.sh"), str(out)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    cfg = yaml.safe_load(out.read_text(encoding="utf-8"))
    urls = {r["name"]: r["webhook_configs"][0]["url"] for r in cfg["receivers"] if "webhook_configs" in r}
    assert urls == {"webhook": "https://tickets.example/it's|here?a=1&b=2"}
    original = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    next(r for r in original["receivers"] if r["name"] == "webhook")["webhook_configs"][0]["url"] = urls["webhook"]
    assert cfg == original  # nothing else changed


# --- a real Alertmanager: inhibition while the pipeline is stalled -----------------------------------
def _http(url: str, payload: object | None = None) -> object:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        body = response.read()
    return json.loads(body) if body else None


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    assert AM_SERVER, "prometheus-alertmanager not found: install the Debian package (the Makefile does)"
    storage = tmp_path_factory.mktemp("alertmanager")
    argv = lambda port: [AM_SERVER, f"--config.file={CONFIG}", f"--storage.path={storage}",  # noqa: E731
                         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="]
    with serving(argv, storage / "log", "alertmanager") as url:
        yield url


def test_queue_alerts_are_inhibited_while_the_pipeline_is_stalled(alertmanager: str) -> None:
    now = datetime.now(UTC)
    window = {"startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=10)).isoformat()}
    alerts = [
        {"labels": {"alertname": "CxPipelineStalled", "severity": "critical"}, **window},
        {"labels": {"alertname": "CxServiceLevelBelowTarget", "severity": "critical", "queue": "billing",
                    "channel": "voice"}, **window},
        {"labels": {"alertname": "CxTargetDown", "severity": "critical", "job": "cxpulse", "instance": "w1"},
         **window},
    ]
    _http(f"{alertmanager}/api/v2/alerts", alerts)
    deadline = time.monotonic() + 10
    while True:  # the inhibitor marks alerts asynchronously
        got = {a["labels"]["alertname"]: a["status"] for a in _http(f"{alertmanager}/api/v2/alerts")}
        if len(got) == 3 and got["CxServiceLevelBelowTarget"]["state"] == "suppressed":
            break
        assert time.monotonic() < deadline, got
        time.sleep(0.1)
    assert got["CxServiceLevelBelowTarget"]["inhibitedBy"], got
    assert got["CxPipelineStalled"]["state"] == "active", got
    assert got["CxTargetDown"]["state"] == "active", got  # no queue label: not inhibited


# --- a real Alertmanager delivering to the three native receivers, secrets read from files -----------------
class _Capture(BaseHTTPRequestHandler):
    """Records every POST (path, headers, JSON body) on the server; answers as PagerDuty and Slack do."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"null")
        self.server.received.append((self.path, dict(self.headers), body))  # type: ignore[attr-defined]
        payload = b'{"status":"success"}' if self.path == "/pagerduty" else b"ok"
        self.send_response(202 if self.path == "/pagerduty" else 200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


def test_alerts_reach_pagerduty_slack_and_the_webhook_with_secrets_from_files(tmp_path: Path) -> None:
    """The shipped config with only its endpoints, secret directory and waits changed: a critical alert pages
    with the routing key from its file, a warning posts to the Slack URL from its file, both reach the webhook
    with the bearer token from its file."""
    assert AM_SERVER, "prometheus-alertmanager not found: install the Debian package (the Makefile does)"
    capture = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    capture.received = []  # type: ignore[attr-defined]
    threading.Thread(target=capture.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{capture.server_address[1]}"
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "pagerduty-routing-key").write_text("R0UT1NGKEY0123456789abcdefabcdef", encoding="utf-8")
    (secrets / "slack-webhook-url").write_text(f"{base}/slack", encoding="utf-8")
    (secrets / "webhook-token").write_text("w3bh00k-t0ken", encoding="utf-8")
    text = CONFIG.read_text(encoding="utf-8").replace("/etc/alertmanager/secrets/", f"{secrets}/")
    cfg = yaml.safe_load(text.replace("http://127.0.0.1:9099/alerts", f"{base}/webhook"))
    cfg["global"]["pagerduty_url"] = f"{base}/pagerduty"
    cfg["route"].update(group_wait="0s", group_interval="1s")
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    assert amtool("check-config", str(config)).returncode == 0
    storage = tmp_path / "storage"
    storage.mkdir()
    argv = lambda port: [AM_SERVER, f"--config.file={config}", f"--storage.path={storage}",  # noqa: E731
                         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="]
    try:
        with serving(argv, tmp_path / "log", "alertmanager") as url:
            now = datetime.now(UTC)
            window = {"startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=10)).isoformat()}
            annotations = {"summary": "billing/voice is below target", "runbook_url": "https://runbooks.test/#x"}
            _http(f"{url}/api/v2/alerts", [
                {"labels": {"alertname": "CxServiceLevelBelowTarget", "severity": "critical", "queue": "billing"},
                 "annotations": annotations, **window},
                {"labels": {"alertname": "CxAbandonmentSpike", "severity": "warning", "queue": "sales"},
                 "annotations": {"summary": "sales abandons"}, **window},
            ])
            deadline = time.monotonic() + 20
            while len({path for path, _, _ in capture.received}) < 3 or len(capture.received) < 4:  # type: ignore[attr-defined]
                assert time.monotonic() < deadline, (capture.received, (tmp_path / "log").read_text())  # type: ignore[attr-defined]
                time.sleep(0.05)
    finally:
        capture.shutdown()
    received: list[tuple[str, dict[str, str], dict[str, object]]] = capture.received  # type: ignore[attr-defined]
    [(_, _, page)] = [r for r in received if r[0] == "/pagerduty"]
    assert page["routing_key"] == "R0UT1NGKEY0123456789abcdefabcdef" and page["event_action"] == "trigger"
    assert page["payload"]["summary"] == "CxServiceLevelBelowTarget on billing: billing/voice is below target"  # type: ignore[index]
    assert page["links"] == [{"href": "https://runbooks.test/#x", "text": "runbook"}]
    [(_, _, chat)] = [r for r in received if r[0] == "/slack"]
    assert chat["channel"] == "#contact-centre-ops"
    assert chat["attachments"][0]["title"] == "[FIRING] CxAbandonmentSpike on sales"  # type: ignore[index]
    hooks = [r for r in received if r[0] == "/webhook"]
    assert sorted(h[2]["commonLabels"]["alertname"] for h in hooks) == ["CxAbandonmentSpike",  # type: ignore[index]
                                                                       "CxServiceLevelBelowTarget"]
    assert {h[1]["Authorization"] for h in hooks} == {"Bearer w3bh00k-t0ken"}
