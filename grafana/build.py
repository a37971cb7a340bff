"""Build the cxpulse Grafana dashboards as code and write ``grafana/dashboards/*.json``.

    .venv/bin/python grafana/build.py            # regenerate (commit the JSON)
    .venv/bin/python grafana/build.py --check    # exit 1 when the checked-in JSON is stale

Three dashboards. Every panel reads the Prometheus data source chosen by the dashboard variable
``${datasource}`` (default: Grafana's default Prometheus), so a dashboard imports into any Grafana; the
provisioned one (``grafana/provisioning``, uid ``cxpulse-prometheus``) is simply the default there.

- ``cxpulse-wallboard``: for a TV in kiosk mode (``/d/cxpulse-wallboard?kiosk``): big stat panels, one
  tile per queue, 5 s refresh, ``$queue`` / ``$channel`` filters; a "Today" row (the service level by each
  queue's own ``sl_formula``, from ``contactcenter_sl_formula_info``); then one row per queue (repeated over
  ``$queue``).
- ``cxpulse-supervisor``: every KPI over time, by queue.
- ``cxpulse-pipeline``: health of the workers (event rates, lag, invalid events, freshness, duplicates).

Queue KPIs read the per-(queue, channel) counters of ``deploy/prometheus/rules/recording.yml`` and add
them up by queue before dividing, so the ``$channel`` filter applies and totals follow kpis.md.

Per-queue colours: a queue is judged against its own settings, which the worker exports as
``contactcenter_sl_target_ratio`` and ``contactcenter_sl_threshold_seconds`` per (queue, channel). The kiosk
tiles query those beside the KPI as tables and turn each queue's row into a field whose thresholds are that
row's values (Grafana's "Rows to fields" transformation with ``threshold1`` mappings): service level is red
below the queue's target, longest wait and ASA turn yellow past the queue's threshold T and red past 3 T
(CxLongestWaitFarAboveThreshold). So email, with T = 4 h, is not red at 30 s.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import prometheus as prom_b
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import timeseries as ts_b
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dash_m
from grafana_foundation_sdk.models import prometheus as prom_m

from cxpulse.core.definitions import SERVICE_LEVEL, SL_FORMULA_INFO, Export, prom_terms


HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "dashboards"

DATASOURCE_VARIABLE = "datasource"
DATASOURCE = dash_m.DataSourceRef(type_val="prometheus", uid="${%s}" % DATASOURCE_VARIABLE)
PROVISIONED_UID = "cxpulse-prometheus"  # grafana/provisioning/datasources/prometheus.yml
ABANDON_ALERT = 0.10  # CxAbandonmentSpike's absolute threshold (deploy/prometheus/rules/alerts.yml)

QC = 'queue=~"$queue",channel=~"$channel"'  # the filter every queue query carries


# --- PromQL helpers ----------------------------------------------------------------------------------
def inc(counter: str, window: str) -> str:
    """A zero-filled recorded increase of ``counter`` over ``window``, filtered by the variables."""
    return f"queue_channel:contactcenter_{counter}:increase{window}{{{QC}}}"


def by_queue(expr: str) -> str:
    return f"sum by (queue) ({expr})"


def ratio(num: str, den: str, window: str, scale: str = "") -> str:
    """Counts added per queue, then divided; a zero denominator gives no value (kpis.md: null)."""
    return f"{scale}{by_queue(inc(num, window))} / ({by_queue(inc(den, window))} > 0)"


def service_level(window: str) -> str:
    """By each queue's ``sl_formula``: the recorded numerator and denominator already follow it."""
    return ratio("sl_in_time_contacts", "sl_eligible_contacts", window)


def abandon_rate(window: str) -> str:
    """(abandoned - abandoned_short) / (answered + abandoned - abandoned_short), whatever the queue's
    ``sl_formula`` (``sl_eligible_contacts`` follows that formula, the abandon rate does not)."""
    long = by_queue(inc("contacts_abandoned_long", window))
    return f"{long} / (({by_queue(inc('contacts_answered', window))} + {long}) > 0)"


def asa(window: str) -> str:
    return ratio("wait_time_answered_seconds_sum", "wait_time_answered_seconds_count", window)


def aht(window: str) -> str:
    return ratio("handle_time_seconds_sum", "handle_time_seconds_count", window)


def nps(window: str) -> str:
    promoters = by_queue(inc("survey_nps_promoters", window))
    detractors = by_queue(inc("survey_nps_detractors", window))
    responses = by_queue(inc("survey_nps_responses", window))
    return f"100 * ({promoters} - {detractors}) / ({responses} > 0)"


# --- panel helpers -----------------------------------------------------------------------------------
def query(expr: str, legend: str = "{{queue}}", ref: str = "A", instant: bool = False) -> prom_b.Dataquery:
    q = prom_b.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    return q.instant() if instant else q.range()


def table_query(expr: str, ref: str) -> prom_b.Dataquery:
    """An instant query as a table (one row per queue: ``queue``, ``Value #<ref>``) for per-row config."""
    return (prom_b.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE).instant()
            .format(prom_m.PromQueryFormat.TABLE))


def queue_setting(metric: str, scale: str = "") -> str:
    """A per-queue setting the worker exports per (queue, channel), e.g. the SL target; max over channels."""
    return f"{scale}max by (queue) ({metric}{{{QC}}})"


def per_queue_thresholds(value: str, steps: list[tuple[str, str]]) -> tuple[list[prom_b.Dataquery], list[dash_m.DataTransformerConfig]]:
    """Queries and transformations that colour each queue's tile against that queue's own settings.

    ``value`` is the KPI by queue; ``steps`` are (PromQL by queue, colour) in ascending order, the first one
    the base colour (its value is ignored by Grafana: the lowest step starts at -infinity). The tables are
    merged on ``queue``; "Rows to fields" makes one field per row named by the queue, valued by the KPI, with
    the row's step values as its thresholds."""
    refs = "ABCDEFGH"
    queries = [table_query(value, "A")] + [table_query(expr, refs[i + 1]) for i, (expr, _) in enumerate(steps)]
    mappings: list[dict[str, object]] = [
        {"fieldName": "Time", "handlerKey": "__ignore"},
        {"fieldName": "queue", "handlerKey": "field.name"},
        {"fieldName": "Value #A", "handlerKey": "field.value"},
    ]
    for i, (_, colour) in enumerate(steps):
        mappings.append({"fieldName": f"Value #{refs[i + 1]}", "handlerKey": "threshold1",
                         "handlerArguments": {"threshold": {"color": colour}}})
    transformations = [
        dash_m.DataTransformerConfig(id_val="merge", options={}),
        dash_m.DataTransformerConfig(id_val="rowsToFields", options={"mappings": mappings}),
    ]
    return queries, transformations


def steps(*pairs: tuple[float | None, str]) -> dash_b.ThresholdsConfig:
    return (
        dash_b.ThresholdsConfig()
        .mode(dash_m.ThresholdsMode.ABSOLUTE)
        .steps([dash_m.Threshold(value=v, color=c) for v, c in pairs])
    )


def big_stat(title: str, expr: str, unit: str, thresholds: dash_b.ThresholdsConfig, description: str,
             w: int = 8, h: int = 8, decimals: int | None = None,
             per_queue: list[tuple[str, str]] | None = None) -> stat_b.Panel:
    """A kiosk tile: one big number per queue, coloured background, no sparkline clutter.

    ``per_queue``: (PromQL by queue, colour) steps from each queue's own settings (:func:`per_queue_thresholds`);
    ``thresholds`` then only colours a value without settings (a queue no worker exports a target for)."""
    panel = (
        stat_b.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
    )
    if per_queue:
        targets, transformations = per_queue_thresholds(expr, per_queue)
        panel = panel.targets(targets).transformations(transformations)
    else:
        panel = panel.with_target(query(expr, instant=True))
    panel = (
        panel
        .unit(unit)
        .thresholds(thresholds)
        .color_scheme(dash_b.FieldColor().mode(dash_m.FieldColorModeId.THRESHOLDS))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .justify_mode(common.BigValueJustifyMode.CENTER)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .no_value("-")
        .span(w)
        .height(h)
    )
    return panel.decimals(decimals) if decimals is not None else panel


def graph(title: str, targets: list[prom_b.Dataquery], unit: str, description: str,
          w: int = 12, h: int = 8, min_val: float | None = None, max_val: float | None = None,
          thresholds: dash_b.ThresholdsConfig | None = None) -> ts_b.Panel:
    panel = (
        ts_b.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(targets)
        .unit(unit)
        .line_width(2)
        .fill_opacity(10)
        .legend(
            common_b.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "mean"])
        )
        .span(w)
        .height(h)
    )
    if min_val is not None:
        panel = panel.min(min_val)
    if max_val is not None:
        panel = panel.max(max_val)
    if thresholds is not None:
        panel = panel.thresholds(thresholds).thresholds_style(
            common_b.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
        )
    return panel


def datasource_variable() -> dash_b.DatasourceVariable:
    """``$datasource``: any Prometheus of the Grafana the dashboard is imported into (default: its default)."""
    return (
        dash_b.DatasourceVariable(DATASOURCE_VARIABLE)
        .label("Prometheus")
        .type("prometheus")
        .description("The Prometheus that scrapes the cxpulse workers and evaluates their recording rules.")
    )


def label_variable(name: str, label: str, source: str) -> dash_b.QueryVariable:
    """Multi-select with "All" = ``.*`` so that ``=~"$queue"`` matches everything."""
    return (
        dash_b.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(source)
        .refresh(dash_m.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dash_m.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(dash_m.VariableOption(selected=True, text="All", value="$__all"))
    )


def queue_variables() -> list[dash_b.QueryVariable | dash_b.DatasourceVariable]:
    return [
        datasource_variable(),
        label_variable("queue", "Queue", "label_values(contactcenter_contacts_offered_total, queue)"),
        label_variable(
            "channel", "Channel", 'label_values(contactcenter_contacts_offered_total{queue=~"$queue"}, channel)'
        ),
    ]


def base(uid: str, title: str, refresh: str, time_from: str, description: str) -> dash_b.Dashboard:
    return (
        dash_b.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["cxpulse"])
        .refresh(refresh)
        .time(time_from, "now")
        .timezone("browser")
        .tooltip(dash_m.DashboardCursorSync.CROSSHAIR)
        .readonly()
        .link(
            dash_b.DashboardLink("cxpulse")
            .type(dash_m.DashboardLinkType.DASHBOARDS)
            .tags(["cxpulse"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )


# --- dashboards --------------------------------------------------------------------------------------
TARGET = "contactcenter_sl_target_ratio"
THRESHOLD = "contactcenter_sl_threshold_seconds"
# each queue's own colours: red below its target; for waits green, yellow past its T, red past 3 T
SL_STEPS = [(queue_setting(TARGET, "0 * "), "red"), (queue_setting(TARGET), "green")]
WAIT_STEPS = [(queue_setting(THRESHOLD, "0 * "), "green"), (queue_setting(THRESHOLD), "yellow"),
              (queue_setting(THRESHOLD, "3 * "), "red")]


def today_count(counter: str, extra: str = "") -> str:
    """A counter's increase since local midnight, by queue: the panel's time range is "today so far"
    (``timeFrom: now/d``), so ``$__range`` is the time since midnight in the browser's time zone."""
    return f"sum by (queue) (increase(contactcenter_{counter}_total{{{QC}{extra}}}[$__range]))"


def _filtered(selector: str) -> str:
    """A series selector of the table with the dashboard's queue/channel filter added."""
    return f"{selector[:-1]},{QC}}}" if selector.endswith("}") else f"{selector}{{{QC}}}"


# every (queue, channel) with any cxpulse counter: 0 for a counter not created yet (as the recording rules do)
TODAY_ZERO = f'0 * group by (queue, channel) ({{__name__=~"contactcenter_.+_total",{QC}}})'


def _today_side(terms: tuple[tuple[int, Export], ...]) -> str:
    """A numerator or denominator of the table per (queue, channel) since midnight, zero-filled."""
    out = ""
    for sign, export in terms:
        term = (f"(sum by (queue, channel) (increase({_filtered(export.selector)}[$__range])) "
                f"or on (queue, channel) {TODAY_ZERO})")
        out = term if not out else f"{out} {'+' if sign > 0 else '-'} on (queue, channel) {term}"
    return f"({out})" if len(terms) > 1 else out


def _by_formula(side: int) -> str:
    """One side of the service level per (queue, channel), each by its own ``sl_formula``: the table's
    variant where ``contactcenter_sl_formula_info`` names it (variants with the same expression share a
    branch), the default formula where a worker exports no info (the recording rules' construction)."""
    by_expr: dict[str, list[str]] = {}
    for variant, ratio in SERVICE_LEVEL.variants.items():
        by_expr.setdefault(_today_side(prom_terms(ratio)[side]), []).append(variant)
    branches = [f'({expr} and on (queue, channel) {SL_FORMULA_INFO}{{formula=~"{"|".join(names)}"}})'
                for expr, names in by_expr.items()]
    branches.append(f"({_today_side(prom_terms(SERVICE_LEVEL.ratio())[side])} "
                    f"unless on (queue, channel) {SL_FORMULA_INFO})")
    return " or ".join(branches)


def service_level_today() -> str:
    """Service level since midnight by queue, exactly by each (queue, channel)'s ``sl_formula``: the chosen
    numerators and denominators added per queue, then divided (kpis.md; a zero denominator: no value)."""
    assert all(r.scale == 1 for r in SERVICE_LEVEL.variants.values())
    return f"sum by (queue) ({_by_formula(0)}) / (sum by (queue) ({_by_formula(1)}) > 0)"


def today_panels() -> list[stat_b.Panel]:
    """The "today" row: counts and ratios since midnight (kpis.md window ``today``), the service level by
    each queue's own formula (:func:`service_level_today`)."""
    answered = today_count("contacts_answered")
    long_abandons = today_count("contacts_abandoned", ',kind="long"')
    wait_sum = "sum by (queue) (increase(contactcenter_wait_time_seconds_sum{%s,outcome=\"answered\"}[$__range]))" % QC
    wait_count = "sum by (queue) (increase(contactcenter_wait_time_seconds_count{%s,outcome=\"answered\"}[$__range]))" % QC
    tiles = [
        ("Service level today", service_level_today(), "percentunit", steps((None, "blue")),
         "Answered within the threshold / eligible contacts since midnight (the browser's time zone), each "
         "(queue, channel) by its own sl_formula. Red below the queue's own target.", 0),
        ("Offered today", today_count("contacts_offered"), "none", steps((None, "blue")),
         "Contacts offered since midnight (the browser's time zone).", 0),
        ("Answered today", answered, "none", steps((None, "blue")), "Contacts answered since midnight.", 0),
        ("Abandon rate today", f"{long_abandons} / (({answered} + {long_abandons}) > 0)", "percentunit",
         steps((None, "green"), (ABANDON_ALERT / 2, "yellow"), (ABANDON_ALERT, "red")),
         "Long abandons / (answered + long abandons) since midnight.", 1),
        ("ASA today", f"{wait_sum} / ({wait_count} > 0)", "s", steps((None, "blue")),
         "Mean wait of the contacts answered since midnight.", 0),
        ("SLA breaches today", today_count("sla_breaches"), "none", steps((None, "green"), (1, "yellow")),
         "Contacts whose wait passed their queue's threshold since midnight.", 0),
    ]
    out = []
    for i, (title, expr, unit, colours, description, decimals) in enumerate(tiles):
        width = 4  # 6 x 4 = the 24 columns of a row
        per_queue = SL_STEPS if title == "Service level today" else None
        panel = big_stat(title, expr, unit, colours, description, w=width, h=8, decimals=decimals,
                         per_queue=per_queue)
        out.append(panel.time_from("now/d").hide_time_override(False))
    return out


def queue_row_panels() -> list[stat_b.Panel]:
    """The panels of the row repeated once per selected queue (``$queue`` is one queue inside it): the
    figures a team lead of that queue watches, each coloured by that queue's own settings."""
    return [
        big_stat("$queue service level (15 min)", service_level("15m"), "percentunit", steps((None, "blue")),
                 "Last 15 minutes, red below this queue's target.", w=6, h=8, decimals=0, per_queue=SL_STEPS),
        big_stat("$queue waiting", f"sum by (queue) (contactcenter_contacts_waiting{{{QC}}})", "none",
                 steps((None, "green"), (5, "yellow"), (15, "red")), "Contacts queued now.", w=4, h=8, decimals=0),
        big_stat("$queue longest wait", f"max by (queue) (contactcenter_longest_wait_seconds{{{QC}}})", "s",
                 steps((None, "blue")), "Yellow past this queue's threshold T, red past 3 T.", w=5, h=8,
                 decimals=0, per_queue=WAIT_STEPS),
        big_stat("$queue ASA (15 min)", asa("15m"), "s", steps((None, "blue")),
                 "Mean wait of the contacts answered in the last 15 minutes.", w=5, h=8, decimals=0,
                 per_queue=WAIT_STEPS),
        big_stat("$queue abandon rate (15 min)", abandon_rate("15m"), "percentunit",
                 steps((None, "green"), (ABANDON_ALERT / 2, "yellow"), (ABANDON_ALERT, "red")),
                 "Long abandons / (answered + long abandons), last 15 minutes.", w=4, h=8, decimals=1),
    ]


def wallboard() -> dash_b.Dashboard:
    d = base(
        "cxpulse-wallboard",
        "cxpulse wallboard",
        "5s",
        "now-15m",
        "Live queue state for a TV: open with ?kiosk. One tile per queue, each coloured against its own "
        "settings: service level against the queue's target, waits against the queue's threshold T (3 T = red).",
    )
    d = d.timepicker(dash_b.TimePicker().refresh_intervals(["5s", "10s", "30s", "1m"]))
    for v in queue_variables():
        d = d.with_variable(v)
    panels = [
        big_stat(
            "Service level (15 min)",
            service_level("15m"),
            "percentunit",
            steps((None, "blue")),
            "Answered within the threshold / (answered + abandoned - short abandons), last 15 minutes. Red "
            "below the queue's own target (contactcenter_sl_target_ratio), green at or above it.",
            w=12, h=9, decimals=0, per_queue=SL_STEPS,
        ),
        big_stat(
            "Contacts waiting",
            f"sum by (queue) (contactcenter_contacts_waiting{{{QC}}})",
            "none",
            steps((None, "green"), (5, "yellow"), (15, "red")),
            "Contacts queued now, not yet answered or abandoned.",
            w=6, h=9, decimals=0,
        ),
        big_stat(
            "Longest wait",
            f"max by (queue) (contactcenter_longest_wait_seconds{{{QC}}})",
            "s",
            steps((None, "blue")),
            "The longest current wait: yellow past the queue's own threshold T (contactcenter_sl_threshold_seconds), "
            "red past 3 T (the CxLongestWaitFarAboveThreshold alert).",
            w=6, h=9, decimals=0, per_queue=WAIT_STEPS,
        ),
        big_stat(
            "Abandon rate (15 min)",
            abandon_rate("15m"),
            "percentunit",
            steps((None, "green"), (ABANDON_ALERT / 2, "yellow"), (ABANDON_ALERT, "red")),
            "Abandoned (short abandons excluded) / (answered + abandoned - short abandons), last 15 minutes.",
            decimals=1,
        ),
        big_stat(
            "ASA (15 min)",
            asa("15m"),
            "s",
            steps((None, "blue")),
            "Average speed of answer: mean wait of the contacts answered in the last 15 minutes; yellow past "
            "the queue's threshold T, red past 3 T.",
            decimals=0, per_queue=WAIT_STEPS,
        ),
        big_stat(
            "Offered (15 min)",
            by_queue(inc("contacts_offered", "15m")),
            "none",
            steps((None, "blue")),
            "Contacts offered to the queue in the last 15 minutes.",
            w=4, decimals=0,
        ),
        big_stat(
            "SLA breaches (15 min)",
            by_queue(inc("sla_breaches", "15m")),
            "none",
            steps((None, "green"), (1, "yellow"), (10, "red")),
            "Contacts whose wait passed the threshold in the last 15 minutes (counted when it passed).",
            w=4, decimals=0,
        ),
    ]
    for p in panels:
        d = d.with_panel(p)
    d = d.with_row(dash_b.Row("Today (since midnight)"))
    for p in today_panels():
        d = d.with_panel(p)
    # one row per queue: Grafana repeats this row for every value of $queue (All = every queue)
    d = d.with_row(dash_b.Row("Queue $queue").repeat("queue"))
    for p in queue_row_panels():
        d = d.with_panel(p)
    return d


def supervisor() -> dash_b.Dashboard:
    d = base(
        "cxpulse-supervisor",
        "cxpulse supervisor",
        "1m",
        "now-24h",
        "Every KPI over time by queue (rolling windows: 15 min for service, 1 h for handling, 24 h for "
        "surveys and FCR). Definitions: docs/kpis.md.",
    )
    for v in queue_variables():
        d = d.with_variable(v)
    pct = dict(min_val=0, max_val=1)
    panels = [
        graph(
            "Service level (rolling 15 min) and target",
            [
                query(service_level("15m")),
                query(f"max by (queue) (queue_channel:contactcenter_sl_target_ratio:max{{{QC}}})",
                      legend="target {{queue}}", ref="B"),
            ],
            "percentunit",
            "Service level per queue with the queue's own target (series \"target <queue>\").",
            **pct,
        ),
        graph("Service level (rolling 1 h)", [query(service_level("1h"))], "percentunit",
              "Service level per queue over the last hour.", **pct),
        graph("ASA (rolling 15 min)", [query(asa("15m"))], "s",
              "Average speed of answer: mean wait of answered contacts."),
        graph("Abandon rate (rolling 15 min)", [query(abandon_rate("15m"))], "percentunit",
              "Long abandons / (answered + long abandons).", min_val=0,
              thresholds=steps((None, "green"), (ABANDON_ALERT, "red"))),
        graph("AHT (rolling 1 h)", [query(aht("1h"))], "s",
              "Average handle time: talk + hold + wrap per handled contact."),
        graph(
            "Contacts per 15 min",
            [
                query(by_queue(inc("contacts_offered", "15m")), legend="offered {{queue}}"),
                query(by_queue(inc("contacts_answered", "15m")), legend="answered {{queue}}", ref="B"),
                query(by_queue(inc("contacts_abandoned_long", "15m")), legend="abandoned {{queue}}", ref="C"),
            ],
            "none",
            "Offered, answered and abandoned (short abandons excluded) in the last 15 minutes.",
        ),
        graph("NPS (rolling 24 h)", [query(nps("24h"))], "none",
              "100 x (promoters - detractors) / responses, -100..100.", min_val=-100, max_val=100,
              w=8, thresholds=steps((None, "red"), (0, "green"))),
        graph("CSAT (rolling 24 h)", [query(ratio("survey_csat_satisfied", "survey_csat_responses", "24h",
                                                  "100 * "))],
              "percent", "Responses with CSAT 4 or 5 / responses.", min_val=0, max_val=100, w=8),
        graph(
            "FCR (rolling 24 h)",
            [
                query(ratio("first_contacts_resolved", "first_contacts", "24h"), legend="live {{queue}}"),
                query(ratio("first_contacts_confirmed", "first_contacts_closed", "24h"),
                      legend="confirmed {{queue}}", ref="B"),
            ],
            "percentunit",
            "Live FCR (resolved first contacts / first contacts) and confirmed FCR (no repeat within the "
            "FCR window / closed first contacts).",
            w=8, **pct,
        ),
    ]
    for p in panels:
        d = d.with_panel(p)
    d = d.with_row(dash_b.Row("Agents and staffing"))
    for p in agent_panels():
        d = d.with_panel(p)
    d = d.with_row(dash_b.Row("Resolution, cost and feedback"))
    for p in resolution_feedback_panels():
        d = d.with_panel(p)
    return d


def resolution_feedback_panels() -> list[ts_b.Panel]:
    """Contract v2 (kpis.md "Resolution and cost", "Closed-loop feedback"): what a service-centre manager
    reports on. The counters are exported in seconds and currency units, so the ratios need no scaling.

    Contacts per customer has no panel: distinct customers is an exact distinct count per window, kept in the
    KPI document (``/api/v1/kpis``, ``cxpulse replay``), and has no counter: an increase() of a distinct count
    over a range would count a customer once per scrape interval it was seen in, not once per window."""
    q = 'queue=~"$queue",channel=~"$channel"'
    return [
        graph("Average resolution time (rolling 1 h)", [query(ratio("contact_resolution_seconds", "contacts_resolved", "1h"))],
              "s", "Resolved contacts' time from first queued to the resolving contact.ended, per resolved "
              "contact (kpis.md: resolution time).", min_val=0, w=8),
        graph("Resolved contacts per hour", [query(by_queue(inc("contacts_resolved", "1h")))], "none",
              "Final contact.ended (not transferred) with resolved true, over the last hour.", min_val=0, w=8),
        graph("Cost per contact (rolling 24 h)", [query(ratio("contact_cost", "contacts_costed", "24h"))], "none",
              "Cost / handled contacts of queues with cost configured (per-channel or per-queue cost_per_hour "
              "and cost_per_contact); no series for a queue without cost.", min_val=0, w=8),
        graph(
            "Detractor feedback: followed up and breaches (rolling 24 h)",
            [
                query(by_queue(inc("feedback_detractors", "24h")), legend="detractor {{queue}}"),
                query(by_queue(inc("feedback_followed_up", "24h")), legend="followed up {{queue}}", ref="B"),
                query(by_queue(inc("feedback_breaches", "24h")), legend="breaches {{queue}}", ref="C"),
            ],
            "none",
            "Detractor feedback (nps <= 6 or csat <= 2), those followed up, and those not followed up by the "
            "queue's feedback_response_target (each once, at survey ts + target; CxFeedbackBreached).",
            min_val=0, w=8,
        ),
        graph("Average feedback response time (rolling 24 h)",
              [query(ratio("feedback_response_seconds", "feedback_followed_up", "24h"))], "s",
              "Time from a detractor survey to its first follow-up, per followed-up feedback.", min_val=0, w=8),
        graph(
            "Awaiting follow-up now",
            [
                query(f"sum by (queue) (contactcenter_feedback_awaiting_follow_up{{{q}}})",
                      legend="awaiting {{queue}}"),
                query(f"max by (queue) (contactcenter_feedback_oldest_awaiting_seconds{{{q}}}) / 3600",
                      legend="oldest (h) {{queue}}", ref="B"),
            ],
            "none",
            "Detractor feedback not followed up yet, and the oldest one's age in hours (each contact lives on "
            "one worker: counts add up, the oldest is the max; CxFollowUpBacklogGrowing).",
            min_val=0, w=8,
        ),
    ]


def agent_panels() -> list[ts_b.Panel]:
    """Contract v2 (topic agent-events): staffed vs Erlang C required per queue, agents by state and away
    reason (from the team gauges, so an agent serving two queues counts once), occupancy per team.

    agents_staffed adds up over workers (each agent lives on one); agents_required does not (Erlang C): max."""
    q = 'queue=~"$queue"'
    return [
        graph(
            "Agents staffed and required",
            [
                query(f"sum by (queue) (contactcenter_agents_staffed{{{q}}})", legend="staffed {{queue}}"),
                query(f"max by (queue) (contactcenter_agents_required{{{q}}})", legend="required {{queue}}", ref="B"),
            ],
            "none",
            "Agents available, on a contact or in wrap-up per queue, and the agents Erlang C needs to meet the "
            "queue's target at the 15-minute arrival rate and 1-hour AHT (CxQueueShortOfAgents: staffed below "
            "required for 5 minutes).",
            min_val=0,
        ),
        graph(
            "Agents by state (centre)",
            [query('sum by (state) (contactcenter_team_agents{state!="logged_in"})', legend="{{state}}")],
            "none",
            "Logged-in agents by state, each agent once (per team gauges added up).",
            min_val=0,
        ),
        graph(
            "Agents away by reason (centre)",
            [query("sum by (reason) (contactcenter_team_agents_away)", legend="{{reason}}")],
            "none",
            "Agents away now by the reason their agent.state event gave (unspecified when none).",
            min_val=0,
        ),
        graph(
            "Occupancy (rolling 15 min) per team",
            [
                query("team:contactcenter_agent_occupancy:ratio_increase15m", legend="{{team}}"),
                query("centre:contactcenter_agent_occupancy:ratio_increase15m", legend="centre", ref="B"),
            ],
            "percentunit",
            "(on contact + wrap-up seconds) / (available + on contact + wrap-up seconds) over 15 minutes.",
            min_val=0, max_val=1,
        ),
    ]


def pipeline() -> dash_b.Dashboard:
    d = base(
        "cxpulse-pipeline",
        "cxpulse pipeline health",
        "30s",
        "now-3h",
        "Health of the cxpulse workers: are events flowing, fresh, valid, and is the consumer keeping up.",
    )
    d = d.with_variable(datasource_variable())
    ri = "$__rate_interval"
    panels = [
        big_stat("Workers up", 'sum(up{job="cxpulse"})', "none", steps((None, "red"), (1, "green")),
                 "Worker targets Prometheus scrapes successfully.", w=6, h=5, decimals=0),
        big_stat("Since last processing",
                 "time() - max(cxpulse_last_processed_timestamp_seconds)", "s",
                 steps((None, "green"), (60, "yellow"), (600, "red")),
                 "Wall-clock time since any worker processed an event (CxPipelineStalled at 10 min).",
                 w=6, h=5, decimals=0),
        big_stat("Event time behind now",
                 "time() - max(cxpulse_last_event_timestamp_seconds)", "s",
                 steps((None, "green"), (60, "yellow"), (900, "red")),
                 "Now minus the event time of the newest event processed (CxPipelineStalled at 15 min).",
                 w=6, h=5, decimals=0),
        big_stat("Total consumer lag", "sum(max by (topic, partition) (cxpulse_consumer_lag))",
                 "none", steps((None, "green"), (500, "yellow"), (5000, "red")),
                 "Events not yet consumed, all partitions.", w=6, h=5, decimals=0),
        graph("Events processed per second",
              [query(f"sum by (topic) (rate(cxpulse_events_processed_total[{ri}]))",
                     legend="{{topic}}")],
              "ops", "Events processed by the workers, per topic."),
        graph("Consumer lag",
              [query("max by (topic, partition) (cxpulse_consumer_lag)",
                     legend="{{topic}}/{{partition}}")],
              "none", "Per partition: high-water mark minus the committed position."),
        graph("Invalid events per second by reason",
              [query(f"sum by (topic, reason) (rate(cxpulse_invalid_events_total[{ri}]))",
                     legend="{{topic}} {{reason}}")],
              "ops", "Rejected events, by the reason of docs/events.md."),
        graph("Duplicate events per second",
              [query(f"sum by (topic) (rate(cxpulse_duplicate_events_total[{ri}]))",
                     legend="{{topic}}")],
              "ops", "Events with an event_id already seen (ignored)."),
        graph(
            "Freshness",
            [
                query("time() - max(cxpulse_last_processed_timestamp_seconds)",
                      legend="since last processing"),
                query("time() - max(cxpulse_last_event_timestamp_seconds)",
                      legend="event time behind now", ref="B"),
            ],
            "s", "How old the newest processing and the newest event are.",
        ),
        graph(
            "SLA breaches published and queue overflow",
            [
                query(f"sum(rate(cxpulse_sla_breaches_published_total[{ri}]))",
                      legend="breaches published"),
                query("max(cxpulse_queues_folded_into_other)",
                      legend="queues folded into 'other' (most on one worker)", ref="B"),
            ],
            "none", "Breach messages published to sla-breaches per second, and how many queues beyond "
            "worker.max_queues a worker exports as queue 'other'.",
        ),
        graph("Worker versions", [query("count by (version) (cxpulse_build_info)", legend="{{version}}")],
              "none", "Workers per running version (cxpulse_build_info).", w=24, h=6),
    ]
    for p in panels:
        d = d.with_panel(p)
    return d


DASHBOARDS = {"wallboard": wallboard, "supervisor": supervisor, "pipeline": pipeline}


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard (stable: sorted keys, fixed indentation)."""
    return {
        f"{name}.json": json.dumps(build().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the cxpulse Grafana dashboards.")
    parser.add_argument("--check", action="store_true", help="exit 1 if grafana/dashboards/ is stale")
    args = parser.parse_args(argv)
    files = render()
    if args.check:
        stale = [n for n, text in files.items() if not (OUT_DIR / n).is_file()
                 or (OUT_DIR / n).read_text(encoding="utf-8") != text]
        extra = sorted(p.name for p in OUT_DIR.glob("*.json") if p.name not in files)
        for name in stale + extra:
            print(f"grafana/dashboards/{name} is stale: run grafana/build.py", file=sys.stderr)
        return 1 if stale or extra else 0
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (OUT_DIR / name).write_text(text, encoding="utf-8")
        print(f"wrote grafana/dashboards/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
