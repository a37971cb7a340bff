"""Helpers for the Prometheus end-to-end tests: a real Prometheus, a real Alertmanager, a webhook receiver,
and a parser of the worker's ``/metrics``.

* :func:`shortened_rules`: the project's rule files copied into a directory, with every ``for:`` of an alert
  shortened to a few seconds (the only change; recording rules are copied byte for byte).
* :func:`start_prometheus`: ``prometheus`` with a copy of ``deploy/prometheus/prometheus.yml`` whose scrape
  target is the test worker(s), intervals 1 s, and Alertmanager target the test Alertmanager.
* :func:`start_alertmanager`: ``prometheus-alertmanager`` with ``deploy/alertmanager/alertmanager.yml`` rendered
  by ``deploy/alertmanager/render.sh``, ``group_wait`` / ``group_interval`` shortened, every receiver a webhook
  to :class:`WebhookReceiver` (PagerDuty -> ``/pager``, Slack -> ``/chat``, the webhook -> ``/webhook``).
* :class:`WebhookReceiver`: an ``http.server`` on a free port (own thread) recording every POSTed JSON with its
  path (``/pager``, ``/chat`` or ``/webhook``).
* :func:`parse_metrics`: Prometheus text exposition -> samples; :func:`counter_totals` sums ``*_total`` series.

Every process is ours (started here, stopped by its own ``Popen`` handle); every port is picked free.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from worker_harness import free_port

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "deploy" / "prometheus"
AM_DIR = ROOT / "deploy" / "alertmanager"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"

_FOR = re.compile(r"^(?P<lead>\s+for:\s*)(?P<value>\d+[smhd])\s*$", re.MULTILINE)


# ------------------------------------------------------------------------------------------------ processes
@dataclass
class Service:
    """A server process we started, its base URL and its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    _log: Any = field(default=None, repr=False)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        if self._log is not None:
            self._log.close()
            self._log = None


def _start(name: str, args: list[str], log_path: Path, url: str, timeout: float = 30.0) -> Service:
    log = log_path.open("wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    service = Service(name, proc, url, log_path, log)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return service
        except (OSError, urllib.error.URLError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            service.stop()
            raise AssertionError(f"{name} did not become ready at {url} (rc {proc.returncode}); log:\n{service.log_tail()}")
        time.sleep(0.1)


# ------------------------------------------------------------------------------------------------ rules
def shortened_rules(dest: Path, seconds: int = 3) -> dict[str, str]:
    """Copy ``deploy/prometheus/rules/*.yml`` into ``dest`` with every non-zero alert ``for:`` set to
    ``seconds`` s (``for: 0m`` stays 0). Nothing else changes. Returns alert name -> original ``for``."""
    dest.mkdir(parents=True, exist_ok=True)
    original: dict[str, str] = {}
    for source in sorted((PROM_DIR / "rules").glob("*.yml")):
        text = source.read_text(encoding="utf-8")
        for group in (yaml.safe_load(text) or {}).get("groups", []):
            for rule in group["rules"]:
                if "alert" in rule:
                    original[rule["alert"]] = str(rule.get("for", "0s"))

        def repl(match: re.Match[str]) -> str:
            value = match.group("value")
            return match.group("lead") + (value if int(value[:-1]) == 0 else f"{seconds}s")

        (dest / source.name).write_text(_FOR.sub(repl, text), encoding="utf-8")
    # the rewrite touched only `for:` and hit every alert that has one
    for path in dest.glob("*.yml"):
        before = yaml.safe_load((PROM_DIR / "rules" / path.name).read_text(encoding="utf-8"))
        after = yaml.safe_load(path.read_text(encoding="utf-8"))
        for g_before, g_after in zip(before["groups"], after["groups"]):
            for r_before, r_after in zip(g_before["rules"], g_after["rules"]):
                if "for" in r_before:
                    assert r_after["for"] in (f"{seconds}s", r_before["for"]), r_after
                    r_after = {**r_after, "for": r_before["for"]}
                assert r_after == r_before, f"rewrite changed more than `for:` in {path.name}: {r_before.get('alert')}"
    return original


def start_prometheus(tmp: Path, targets: list[str], alertmanager: str | None, interval: str = "1s") -> Service:
    """A real Prometheus with the project's config (targets, intervals and Alertmanager replaced) and rules
    (``for:`` shortened, see :func:`shortened_rules`)."""
    assert PROMETHEUS, "prometheus not found: install the Debian 'prometheus' package (the Makefile does)"
    tmp.mkdir(parents=True, exist_ok=True)
    shortened_rules(tmp / "rules")
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    config["global"].update(scrape_interval=interval, scrape_timeout=interval, evaluation_interval=interval)
    if alertmanager:
        config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [alertmanager]
    else:
        config.pop("alerting", None)
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "cxpulse"]
    job["static_configs"][0]["targets"] = list(targets)
    assert config["rule_files"] == ["rules/recording.yml", "rules/alerts.yml"], config["rule_files"]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    port = free_port()
    return _start("prometheus", [
        PROMETHEUS, f"--config.file={path}", f"--storage.tsdb.path={tmp / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ], tmp / "prometheus.log", f"http://127.0.0.1:{port}")


def render_alertmanager(tmp: Path, pager_url: str, chat_url: str, webhook_url: str, group_wait: str = "1s",
                        group_interval: str = "2s") -> Path:
    """``deploy/alertmanager/render.sh`` with the webhook receiver's URL, then ``group_wait`` /
    ``group_interval`` shortened, and the PagerDuty and Slack receivers swapped for webhooks to ``pager_url``
    and ``chat_url`` (checked with amtool again). The routing tree and inhibition stay the shipped ones; the
    native receivers' own delivery, secrets read from files, is tests/unit/test_alertmanager_config.py's."""
    tmp.mkdir(parents=True, exist_ok=True)
    out = tmp / "alertmanager.yml"
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "CXPULSE_ALERT_WEBHOOK_URL": webhook_url}
    done = subprocess.run([str(AM_DIR / "render.sh"), str(out)], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    text = out.read_text(encoding="utf-8")
    text, n_wait = re.subn(r"(?m)^(\s+group_wait:\s*)\S+", rf"\g<1>{group_wait}", text)
    text, n_interval = re.subn(r"(?m)^(\s+group_interval:\s*)\S+", rf"\g<1>{group_interval}", text)
    assert n_wait == 1 and n_interval == 1, "alertmanager.yml: expected one group_wait and one group_interval"
    config = yaml.safe_load(text)
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers.keys() == {"pagerduty", "slack", "webhook"}, receivers.keys()
    assert receivers["webhook"]["webhook_configs"][0]["url"] == webhook_url
    del receivers["webhook"]["webhook_configs"][0]["http_config"]  # its token file is not here
    receivers["pagerduty"] = {"name": "pagerduty", "webhook_configs": [{"url": pager_url, "send_resolved": True}]}
    receivers["slack"] = {"name": "slack", "webhook_configs": [{"url": chat_url, "send_resolved": True}]}
    config["receivers"] = list(receivers.values())
    out.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    check = subprocess.run(["amtool", "check-config", str(out)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    return out


def start_alertmanager(tmp: Path, pager_url: str, chat_url: str, webhook_url: str) -> Service:
    config = render_alertmanager(tmp, pager_url, chat_url, webhook_url)
    port = free_port()
    return _start("alertmanager", [
        ALERTMANAGER, f"--config.file={config}", f"--storage.path={tmp / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
    ], tmp / "alertmanager.log", f"http://127.0.0.1:{port}")


# ------------------------------------------------------------------------------------------------ webhooks
class WebhookReceiver:
    """Records every POST as (path, parsed JSON, monotonic time); answers 200."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any], float]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {"unparsable": body.decode(errors="replace")}
                with receiver._lock:
                    receiver.received.append((self.path, payload, time.monotonic()))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def alerts(self, path: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(receiver path, alert) for every alert of every notification so far (resolved ones too)."""
        with self._lock:
            posts = list(self.received)
        return [(p, alert) for p, payload, _ in posts if path is None or p == path for alert in payload.get("alerts", [])]


# ------------------------------------------------------------------------------------------------ HTTP
def get_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def prom_query(base: str, expr: str) -> dict[str, Any]:
    """``/api/v1/query`` (POST form); a 4xx answer's body (status error) is returned, not raised."""
    data = urllib.parse.urlencode({"query": expr}).encode()
    try:
        with urllib.request.urlopen(f"{base}/api/v1/query", data=data, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        return json.loads(err.read())


def prom_value(base: str, expr: str) -> list[tuple[dict[str, str], float]]:
    answer = prom_query(base, expr)
    assert answer.get("status") == "success", f"{expr}: {answer}"
    return [(r["metric"], float(r["value"][1])) for r in answer["data"]["result"]]


def fetch_text(url: str, timeout: float = 10.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


# ------------------------------------------------------------------------------------------------ /metrics
def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of a text exposition: (sample name, labels, value)."""
    from prometheus_client.parser import text_string_to_metric_families

    out = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.append((sample.name, dict(sample.labels), float(sample.value)))
    return out


def counter_totals(text: str, prefix: str = "contactcenter_") -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(name, sorted labels): value}`` of every ``<prefix>*_total`` sample."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for name, labels, value in parse_metrics(text):
        if name.startswith(prefix) and name.endswith("_total"):
            out[(name, tuple(sorted(labels.items())))] = value
    return out


def add_up(*tables: dict[Any, float]) -> dict[Any, float]:
    total: dict[Any, float] = defaultdict(float)
    for table in tables:
        for key, value in table.items():
            total[key] += value
    return dict(total)


def label_values(text: str) -> set[str]:
    return {value for _, labels, _ in parse_metrics(text) for value in labels.values()}


def ids_in_events(events: list[dict[str, Any]]) -> set[str]:
    """Every customer, contact and agent id (and event id) of some contract events."""
    out: set[str] = set()
    for event in events:
        for key in ("contact_id", "customer_id", "agent_id", "event_id"):
            value = event.get(key)
            if isinstance(value, str) and value:
                out.add(value)
    return out


def runbook_anchors() -> set[str]:
    """GitHub anchors of the headings of docs/runbooks.md."""
    anchors = set()
    for line in RUNBOOKS.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return anchors


def diagnostics(prometheus: Service | None, alertmanager: Service | None, metrics_url: str | None,
                grep: str = "contactcenter_") -> str:
    """Prometheus /api/v1/alerts, Alertmanager /api/v2/alerts and an excerpt of the worker's /metrics."""
    parts = []
    for label, service, path in (("prometheus alerts", prometheus, "/api/v1/alerts"),
                                 ("alertmanager alerts", alertmanager, "/api/v2/alerts")):
        if service is None:
            continue
        try:
            parts.append(f"--- {label}: {json.dumps(get_json(service.url + path))[:6000]}")
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            parts.append(f"--- {label}: {exc!r}; log:\n{service.log_tail()}")
    if metrics_url:
        try:
            lines = [l for l in fetch_text(metrics_url).splitlines() if l.startswith(grep) and "_bucket" not in l]
            parts.append("--- /metrics excerpt:\n" + "\n".join(lines[:120]))
        except Exception as exc:  # noqa: BLE001
            parts.append(f"--- /metrics: {exc!r}")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------------ files
async def produce_lines(bootstrap: str, topics: Any, path: Path) -> tuple[int, list[dict[str, Any]]]:
    """Every line of a JSON Lines file (invalid ones included, as they are) to the worker's topics, key =
    ``contact_id`` when the line has one; returns (records sent, the lines that parsed as JSON objects).
    (``worker_harness.produce_file`` needs every line to be valid JSON with a contact_id.)"""
    import orjson

    from worker_harness import Producer

    lines = [line.strip() for line in path.read_bytes().splitlines() if line.strip()]
    parsed: list[dict[str, Any]] = []
    sends: list[tuple[bytes, str, bytes | None]] = []
    for line in lines:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
        key = None
        topic = topics.contact_events
        if isinstance(obj, dict):
            parsed.append(obj)
            if isinstance(obj.get("contact_id"), str):
                key = obj["contact_id"].encode()
            if obj.get("type") == "survey.response":
                topic = topics.survey_responses
        sends.append((line, topic, key))
    async with Producer(bootstrap, topics) as producer:
        for line, topic, key in sends:
            await producer.send([line], topic=topic, key=key)
    return len(sends), parsed
