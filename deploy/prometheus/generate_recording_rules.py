"""Write ``deploy/prometheus/rules/recording.yml``: the KPI recording rules, generated so they cannot drift.

Run: ``.venv/bin/python deploy/prometheus/generate_recording_rules.py`` (``--check`` exits 1 when the file
on disk differs from what this script writes; the unit tests call it that way).

Why generated: every KPI is kept for several windows and three aggregation levels (per queue and channel,
per queue, centre-wide), about 150 rules that differ only in a window or a ``by`` clause. Writing them by
hand invites exactly the one copy with a typo nobody notices.

Layout of the generated rules (Prometheus naming, ``level:metric:operations``, see :func:`kpi_record`):

1. Per window, per (queue, channel): the increase of every counter the KPIs need, summed over workers,
   e.g. ``queue_channel:contactcenter_contacts_answered:increase15m``. Each is *zero-filled*: a counter
   the worker has not created yet (no abandon so far, no detractor so far) gives 0 instead of no series, for
   every (queue, channel) that has any contactcenter counter. Without that, "no short abandons" would make
   the service level vanish instead of using 0 for them.
2. Per window and level: the ratio KPIs, computed from (1) with ``sum by (level)``, so that totals add the
   counts and then divide (kpis.md: "Totals over several queues add the counts"). A zero denominator gives
   no series (kpis.md: "A ratio with a zero denominator is null"), via ``/ (denominator > 0)``.
3. The per-(queue, channel) service-level target and threshold, and the error-budget burn rates.

What each rule adds up comes from ``cxpulse/core/definitions.py``, the table the KPI document and the
worker's ``/metrics`` read too: a KPI's numerator and denominator are sums of raw measures there, and the
table says which exported series carries which sum (``kind="long"`` abandons are exactly
``abandoned - abandoned_short``). This script only turns those rows into PromQL; it spells no formula.

Service level honours each queue's ``sl_formula``. The worker exports it per (queue, channel) as
``contactcenter_sl_formula_info{queue, channel, formula} 1`` (and the centre-wide one as
``contactcenter_centre_sl_formula_info{formula} 1``). Per window, ``sl_in_time_contacts`` and
``sl_eligible_contacts`` (the numerator and denominator per (queue, channel)) take, for every series, the
variant whose formula the info gauge names: one ``... and on (queue, channel) <info>{formula=~"..."}`` branch
per distinct expression, joined with ``or``, plus the default formula ``unless`` any info exists (a worker
too old to export it). Queue levels add those up (a queue has one formula); the centre level applies the
centre-wide formula to the raw counts (kpis.md: "Totals over several queues add the counts and apply the
centre-wide sl_formula").
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from cxpulse.core.definitions import (
    AGENT_LEVELS,
    AGENT_OCCUPANCY,
    CENTRE_SL_FORMULA_INFO,
    KPIS,
    PROM_KPIS,
    SL_FORMULA_INFO,
    Export,
    Kpi,
    Ratio,
    exports,
    prom_terms,
)
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
# Every (queue, channel) that has any contactcenter counter or histogram now: the zero-fill base.
ZERO_BASE = (
    '0 * group by (queue, channel) '
    '({__name__=~"contactcenter_.+_total|contactcenter_.+_seconds_count", queue!=""})'
)

# --- ratios (layer 2) ------------------------------------------------------------------------------
LEVELS = (  # (prefix, by clause)
    ("queue_channel", "by (queue, channel) "),
    ("queue", "by (queue) "),
    ("centre", ""),
)

# A KPI whose formula is chosen by a setting: the setting's info gauges (per (queue, channel), centre-wide),
# their label, and the recorded per-(queue, channel) numerator and denominator of the chosen variant.
SETTING_INFO = {"sl_formula": (SL_FORMULA_INFO, CENTRE_SL_FORMULA_INFO, "formula")}
SETTING_RECORDS = {"service_level": ("sl_in_time_contacts", "sl_eligible_contacts")}
ELIGIBLE = SETTING_RECORDS["service_level"][1]  # the service-level denominator (alerts' volume guard)

Terms = tuple[tuple[int, Export], ...]


def terms(ratio: Ratio) -> tuple[Terms, Terms]:
    """The exported series whose sums are exactly the ratio's numerator and denominator (the table's)."""
    return prom_terms(ratio)


def prom_scale(ratio: Ratio, num: Terms, den: Terms) -> str:
    """``""`` or ``"100 * "``: the table's scale, corrected by the units of the exported series (a
    histogram sum is already in seconds where the measure is in microseconds)."""
    scale = ratio.scale * den[0][1].family.unit / num[0][1].family.unit
    if scale == 1:
        return ""
    return f"{scale.numerator if scale.denominator == 1 else float(scale)} * "


def counter_name(name: str, window: str) -> str:
    return f"queue_channel:contactcenter_{name}:increase{window}"


def kpi_record(kpi: Kpi, level: str, window: str) -> str:
    """The recorded name of a KPI at a level over a window, by the Prometheus convention
    ``level:metric:operations`` (operations newest first, the window glued to the one it belongs to, as in
    ``rate5m``): the mean of a histogram (its ``_sum`` over its ``_count``) is
    ``<histogram>:mean<w>`` (ASA, AHT); any other KPI is ``contactcenter_<kpi>:ratio_increase<w>``, a ratio
    of the window's increases. Why the KPI's name and not ``<numerator>_per_<denominator>``: the service
    level's numerator and denominator depend on each queue's ``sl_formula``, and the document, the wallboard
    and kpis.md all call these KPIs by that name. (``Kpi.record`` in cxpulse.core.definitions keeps the old
    spelling; this function is the one the rules, dashboards and tests use.)"""
    num, den = terms(kpi.ratio())
    if len(num) == len(den) == 1:
        (_, top), (_, bottom) = num[0], den[0]
        base = top.record.removesuffix("_sum")
        if top.record.endswith("_sum") and bottom.record == f"{base}_count":
            return f"{level}:contactcenter_{base}:mean{window}"
    return f"{level}:contactcenter_{kpi.name}:ratio_increase{window}"


def joined(parts: list[tuple[int, str]], op_suffix: str = "") -> str:
    """``a + b - c`` from signed PromQL terms; ``op_suffix`` (``" on (queue, channel)"``) goes after each
    operator, so per-(queue, channel) vectors match one to one."""
    out = ""
    for sign, text in parts:
        if not out:
            out = text if sign > 0 else f"-{text}"
        else:
            out += f"\n  {'+' if sign > 0 else '-'}{op_suffix}\n{text}"
    return out


def summed(t: Terms, by: str, window: str) -> str:
    """The terms added up at one level: ``sum by (...) (a) + sum by (...) (b)``."""
    return joined([(sign, f"sum {by}({counter_name(e.record, window)})") for sign, e in t])


def plain(t: Terms, window: str) -> str:
    """The terms added per (queue, channel), without aggregation."""
    return joined([(sign, counter_name(e.record, window)) for sign, e in t], " on (queue, channel)")


def divide(scale: str, num: str, den: str, num_terms: int, den_terms: int) -> str:
    """``scale * num / (den > 0)``: a zero denominator gives no series (kpis.md: null)."""
    if num_terms > 1:
        num = f"({num})"
    if den_terms > 1:
        den = f"({den})"
    return f"{scale}{num}\n  /\n({den} > 0)"


def ratio_expr(ratio: Ratio, by: str, window: str) -> str:
    num, den = terms(ratio)
    return divide(prom_scale(ratio, num, den), summed(num, by, window), summed(den, by, window), len(num), len(den))


def variant_branches(kpi: Kpi, expr_of: Callable[[Ratio], str], info: str, on: str) -> str:
    """One ``(expr) and on (<on>) <info>{label=~"variants"}`` branch per distinct expression, joined with
    ``or``, then the default variant ``unless on (<on>) <info>`` (no info exported: the default formula)."""
    assert kpi.setting is not None
    label = SETTING_INFO[kpi.setting][2]
    by_expr: dict[str, list[str]] = {}
    for variant, ratio in kpi.variants.items():
        by_expr.setdefault(expr_of(ratio), []).append(variant)
    branches = []
    for expr, variants in by_expr.items():
        match = f'{label}="{variants[0]}"' if len(variants) == 1 else f'{label}=~"{"|".join(variants)}"'
        branches.append(f"(\n{_indent(expr)}\n) and on ({on}) {info}{{{match}}}")
    branches.append(f"(\n{_indent(expr_of(kpi.ratio()))}\n) unless on ({on}) {info}")
    return "\nor\n".join(branches)


def _indent(expr: str) -> str:
    return "\n".join(f"  {line}" for line in expr.splitlines())


def exports_for(window: str) -> list[Export]:
    """The layer-1 counters of a window: every named export for the KPI windows, only what the
    service-level variants need for the burn-rate windows (in table order)."""
    if window in KPI_WINDOWS:
        return list(exports())
    used = {e.record for ratio in KPIS["service_level"].variants.values() for t in terms(ratio) for _, e in t}
    return [e for e in exports() if e.record in used]


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
    """Layer 1 (zero-filled increases), the chosen service-level variant per (queue, channel), then the
    ratios of every KPI of the table at every level (only the service level per (queue, channel) in the
    burn-rate windows)."""
    full = window in KPI_WINDOWS
    lines = [f"  - name: cxpulse-kpi-{window}"]
    if window in GROUP_INTERVAL:
        lines.append(f"    interval: {GROUP_INTERVAL[window]}")
    lines.append("    rules:")
    for e in exports_for(window):
        expr = f"sum by (queue, channel) (increase({e.selector}[{window}]))\n  or on (queue, channel)\n{ZERO_BASE}"
        what = " + ".join(f"{c} * {m}" if c != 1 else m for m, c in e.vector().items()).replace("+ -1 * ", "- ")
        lines += rule(counter_name(e.record, window), expr, f"{what}, over {window}, zero-filled")
    for name, (num_record, den_record) in SETTING_RECORDS.items():
        kpi = KPIS[name]
        assert kpi.setting is not None
        info = SETTING_INFO[kpi.setting][0]
        for record, side in ((num_record, 0), (den_record, 1)):
            expr = variant_branches(kpi, lambda r, side=side: plain(terms(r)[side], window), info, "queue, channel")
            what = "numerator" if side == 0 else "denominator"
            lines += rule(counter_name(record, window), expr, f"{name} {what} by the (queue, channel)'s {kpi.setting}")
    for kpi in PROM_KPIS.values() if full else (KPIS["service_level"],):
        for level, by in LEVELS if full else LEVELS[:1]:
            comment = None
            if level == "queue_channel":
                formulas = "; ".join(f"{v or kpi.name}: {r.text}" for v, r in kpi.variants.items())
                comment = f"{kpi.name} = {formulas}"
            lines += rule(kpi_record(kpi, level, window), kpi_expr(kpi, level, by, window), comment)
    return lines


def kpi_expr(kpi: Kpi, level: str, by: str, window: str) -> str:
    """A KPI at one level. With a setting: per queue from the recorded chosen numerator and denominator
    (a queue has one formula), centre-wide by the centre's setting applied to the summed counts."""
    if kpi.name not in SETTING_RECORDS:
        return ratio_expr(kpi.ratio(), by, window)
    if level != "centre":
        num_record, den_record = SETTING_RECORDS[kpi.name]
        num, den = terms(kpi.ratio())
        return divide(prom_scale(kpi.ratio(), num, den), f"sum {by}({counter_name(num_record, window)})",
                      f"sum {by}({counter_name(den_record, window)})", 1, 1)
    assert kpi.setting is not None
    return variant_branches(kpi, lambda r: ratio_expr(r, by, window), SETTING_INFO[kpi.setting][1], "")


def settings_group() -> list[str]:
    lines = ["  - name: cxpulse-kpi-settings", "    rules:"]
    lines += rule(
        "queue_channel:contactcenter_sl_target_ratio:max",
        "max by (queue, channel) (contactcenter_sl_target_ratio)\n  or on (queue, channel)\n"
        f"(0 * {counter_name(ELIGIBLE, '24h')} + {DEFAULT_SL_TARGET})",
        "the queue's target (workers agree; max removes the per-worker copies); "
        f"the default {DEFAULT_SL_TARGET} while no worker exposes one",
    )
    lines += rule(
        "queue_channel:contactcenter_sl_threshold_seconds:max",
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
            f"queue_channel:contactcenter_sl_burn_rate:ratio_increase{window}",
            f"(1 - queue_channel:contactcenter_service_level:ratio_increase{window})\n  / on (queue, channel)\n"
            "(1 - queue_channel:contactcenter_sl_target_ratio:max)",
        )
    return lines


def agent_group() -> list[str]:
    """Agent occupancy (contract v2) per team and centre-wide, over the KPI windows: the increases of the
    seconds-in-state counter summed over workers first, then divided (null while nobody worked)."""
    occ = AGENT_OCCUPANCY
    lines = ["  - name: cxpulse-agent-occupancy", "    rules:"]
    for window in KPI_WINDOWS:
        for level, by in AGENT_LEVELS:
            def seconds(states: tuple[str, ...]) -> str:
                selector = f'contactcenter_agent_state_seconds_total{{state=~"{"|".join(states)}"}}'
                return f"sum {by}(increase({selector}[{window}]))"
            expr = f"{seconds(occ.busy)}\n  /\n({seconds(occ.working)} > 0)"
            comment = f"{occ.name} = {occ.text}" if level == AGENT_LEVELS[0][0] else None
            lines += rule(f"{level}:{occ.record}:ratio_increase{window}", expr, comment)
    return lines


def render() -> str:
    head = [
        "# GENERATED by deploy/prometheus/generate_recording_rules.py - edit that script, then run it.",
        "# KPI definitions: docs/kpis.md; naming: level:metric:operations (Prometheus), window glued to its",
        "# operation: increase15m, ratio_increase15m (a ratio of increases), mean15m (a histogram's sum / count).",
        "# Levels: queue_channel (by queue, channel), queue (by queue), centre (every queue).",
        "# Counters are zero-filled per (queue, channel); ratios with a zero denominator have no series.",
        "groups:",
    ]
    body: list[str] = []
    for window in ("5m", "15m", "30m", "1h", "6h", "24h"):
        body += window_group(window) + [""]
    body += settings_group() + [""] + burn_group() + [""] + agent_group()
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
