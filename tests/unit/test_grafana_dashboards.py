"""Grafana dashboards as code: the checked-in JSON is what grafana/build.py writes, every panel queries
Prometheus, and every query is valid PromQL for a real Prometheus (Debian ``prometheus`` package).

The later end-to-end test runs the same expressions with data: ``grafana/queries.py``.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
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
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"], (name, panel["title"])


def test_dashboards_import_anywhere() -> None:
    """No data-source uid is pinned: every dashboard has a ``datasource`` variable of type prometheus with no
    preset value (Grafana picks its default), and nothing else in the JSON names a uid."""
    for name, dash in dashboards().items():
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        ds = variables["datasource"]
        assert (ds["type"], ds["query"], ds.get("current")) == ("datasource", "prometheus", None), name
        text = json.dumps(dash)
        assert "cxpulse-prometheus" not in text, name
        uids = set(re.findall(r'"uid": "([^"]*)"', text)) - {dash["uid"]}
        assert uids == {"${datasource}"}, (name, uids)


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
    assert set(variables) == {"datasource", "queue", "channel"}
    for name in ("queue", "channel"):
        v = variables[name]
        assert v["type"] == "query" and v["query"].startswith("label_values(")
        assert v["includeAll"] and v["allValue"] == ".*"
    tiles = [p for p in wall["panels"] if p["type"] != "row"]
    assert all(p["type"] == "stat" for p in tiles)
    assert all(p["gridPos"]["h"] >= 8 for p in tiles)


def _per_queue(panel: dict) -> list[tuple[str, str]]:
    """(PromQL, colour) of each threshold step a panel takes from its queues' rows, in order."""
    transformations = [t["id"] for t in panel.get("transformations", [])]
    assert transformations == ["merge", "rowsToFields"], panel["title"]
    targets = {t["refId"]: t for t in panel["targets"]}
    assert all(t["format"] == "table" and t["instant"] for t in targets.values()), panel["title"]
    mappings = panel["transformations"][1]["options"]["mappings"]
    by_handler = {m["fieldName"]: m["handlerKey"] for m in mappings}
    assert by_handler["queue"] == "field.name" and by_handler["Value #A"] == "field.value"
    return [(targets[m["fieldName"].removeprefix("Value #")]["expr"], m["handlerArguments"]["threshold"]["color"])
            for m in mappings if m["handlerKey"] == "threshold1"]


def test_wallboard_colours_each_queue_against_its_own_settings() -> None:
    """No fixed 0.80 / 20 s: service level against the queue's target, waits against its threshold T."""
    panels = {p["title"]: p for p in dashboards()["wallboard"]["panels"]}
    sl = _per_queue(panels["Service level (15 min)"])
    assert [c for _, c in sl] == ["red", "green"]
    assert sl[1][0] == 'max by (queue) (contactcenter_sl_target_ratio{queue=~"$queue",channel=~"$channel"})'
    for title in ("Longest wait", "ASA (15 min)"):
        waits = _per_queue(panels[title])
        assert [c for _, c in waits] == ["green", "yellow", "red"], title
        assert waits[1][0] == 'max by (queue) (contactcenter_sl_threshold_seconds{queue=~"$queue",channel=~"$channel"})'
        assert waits[2][0] == "3 * " + waits[1][0]
    text = json.dumps(dashboards()["wallboard"])
    assert '"value": 0.8' not in text and '"value": 20' not in text and '"value": 60' not in text


def _row(panels: list[dict], title_start: str) -> list[dict]:
    """The panels of the (expanded) row whose title starts so: those up to the next row."""
    start = next(i for i, p in enumerate(panels) if p["type"] == "row" and p["title"].startswith(title_start))
    end = next((i for i, p in enumerate(panels) if i > start and p["type"] == "row"), len(panels))
    return panels[start + 1:end]


def test_wallboard_has_a_today_row() -> None:
    today = _row(dashboards()["wallboard"]["panels"], "Today")
    assert [p["title"] for p in today] == ["Service level today", "Offered today", "Answered today",
                                          "Abandon rate today", "ASA today", "SLA breaches today"]
    for panel in today:
        assert panel["timeFrom"] == "now/d", panel["title"]
        assert "[$__range]" in panel["targets"][0]["expr"], panel["title"]
    assert sum(p["gridPos"]["w"] for p in today) == 24
    sl = today[0]
    assert "contactcenter_sl_formula_info" in sl["targets"][0]["expr"]
    assert [c for _, c in _per_queue(sl)] == ["red", "green"]  # against each queue's own target


def test_wallboard_repeats_a_row_per_queue() -> None:
    dash = dashboards()["wallboard"]
    [row] = [p for p in dash["panels"] if p["type"] == "row" and p.get("repeat")]
    assert row["repeat"] == "queue" and "$queue" in row["title"] and not row.get("collapsed")
    [queue] = [v for v in dash["templating"]["list"] if v["name"] == "queue"]
    assert queue["multi"] and queue["includeAll"]  # repeat needs a multi-value variable; All = every queue
    panels = _row(dash["panels"], row["title"])
    assert len(panels) == 5 and sum(p["gridPos"]["w"] for p in panels) == 24
    assert {p["gridPos"]["y"] for p in panels} == {row["gridPos"]["y"] + 1}
    for panel in panels:
        assert panel["title"].startswith("$queue "), panel["title"]
        assert not panel.get("repeat"), panel["title"]  # the row repeats, not the panels
        for target in panel["targets"]:
            assert 'queue=~"$queue"' in target["expr"], (panel["title"], target["expr"])
    by_title = {p["title"]: p for p in panels}
    assert [c for _, c in _per_queue(by_title["$queue service level (15 min)"])] == ["red", "green"]
    assert [c for _, c in _per_queue(by_title["$queue longest wait"])] == ["green", "yellow", "red"]


# per-minute steps of each (queue, channel), workers w1 (and w2): answered, within T, abandoned long / short,
# abandoned within T; the formula its workers export (None: none, an old worker: the default formula)
TODAY_CASES = {
    ("billing", "voice"): ((5, 4, 1, 2, 1), "exclude_short_abandons"),
    ("vip", "voice"): ((5, 4, 1, 2, 1), "abandons_count_against"),
    ("retail", "chat"): ((5, 4, 1, 2, 1), "abandons_within_count_for"),
    ("legacy", "voice"): ((5, 4, 1, 2, 1), None),
    ("mixed", "voice"): ((6, 3, 2, 1, 0), "exclude_short_abandons"),
    ("mixed", "chat"): ((4, 2, 1, 1, 1), "abandons_within_count_for"),
    ("sales", "voice"): ((3, 3, 0, 0, 0), "exclude_short_abandons"),  # no abandon counter at all
}


def _sl(steps: tuple[int, ...], formula: str | None) -> tuple[int, int]:
    """(numerator, denominator) by kpis.md's sl_formula (the default: exclude_short_abandons)."""
    answered, within, long, short, abandoned_within = steps
    if formula in (None, "exclude_short_abandons"):
        return within, answered + long
    if formula == "abandons_count_against":
        return within, answered + long + short
    return within + abandoned_within, answered + long + short


def test_service_level_today_follows_each_queues_formula_on_promtool(tmp_path: Path) -> None:
    """The "Service level today" query on promtool's Prometheus engine, with counters of known increases and
    contactcenter_sl_formula_info for every formula (exported twice where two workers run): per queue, the
    chosen numerators added over channels / the chosen denominators, exactly."""
    panel = next(p for p in dashboards()["wallboard"]["panels"] if p["title"] == "Service level today")
    expr = queries.substitute(panel["targets"][0]["expr"], __range="1h")
    series = []
    names = ("contacts_answered_total", "contacts_answered_within_threshold_total",
             'contacts_abandoned_total|kind="long"', 'contacts_abandoned_total|kind="short"',
             "contacts_abandoned_within_threshold_total")
    for (queue, channel), (steps, formula) in TODAY_CASES.items():
        labels = f'job="cxpulse",instance="w1",queue="{queue}",channel="{channel}"'
        for name, step in zip(names, steps):
            if step:
                metric, _, extra = name.partition("|")
                series.append({"series": f"contactcenter_{metric}{{{labels}{',' + extra if extra else ''}}}",
                               "values": f"0+{step}x60"})
        for instance in ("w1", "w2") if formula else ():
            series.append({"series": f'contactcenter_sl_formula_info{{job="cxpulse",instance="{instance}",'
                                     f'queue="{queue}",channel="{channel}",formula="{formula}"}}',
                           "values": "1x60"})
    totals: dict[str, list[int]] = {}
    for (queue, _), (steps, formula) in TODAY_CASES.items():
        num, den = _sl(steps, formula)
        totals.setdefault(queue, [0, 0])
        totals[queue][0] += num
        totals[queue][1] += den
    expected = {"billing": 4 / 6, "vip": 4 / 8, "retail": 5 / 8, "legacy": 4 / 6, "mixed": (3 + 3) / (8 + 6),
                "sales": 1.0}
    assert {q: n / d for q, (n, d) in totals.items()} == expected  # the hand-computed figures
    rules = tmp_path / "none.yml"
    rules.write_text("groups: []\n", encoding="utf-8")
    spec = {"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series,
        "promql_expr_test": [{"expr": expr, "eval_time": "60m", "exp_samples": [
            {"labels": f'{{queue="{q}"}}', "value": v} for q, v in sorted(expected.items())]}],
    }]}
    path = tmp_path / "today_test.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: install the Debian 'prometheus' package (the Makefile does)"
    done = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    # and the check can fail: one formula's figure off and promtool says so
    spec["tests"][0]["promql_expr_test"][0]["exp_samples"][0]["value"] = 0.5
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    wrong = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert wrong.returncode != 0 and "billing" in wrong.stdout + wrong.stderr


def test_supervisor_and_pipeline_cover_their_kpis() -> None:
    sup = " ".join(e for d, _, e in queries.all_panel_queries() if d == "supervisor")
    for series in ("sl_in_time_contacts", "sl_target", "wait_time_answered", "abandoned_long", "handle_time", "survey_nps",
                   "survey_csat", "first_contacts_resolved", "first_contacts_confirmed"):
        assert series in sup, series
    pipe = " ".join(e for d, _, e in queries.all_panel_queries() if d == "pipeline")
    for metric in ("events_processed_total", "consumer_lag", "invalid_events_total", "duplicate_events_total",
                   "last_event_timestamp_seconds", "last_processed_timestamp_seconds"):
        assert f"cxpulse_{metric}" in pipe, metric


def test_supervisor_has_an_agents_and_staffing_row() -> None:
    """Contract v2: staffed vs required per queue, agents by state and away reason, occupancy per team."""
    board = json.loads((GRAFANA / "dashboards" / "supervisor.json").read_text(encoding="utf-8"))
    titles = [p["title"] for p in board["panels"]]
    assert "Agents and staffing" in titles
    after = titles[titles.index("Agents and staffing") + 1:titles.index("Resolution, cost and feedback")]
    assert after == ["Agents staffed and required", "Agents by state (centre)", "Agents away by reason (centre)",
                     "Occupancy (rolling 15 min) per team"]
    sup = " ".join(e for d, _, e in queries.all_panel_queries() if d == "supervisor")
    for series in ("contactcenter_agents_staffed", "contactcenter_agents_required", "contactcenter_team_agents{",
                   "contactcenter_team_agents_away", "team:contactcenter_agent_occupancy:ratio_increase15m"):
        assert series in sup, series


def test_supervisor_has_a_resolution_cost_and_feedback_row() -> None:
    """Contract v2: resolution, cost per contact, detractor feedback followed up / breached, awaiting now (no
    contacts-per-customer panel: a distinct count, in the document only; see resolution_feedback_panels)."""
    board = json.loads((GRAFANA / "dashboards" / "supervisor.json").read_text(encoding="utf-8"))
    titles = [p["title"] for p in board["panels"]]
    after = titles[titles.index("Resolution, cost and feedback") + 1:]
    assert after == ["Average resolution time (rolling 1 h)", "Resolved contacts per hour",
                     "Cost per contact (rolling 24 h)", "Detractor feedback: followed up and breaches (rolling 24 h)",
                     "Average feedback response time (rolling 24 h)", "Awaiting follow-up now"]
    sup = " ".join(e for d, _, e in queries.all_panel_queries() if d == "supervisor")
    for series in ("queue_channel:contactcenter_contact_resolution_seconds:increase1h",
                   "queue_channel:contactcenter_contacts_resolved:increase1h",
                   "queue_channel:contactcenter_contact_cost:increase24h",
                   "queue_channel:contactcenter_contacts_costed:increase24h",
                   "queue_channel:contactcenter_feedback_followed_up:increase24h",
                   "queue_channel:contactcenter_feedback_breaches:increase24h",
                   "queue_channel:contactcenter_feedback_response_seconds:increase24h",
                   "contactcenter_feedback_awaiting_follow_up{", "contactcenter_feedback_oldest_awaiting_seconds{"):
        assert series in sup, series
    assert "customers" not in sup  # no panel pretends to add up distinct customers


def test_per_queue_threshold_queries_answer_per_queue_on_prometheus(prometheus_url: str) -> None:
    """The threshold tables must be valid PromQL returning one row per queue (checked with data in the e2e
    test); here: each parses and the colour steps are ordered as Grafana needs them (ascending)."""
    for title in ("Service level (15 min)", "Longest wait", "ASA (15 min)"):
        panel = next(p for p in dashboards()["wallboard"]["panels"] if p["title"] == title)
        for expr, _ in _per_queue(panel):
            assert _query(prometheus_url, queries.substitute(expr))["status"] == "success", expr


def test_provisioning() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text(encoding="utf-8"))
    assert ds["apiVersion"] == 1
    assert [d["uid"] for d in ds["datasources"]] == [build.PROVISIONED_UID]
    assert ds["datasources"][0]["isDefault"] is True  # what the dashboards' $datasource picks by default
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
