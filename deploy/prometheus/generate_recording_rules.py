"""Write ``deploy/prometheus/rules/recording.yml``: the KPI recording rules, generated so they cannot drift.

Run: ``.venv/bin/python deploy/prometheus/generate_recording_rules.py`` (``--check`` exits 1 when the file
on disk differs from what this script writes; the unit tests call it that way).

Why generated: every KPI is kept for several windows and three aggregation levels (per queue and channel,
per queue, centre-wide), about 150 rules that differ only in a window or a ``by`` clause. Writing them by
hand invites exactly the one copy with a typo nobody notices.

Layout of the generated rules (Prometheus naming, ``level:metric:operation``):

1. Per window, per (queue, channel): the increase of every counter the KPIs need, summed over workers,
   e.g. ``queue_channel:contactcenter_contacts_answered:increase_15m``. Each is *zero-filled*: a counter
   the worker has not created yet (no abandon so far, no detractor so far) gives 0 instead of no series, for
   every (queue, channel) that has any contactcenter counter. Without that, "no short abandons" would make
   the service level vanish instead of using 0 for them.
2. Per window and level: the ratio KPIs, computed from (1) with ``sum by (level)``, so that totals add the
   counts and then divide (kpis.md: "Totals over several queues add the counts"). A zero denominator gives
   no series (kpis.md: "A ratio with a zero denominator is null"), via ``/ (denominator > 0)``.
3. The per-(queue, channel) service-level target and threshold, and the error-budget burn rates.

Service level uses the default ``sl_formula`` ``exclude_short_abandons``:
answered_within_threshold / (answered + abandoned - abandoned_short); the worker's ``kind="long"`` abandons
are exactly ``abandoned - abandoned_short``. A centre configured with another formula must change
``SL_NUMERATOR`` / ``SL_DENOMINATOR`` below (the metrics carry what the other formulas need).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from cxpulse.settings import ChannelDefaults

HERE = Path(__file__).resolve().parent
OUT = HERE / "rules" / "recording.yml"

# the default target comes from the settings the worker uses (kpis.md: sl_target 0.80)
DEFAULT_SL_TARGET = ChannelDefaults.model_fields["sl_target"].default

# --- windows ---------------------------------------------------------------------------------------
KPI_WINDOWS = ("15m", "1h", "24h")  # kpis.md windows (``today`` needs the worker's own bounds)
BURN_WINDOWS = ("5m", "30m", "6h")  # extra service-level windows for the multi-window burn-rate alerts
# long windows scan many samples: evaluate them less often (a 1m step on a 6h/24h window changes nothing)
GROUP_INTERVAL = {"6h": "1m", "24h": "1m"}


# --- counters (layer 1) ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Counter:
    name: str  # the ``metric`` part of the recorded name
    selector: str  # raw series to increase()
    help: str


SL_COUNTERS = (
    Counter("contacts_answered", "contactcenter_contacts_answered_total", "answered visits"),
    Counter(
        "contacts_answered_within_threshold",
        "contactcenter_contacts_answered_within_threshold_total",
        "answered with wait <= T",
    ),
    Counter(
        "contacts_abandoned_long",
        'contactcenter_contacts_abandoned_total{kind="long"}',
        "abandons not faster than the short-abandon setting S",
    ),
)
OTHER_COUNTERS = (
    Counter("contacts_offered", "contactcenter_contacts_offered_total", "offered visits"),
    Counter("sla_breaches", "contactcenter_sla_breaches_total", "visits whose wait exceeded T"),
    Counter(
        "wait_time_answered_seconds_sum",
        'contactcenter_wait_time_seconds_sum{outcome="answered"}',
        "sum of waits of answered visits",
    ),
    Counter(
        "wait_time_answered_seconds_count",
        'contactcenter_wait_time_seconds_count{outcome="answered"}',
        "answered visits, as counted by the wait histogram",
    ),
    Counter("handle_time_seconds_sum", "contactcenter_handle_time_seconds_sum", "talk + hold + wrap"),
    Counter("handle_time_seconds_count", "contactcenter_handle_time_seconds_count", "handled contacts"),
    Counter("first_contacts", "contactcenter_first_contacts_total", "first contacts ended"),
    Counter("first_contacts_resolved", "contactcenter_first_contacts_resolved_total", "... and resolved"),
    Counter("first_contacts_closed", "contactcenter_first_contacts_closed_total", "first contacts closed"),
    Counter(
        "first_contacts_confirmed", "contactcenter_first_contacts_confirmed_total", "... and confirmed"
    ),
    Counter("survey_nps_responses", "contactcenter_survey_nps_responses_total", "NPS responses"),
    Counter(
        "survey_nps_promoters",
        'contactcenter_survey_nps_responses_total{category="promoter"}',
        "NPS 9-10",
    ),
    Counter(
        "survey_nps_detractors",
        'contactcenter_survey_nps_responses_total{category="detractor"}',
        "NPS 0-6",
    ),
    Counter("survey_csat_responses", "contactcenter_survey_csat_responses_total", "CSAT responses"),
    Counter(
        "survey_csat_satisfied",
        'contactcenter_survey_csat_responses_total{score=~"4|5"}',
        "CSAT 4 or 5",
    ),
)

# Every (queue, channel) that has any contactcenter counter or histogram now: the zero-fill base.
ZERO_BASE = (
    '0 * group by (queue, channel) '
    '({__name__=~"contactcenter_.+_total|contactcenter_.+_seconds_count", queue!=""})'
)

ELIGIBLE = "sl_eligible_contacts"  # the service-level denominator: answered + abandoned_long

# --- ratios (layer 2) ------------------------------------------------------------------------------
LEVELS = (  # (prefix, by clause)
    ("queue_channel", "by (queue, channel) "),
    ("queue", "by (queue) "),
    ("centre", ""),
)


@dataclass(frozen=True)
class Ratio:
    record: str  # ``metric:operation`` without the window suffix
    numerator: str  # an expression of ``{s}(<counter>)`` terms: {s} is ``sum by (...) `` at each level
    denominator: str  # a counter name (layer-1)
    scale: str  # "" or "100 * "
    help: str


SL_NUMERATOR = "contacts_answered_within_threshold"
SL_DENOMINATOR = ELIGIBLE

SL_RATIO = Ratio(
    "contactcenter_service_level:ratio",
    "{s}(%s)" % SL_NUMERATOR,
    SL_DENOMINATOR,
    "",
    "service level = answered_within_threshold / (answered + abandoned - abandoned_short)",
)
RATIOS = (
    SL_RATIO,
    Ratio(
        "contactcenter_abandon_rate:ratio",
        "{s}(contacts_abandoned_long)",
        ELIGIBLE,
        "",
        "abandon rate = (abandoned - abandoned_short) / (answered + abandoned - abandoned_short)",
    ),
    Ratio(
        "contactcenter_asa:seconds",
        "{s}(wait_time_answered_seconds_sum)",
        "wait_time_answered_seconds_count",
        "",
        "ASA = sum of waits of answered visits / answered",
    ),
    Ratio(
        "contactcenter_aht:seconds",
        "{s}(handle_time_seconds_sum)",
        "handle_time_seconds_count",
        "",
        "AHT = sum(talk + hold + wrap) / handled",
    ),
    Ratio(
        "contactcenter_fcr:ratio",
        "{s}(first_contacts_resolved)",
        "first_contacts",
        "",
        "FCR (live) = first_contacts_resolved / first_contacts",
    ),
    Ratio(
        "contactcenter_fcr_confirmed:ratio",
        "{s}(first_contacts_confirmed)",
        "first_contacts_closed",
        "",
        "FCR confirmed = first_contacts_confirmed / first_contacts_closed",
    ),
    Ratio(
        "contactcenter_nps:score",
        "({s}(survey_nps_promoters) - {s}(survey_nps_detractors))",
        "survey_nps_responses",
        "100 * ",
        "NPS = 100 * (promoters - detractors) / responses, -100..100",
    ),
    Ratio(
        "contactcenter_csat:percent",
        "{s}(survey_csat_satisfied)",
        "survey_csat_responses",
        "100 * ",
        "CSAT = 100 * responses with csat >= 4 / responses, 0..100",
    ),
)


def counter_name(name: str, window: str) -> str:
    return f"queue_channel:contactcenter_{name}:increase_{window}"


def ratio_expr(ratio: Ratio, by: str, window: str) -> str:
    def term(match: re.Match[str]) -> str:
        return f"sum {by}({counter_name(match.group(1), window)})"

    num = re.sub(r"\{s\}\((\w+)\)", term, ratio.numerator)
    den = f"sum {by}({counter_name(ratio.denominator, window)})"
    return f"{ratio.scale}{num}\n  /\n({den} > 0)"


def rule(record: str, expr: str, comment: str | None = None) -> list[str]:
    lines = [f"      # {comment}"] if comment else []
    lines.append(f"      - record: {record}")
    if "\n" in expr:
        lines.append("        expr: |")
        lines.extend(f"          {line}" for line in expr.splitlines())
    else:
        lines.append(f"        expr: {expr}")
    return lines


def window_group(window: str) -> list[str]:
    full = window in KPI_WINDOWS
    counters = SL_COUNTERS + (OTHER_COUNTERS if full else ())
    lines = [f"  - name: cxpulse-kpi-{window}"]
    if window in GROUP_INTERVAL:
        lines.append(f"    interval: {GROUP_INTERVAL[window]}")
    lines.append("    rules:")
    for c in counters:
        expr = f"sum by (queue, channel) (increase({c.selector}[{window}]))\n  or on (queue, channel)\n{ZERO_BASE}"
        lines += rule(counter_name(c.name, window), expr, f"{c.help}, over {window}, zero-filled")
    lines += rule(
        counter_name(ELIGIBLE, window),
        f"{counter_name('contacts_answered', window)}\n  + on (queue, channel)\n"
        f"{counter_name('contacts_abandoned_long', window)}",
        "service-level denominator: answered + abandoned - abandoned_short",
    )
    for ratio in RATIOS if full else (SL_RATIO,):
        for level, by in LEVELS if full else LEVELS[:1]:
            comment = ratio.help if level == "queue_channel" else None
            lines += rule(f"{level}:{ratio.record}_{window}", ratio_expr(ratio, by, window), comment)
    return lines


def settings_group() -> list[str]:
    lines = ["  - name: cxpulse-kpi-settings", "    rules:"]
    lines += rule(
        "queue_channel:contactcenter_sl_target:ratio",
        "max by (queue, channel) (contactcenter_sl_target_ratio)\n  or on (queue, channel)\n"
        f"(0 * {counter_name(ELIGIBLE, '24h')} + {DEFAULT_SL_TARGET})",
        "the queue's target (workers agree; max removes the per-worker copies); "
        f"the default {DEFAULT_SL_TARGET} while no worker exposes one",
    )
    lines += rule(
        "queue_channel:contactcenter_sl_threshold:seconds",
        "max by (queue, channel) (contactcenter_sl_threshold_seconds)",
        "the queue's service-level threshold T",
    )
    return lines


def burn_group() -> list[str]:
    lines = [
        "  - name: cxpulse-kpi-burn-rate",
        "    rules:",
        "      # Error-budget burn rate = (1 - service level over the window) / (1 - target).",
        "      # 1 means the queue misses exactly as many contacts as its target allows; the largest",
        "      # possible value is 1 / (1 - target), i.e. 5 for an 80% target (every contact late).",
    ]
    for window in ("5m", "30m", "1h", "6h"):
        lines += rule(
            f"queue_channel:contactcenter_sl_burn_rate:ratio_{window}",
            f"(1 - queue_channel:contactcenter_service_level:ratio_{window})\n  / on (queue, channel)\n"
            "(1 - queue_channel:contactcenter_sl_target:ratio)",
        )
    return lines


def render() -> str:
    head = [
        "# GENERATED by deploy/prometheus/generate_recording_rules.py - edit that script, then run it.",
        "# KPI definitions: shared/spec/kpis.md; naming: level:metric:operation_window.",
        "# Levels: queue_channel (by queue, channel), queue (by queue), centre (every queue).",
        "# Counters are zero-filled per (queue, channel); ratios with a zero denominator have no series.",
        "groups:",
    ]
    body: list[str] = []
    for window in ("5m", "15m", "30m", "1h", "6h", "24h"):
        body += window_group(window) + [""]
    body += settings_group() + [""] + burn_group()
    return "\n".join(head + body) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file on disk is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is stale: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
