"""Alertmanager config: amtool validation, routing by severity, and inhibition on a real Alertmanager.

Needs the Debian ``prometheus-alertmanager`` package (``amtool``, ``/usr/bin/prometheus-alertmanager``),
as installed by the Makefile.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
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


def test_critical_pages_and_warning_and_info_go_to_chat() -> None:
    assert route("severity=critical", "queue=billing") == "pager"
    assert route("severity=critical", "alertname=CxPipelineStalled") == "pager"
    assert route("severity=warning", "queue=billing") == "chat"
    assert route("severity=info", "queue=billing") == "chat"
    assert route("alertname=SomethingWithoutSeverity") == "chat"  # nothing is dropped


def test_grouping_and_webhooks() -> None:
    cfg = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    assert cfg["route"]["group_by"] == ["alertname", "queue"]
    urls = {r["name"]: [w["url"] for w in r["webhook_configs"]] for r in cfg["receivers"]}
    assert urls == {"pager": ["http://127.0.0.1:9099/pager"], "chat": ["http://127.0.0.1:9099/chat"]}


def test_inhibition_source_is_a_real_alert() -> None:
    cfg = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    sources = [m for rule in cfg["inhibit_rules"] for m in rule["source_matchers"]]
    assert 'alertname="CxPipelineStalled"' in sources
    assert "CxPipelineStalled" in alert_names()


def test_render_substitutes_webhook_urls(tmp_path: Path) -> None:
    out = tmp_path / "alertmanager.yml"
    env = dict(os.environ,
               CXPULSE_PAGER_WEBHOOK_URL="https://pager.example/hook?a=1&b=2",
               CXPULSE_CHAT_WEBHOOK_URL="https://chat.example/it's|here")
    result = subprocess.run([str(AM_DIR / "render.sh"), str(out)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    cfg = yaml.safe_load(out.read_text(encoding="utf-8"))
    urls = {r["name"]: r["webhook_configs"][0]["url"] for r in cfg["receivers"]}
    assert urls == {"pager": "https://pager.example/hook?a=1&b=2", "chat": "https://chat.example/it's|here"}


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
