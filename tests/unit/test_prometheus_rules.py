"""Prometheus config, recording and alert rules: promtool checks and unit tests, plus the alert policy.

Needs the Debian ``prometheus`` package (``promtool``), as installed by the Makefile.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
ALERTS = PROM / "rules" / "alerts.yml"
RECORDING = PROM / "rules" / "recording.yml"
RULE_TESTS = sorted((PROM / "tests").glob("*.yml"))
RUNBOOKS = ROOT / "docs" / "runbooks.md"
SEVERITIES = {"critical", "warning", "info"}
# Alerts about a queue missing its SLA: they page (kpis.md sl_target; the alert policy).
SLA_ALERTS = {
    "CxServiceLevelBelowTarget",
    "CxServiceLevelBurnRateFast",
    "CxLongestWaitFarAboveThreshold",
    "CxSlaBreachBurst",
    "CxContactsWaitingNoneAnswered",
}

PROMTOOL = shutil.which("promtool")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL, "promtool not found: install the Debian 'prometheus' package (the Makefile does)"
    return subprocess.run([PROMTOOL, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def alert_rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [dict(rule, group=g["name"]) for g in doc["groups"] for rule in g["rules"] if "alert" in rule]


def alert_expectations() -> list[tuple[str, list[dict]]]:
    """(alertname, exp_alerts) for every alert_rule_test case of every promtool test file."""
    cases = []
    for path in RULE_TESTS:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for test in doc.get("tests", []):
            for case in test.get("alert_rule_test", []) or []:
                cases.append((case["alertname"], case.get("exp_alerts") or []))
    return cases


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


# --- promtool ----------------------------------------------------------------------------------------
def test_recording_rules_are_generated_from_the_script() -> None:
    script = PROM / "generate_recording_rules.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


RECORD_NAME = re.compile(r"^(?P<level>queue_channel|queue|team|centre):(?P<metric>contactcenter_[a-z_]+):(?P<ops>\w+)$")
# operations newest first, the window glued to the operation it belongs to (Prometheus' rate5m): increase15m,
# ratio_increase15m (a ratio of the window's increases), mean15m (a histogram's sum over its count), max
OPERATIONS = re.compile(r"^(?:(?:ratio_)?increase|mean)(?:5m|15m|30m|1h|6h|24h)$|^max$")


def test_recording_rule_names_are_level_metric_operations() -> None:
    doc = yaml.safe_load(RECORDING.read_text(encoding="utf-8"))
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert len(rules) > 100
    for rule in rules:
        name, expr = rule["record"], rule["expr"]
        match = RECORD_NAME.match(name)
        assert match, f"{name}: not level:metric:operations"
        level, metric, ops = match.groups()
        assert OPERATIONS.match(ops), f"{name}: {ops!r} is not an operation (a unit or a bare window is not)"
        assert not metric.endswith("_total"), f"{name}: _total is stripped from a counter under increase"
        if ops == "max":  # a gauge of the worker, its per-worker copies folded
            assert expr.startswith(f"max by (queue, channel) ({metric})"), name
        if ops.startswith("mean"):  # a histogram's mean: its _sum over its _count
            assert f"{metric}_sum:increase" in expr and f"{metric}_count:increase" in expr, name
        by = set(re.findall(r"\bby \(([^)]*)\)", expr))
        wanted = {"queue_channel": "queue, channel", "queue": "queue", "team": "team", "centre": None}[level]
        assert by <= ({wanted} if wanted else set()), f"{name}: aggregated {by}, level says {level}"


def test_promtool_check_config() -> None:
    result = promtool("check", "config", str(PROM / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RECORDING), str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 2


def test_promtool_rule_unit_tests_pass() -> None:
    assert RULE_TESTS, "no promtool tests in deploy/prometheus/tests"
    result = promtool("test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS), result.stdout


def test_prometheus_config_points_at_workers_rules_and_alertmanager() -> None:
    cfg = yaml.safe_load((PROM / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in cfg["scrape_configs"]}
    assert jobs["cxpulse"]["metrics_path"] == "/metrics"
    assert "127.0.0.1:6066" in jobs["cxpulse"]["static_configs"][0]["targets"]
    assert sorted(cfg["rule_files"]) == ["rules/alerts.yml", "rules/recording.yml"]
    targets = cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["127.0.0.1:9093"]


# --- alert policy ------------------------------------------------------------------------------------
def test_every_alert_fires_and_stays_silent_in_some_promtool_test() -> None:
    cases = alert_expectations()
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), "duplicate alert names"
    never_fires = [n for n in names if not any(a == n and exp for a, exp in cases)]
    never_silent = [n for n in names if not any(a == n and not exp for a, exp in cases)]
    assert never_fires == [], f"alerts without a firing expectation: {never_fires}"
    assert never_silent == [], f"alerts without a silent (exp_alerts: []) case: {never_silent}"
    unknown = sorted({a for a, _ in cases} - set(names))
    assert unknown == [], f"tests name alerts that do not exist: {unknown}"


def test_every_alert_has_severity_for_and_annotations() -> None:
    for rule in alert_rules():
        name = rule["alert"]
        assert rule.get("labels", {}).get("severity") in SEVERITIES, name
        assert "for" in rule, f"{name} has no for"
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            assert annotations.get(key), f"{name} has no {key}"


def test_runbook_urls_point_at_a_section_of_the_runbooks() -> None:
    headings = re.findall(r"^#{2,3} (.+)$", RUNBOOKS.read_text(encoding="utf-8"), flags=re.M)
    anchors = {github_anchor(h) for h in headings}
    bases = {rule["annotations"]["runbook_url"].partition("#")[0] for rule in alert_rules()}
    assert len(bases) == 1, f"one runbook base URL for every alert (sed-replaceable), got {bases}"
    assert bases.pop().endswith("/docs/runbooks.md")
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        _, _, anchor = url.partition("#")
        assert anchor == rule["alert"].lower(), url
        assert anchor in anchors, f"docs/runbooks.md has no section for {rule['alert']}"


def test_sla_alerts_page_and_queue_alerts_carry_the_queue_label() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert SLA_ALERTS <= set(rules)
    for name in SLA_ALERTS:
        assert rules[name]["labels"]["severity"] == "critical", name
    # Every alert of the queue groups fires with a queue label (promtool checks the labels exactly).
    queue_alerts = {n for n, r in rules.items() if r["group"] in ("cxpulse-service-level", "cxpulse-customer-experience")}
    assert SLA_ALERTS <= queue_alerts
    for name, exp_alerts in alert_expectations():
        if name in queue_alerts:
            for alert in exp_alerts:
                assert "queue" in alert["exp_labels"] and "channel" in alert["exp_labels"], (name, alert)
