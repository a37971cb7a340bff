"""Grafana dashboards as code: the checked-in JSON is what grafana/build.py writes, every panel queries
Prometheus, and every query is valid PromQL for a real Prometheus (Debian ``prometheus`` package).

The later end-to-end test runs the same expressions with data: ``grafana/queries.py``.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from local_server import serving

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
RECORDING = ROOT / "deploy" / "prometheus" / "rules" / "recording.yml"
PROMETHEUS = shutil.which("prometheus")


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"cxpulse_grafana_{name}", GRAFANA / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build = load("build")
queries = load("queries")


def dashboards() -> dict[str, dict]:
    return queries.dashboards()


# --- generated JSON ----------------------------------------------------------------------------------
def test_checked_in_json_is_what_build_writes() -> None:
    rendered = build.render()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in (GRAFANA / "dashboards").glob("*.json")}
    assert sorted(on_disk) == sorted(rendered), "dashboards added or removed: run grafana/build.py"
    stale = [name for name, text in rendered.items() if on_disk[name] != text]
    assert stale == [], f"stale dashboards {stale}: run .venv/bin/python grafana/build.py"


def test_build_check_flag_detects_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, text in build.render().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    monkeypatch.setattr(build, "OUT_DIR", tmp_path)
    assert build.main(["--check"]) == 0
    first = next(iter(tmp_path.glob("*.json")))
    first.write_text(first.read_text(encoding="utf-8").replace("cxpulse", "cxpulze", 1), encoding="utf-8")
    assert build.main(["--check"]) == 1


def test_every_panel_has_a_promql_target() -> None:
    for name, dash in dashboards().items():
        panels = [p for p in dash["panels"] if p["type"] != "row"]
        assert panels, name
        for panel in panels:
            exprs = [t.get("expr", "").strip() for t in panel.get("targets", [])]
            assert any(exprs), f"{name}: panel {panel.get('title')!r} has no PromQL target"
            assert panel["datasource"]["uid"] == "cxpulse-prometheus", (name, panel["title"])


def test_all_panel_queries_lists_every_target_with_substitutable_variables() -> None:
    rows = queries.all_panel_queries()
    targets = sum(len(p.get("targets", [])) for d in dashboards().values() for p in d["panels"])
    assert len(rows) == targets
    assert {d for d, _, _ in rows} == {"wallboard", "supervisor", "pipeline"}
    for _, _, expr in rows:
        assert "$" not in queries.substitute(expr)
    used = " ".join(e for _, _, e in rows)
    assert "$queue" in used and "$channel" in used and "$__rate_interval" in used
    assert queries.substitute('x{queue=~"$queue"}', queue="billing") == 'x{queue=~"billing"}'


def test_recorded_series_used_by_panels_exist() -> None:
    recorded = set(re.findall(r"- record: (\S+)", RECORDING.read_text(encoding="utf-8")))
    for dashboard, title, expr in queries.all_panel_queries():
        for name in re.findall(r"\b[a-z_]+:[a-z_0-9]+:[a-z_0-9]+\b", expr):
            assert name in recorded, f"{dashboard}/{title}: {name} is not a recording rule"


def test_wallboard_is_kiosk_friendly() -> None:
    wall = dashboards()["wallboard"]
    assert wall["refresh"] == "5s"
    variables = {v["name"]: v for v in wall["templating"]["list"]}
    assert set(variables) == {"queue", "channel"}
    for v in variables.values():
        assert v["type"] == "query" and v["query"].startswith("label_values(")
        assert v["includeAll"] and v["allValue"] == ".*"
    assert all(p["type"] == "stat" for p in wall["panels"])
    assert all(p["gridPos"]["h"] >= 8 for p in wall["panels"])
    sl = next(p for p in wall["panels"] if p["title"].startswith("Service level"))
    steps = sl["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["color"] for s in steps] == ["red", "green"]
    assert steps[1]["value"] == build.SL_TARGET == 0.8


def test_supervisor_and_pipeline_cover_their_kpis() -> None:
    sup = " ".join(e for d, _, e in queries.all_panel_queries() if d == "supervisor")
    for series in ("sl_in_time_contacts", "sl_target", "wait_time_answered", "abandoned_long", "handle_time", "survey_nps",
                   "survey_csat", "first_contacts_resolved", "first_contacts_confirmed"):
        assert series in sup, series
    pipe = " ".join(e for d, _, e in queries.all_panel_queries() if d == "pipeline")
    for metric in ("events_processed_total", "consumer_lag", "invalid_events_total", "duplicate_events_total",
                   "last_event_timestamp_seconds", "last_processed_timestamp_seconds"):
        assert f"cxpulse_{metric}" in pipe, metric


def test_provisioning() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text(encoding="utf-8"))
    assert ds["apiVersion"] == 1
    assert [d["uid"] for d in ds["datasources"]] == [build.DATASOURCE.uid]
    assert ds["datasources"][0]["type"] == "prometheus"
    prov = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "cxpulse.yml").read_text(encoding="utf-8"))
    assert prov["apiVersion"] == 1
    assert [(p["type"], "path" in p["options"]) for p in prov["providers"]] == [("file", True)]


# --- every expression parses on a real Prometheus ----------------------------------------------------
@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    assert PROMETHEUS, "prometheus not found: install the Debian 'prometheus' package (the Makefile does)"
    tmp = tmp_path_factory.mktemp("prometheus")
    config = tmp / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n", encoding="utf-8")
    argv = lambda port: [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",  # noqa: E731
                         f"--web.listen-address=127.0.0.1:{port}"]
    with serving(argv, tmp / "log", "prometheus") as url:
        yield url


def _query(url: str, expr: str) -> dict:
    data = urllib.parse.urlencode({"query": expr}).encode()
    try:
        with urllib.request.urlopen(f"{url}/api/v1/query", data=data, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:  # 400 bad_data carries the parse error in its body
        return json.loads(err.read())


def test_prometheus_rejects_a_bad_expression(prometheus_url: str) -> None:
    """The check below would be worthless if Prometheus answered success to anything."""
    assert _query(prometheus_url, "sum by (queue (x)")["status"] == "error"


def test_every_panel_query_is_valid_promql(prometheus_url: str) -> None:
    failures = []
    for dashboard, title, expr in queries.all_panel_queries():
        for values in ({}, {"queue": "billing", "channel": "voice"}):
            answer = _query(prometheus_url, queries.substitute(expr, **values))
            if answer.get("status") != "success":
                failures.append(f"{dashboard}/{title}: {answer.get('error')} in {expr}")
    assert failures == []
