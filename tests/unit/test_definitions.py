"""The KPI definitions table (cxpulse.core.definitions) against shared/spec/kpis.md, and its three readers.

Hand-computed cases of kpis.md check every ratio and every ``sl_formula`` variant on the table and on the
document (cxpulse.core.report); the recording rules are parsed back into sums of measures (from the rule
text, not from the generator's helpers) and must be exactly the table's numerator and denominator, at every
level and window, per variant for the service level; the collector's series carry what the table says.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import get_args

import orjson
import pytest
import yaml

from cxpulse.core import definitions as d
from cxpulse.core.live import LiveKpis
from cxpulse.core.measures import MEASURES, N_MEASURES, M
from cxpulse.core.report import WINDOW_FIELDS, window_kpis
from cxpulse.models.events import format_ts, parse_any_event
from cxpulse.models.kpis import Window as KpiWindow
from cxpulse.settings import KpiSettings, QueueOverride, Settings, SlFormula
from cxpulse.sinks.prometheus import Histograms, KpiCollector, exposition, registry_for, wait_buckets

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_795_338_000_000_000


def counts(**values: int) -> list[int]:
    out = [0] * N_MEASURES
    for name, value in values.items():
        out[M[name]] = value
    return out


# One window of a voice queue, computed by hand from kpis.md:
# 8 answered (6 within T, waits 80 s in all), 4 abandoned (1 short, 2 within T), 3 handled (900 s), FCR 3 of 4
# first contacts, 2 of 4 closed confirmed, NPS 3/1/1, CSAT 5,5,4,3.
CASE = counts(
    offered=12, answered=8, answered_within_threshold=6, wait_answered_us=80_000_000, abandoned=4,
    abandoned_short=1, abandoned_within_threshold=2, wait_abandoned_us=30_000_000, sla_breaches=3, handled=3,
    handle_us=900_000_000, repeat_contacts=1, first_contacts=4, first_contacts_resolved=3,
    first_contacts_closed=4, first_contacts_confirmed=2, promoters=3, passives=1, detractors=1, csat_3=1,
    csat_4=1, csat_5=2,
    # v2: 10 contacts of 4 customers, 5 resolved in 3000 s, cost 12.5 over 2 of the 3 handled (the third in a
    # queue without cost settings), 4 detractor feedback, 2 followed up in 7200 s, 1 breach
    contacts=10, customers=4, resolved=5, resolution_us=3_000_000_000, cost_micros=12_500_000, costed=2,
    detractor_feedback=4, followed_up=2, feedback_response_us=7_200_000_000, feedback_breaches=1,
)
EXPECTED = {
    "service_level": {
        "exclude_short_abandons": 6 / (8 + 4 - 1),  # answered_within / (answered + abandoned - short)
        "abandons_count_against": 6 / (8 + 4),  # answered_within / (answered + abandoned)
        "abandons_within_count_for": (6 + 2) / (8 + 4),  # (answered_within + abandoned within T) / (...)
    },
    "abandon_rate": (4 - 1) / (8 + 4 - 1),
    "asa_seconds": 10.0,  # 80 s over 8 answers
    "aht_seconds": 300.0,  # 900 s over 3 handled
    "fcr": 0.75,
    "fcr_confirmed": 0.5,
    "nps": 40.0,  # 100 * (3 - 1) / 5
    "csat": 75.0,  # 100 * 3 / 4
    "contacts_per_customer": 2.5,  # 10 contacts / 4 customers
    "average_resolution_seconds": 600.0,  # 3000 s / 5 resolved
    "cost_per_contact": 6.25,  # 12.5 / 2 costed contacts (not / 3 handled)
    "average_feedback_response_seconds": 3600.0,  # 7200 s / 2 followed up
}
EXPECTED_COUNTS = {
    "offered": 12, "answered": 8, "answered_within_threshold": 6, "abandoned": 4, "abandoned_short": 1,
    "sla_breaches": 3, "handled": 3, "repeat_contacts": 1, "first_contacts": 4, "first_contacts_resolved": 3,
    "first_contacts_closed": 4, "first_contacts_confirmed": 2, "nps_responses": 5, "promoters": 3,
    "passives": 1, "detractors": 1, "csat_responses": 4, "csat_satisfied": 3,
    "contacts": 10, "customers": 4, "resolved": 5, "costed_contacts": 2, "detractor_feedback": 4, "followed_up": 2,
    "feedback_breaches": 1,
}


# --- the table against kpis.md -----------------------------------------------------------------------------
def test_table_is_the_document_in_order() -> None:
    assert WINDOW_FIELDS == tuple(f.name for f in d.FIELDS)
    assert set(KpiWindow.model_fields) == {"start", "end", *WINDOW_FIELDS}
    assert set(EXPECTED_COUNTS) == set(d.COUNTS) and set(EXPECTED) == set(d.KPIS)


def test_cost_is_an_amount_null_where_not_configured() -> None:
    """kpis.md v2: cost is 12.5 here; a window with no contact in a queue with cost settings has none (null,
    not 0), and so has no cost per contact."""
    assert window_kpis(CASE, "exclude_short_abandons", 0, 1)["cost"] == 12.5
    unconfigured = counts(handled=3, handle_us=900_000_000)
    doc = window_kpis(unconfigured, "exclude_short_abandons", 0, 1)
    assert (doc["cost"], doc["cost_per_contact"], doc["costed_contacts"]) == (None, None, 0)


def test_contacts_per_customer_has_no_recording_rule() -> None:
    """A distinct count does not add up over time or series: Prometheus records every other ratio."""
    assert set(d.KPIS) - set(d.PROM_KPIS) == {"contacts_per_customer"}


def test_sl_formula_variants_are_the_settings() -> None:
    assert d.SL_FORMULAS == get_args(SlFormula)
    assert tuple(d.SERVICE_LEVEL.variants) == d.SL_FORMULAS
    assert d.SERVICE_LEVEL.default == KpiSettings().sl_formula == d.DEFAULT_SL_FORMULA


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_ratio_by_hand(name: str) -> None:
    kpi = d.KPIS[name]
    expected = EXPECTED[name]
    if isinstance(expected, dict):
        assert kpi.setting == "sl_formula"
        for formula, value in expected.items():
            assert kpi.ratio(formula).evaluate(CASE) == pytest.approx(value), formula
            assert window_kpis(CASE, formula, 0, 1)[name] == pytest.approx(value), formula
    else:
        assert kpi.setting is None
        for formula in d.SL_FORMULAS:  # no variants: the queue's sl_formula changes nothing
            assert window_kpis(CASE, formula, 0, 1)[name] == pytest.approx(expected)
        assert kpi.ratio().evaluate(CASE) == pytest.approx(expected)


def test_every_count_by_hand_and_null_on_zero() -> None:
    doc = window_kpis(CASE, d.DEFAULT_SL_FORMULA, T0, T0 + 1)
    assert {k: doc[k] for k in EXPECTED_COUNTS} == EXPECTED_COUNTS
    assert (doc["start"], doc["end"]) == (format_ts(T0), format_ts(T0 + 1))
    empty = window_kpis([0] * N_MEASURES, "abandons_within_count_for", 0, 1)
    assert all(empty[name] is None for name in d.KPIS)  # kpis.md: a zero denominator is null, not 0


def test_edges_by_hand() -> None:
    # only short abandons: excluded from the default service level (null), counted against by the others
    only_short = counts(abandoned=2, abandoned_short=2)
    assert d.SERVICE_LEVEL.ratio("exclude_short_abandons").evaluate(only_short) is None
    assert d.SERVICE_LEVEL.ratio("abandons_count_against").evaluate(only_short) == 0.0
    assert d.KPIS["abandon_rate"].ratio().evaluate(only_short) is None
    # NPS of detractors only is -100; ASA of 1 µs is exact; microseconds -> seconds divides by 10**6
    assert d.KPIS["nps"].ratio().evaluate(counts(detractors=2)) == -100.0
    assert d.KPIS["asa_seconds"].ratio().evaluate(counts(answered=3, wait_answered_us=7_000_001)) == 7_000_001 / 3 / 1_000_000


def test_sums_parse_and_refuse() -> None:
    s = d.Sum.of("answered + abandoned - abandoned_short")
    assert s.vector() == {"answered": 1, "abandoned": 1, "abandoned_short": -1}
    assert str(s) == "answered + abandoned - abandoned_short" and s.evaluate(CASE) == 11
    assert d.Sum.of("2 * promoters - promoters").vector() == {"promoters": 1}
    for bad in ("answered + nonsense", "answered abandoned", "", "answered + wait_answered_us"):
        with pytest.raises(ValueError):
            d.Sum.of(bad).unit


def test_a_sum_that_cannot_be_read_names_where() -> None:
    """A formula of the table with a character the grammar does not know fails at import, with the offset.

    "answered + Abandoned": "answered " is read (9 characters, the space included), and at offset 9 "+ A..."
    is no term (a measure name is lower case)."""
    with pytest.raises(ValueError, match=re.escape("cannot parse 'answered + Abandoned' at 9")):
        d.Sum.of("answered + Abandoned")


def test_a_sum_prints_as_written() -> None:
    """Help texts and docs print a sum as it was written; a zero coefficient keeps its ``+`` (0 is not
    negative) and its factor: "answered + 0 * abandoned - 2 * abandoned_short" comes back unchanged."""
    text = "answered + 0 * abandoned - 2 * abandoned_short"
    assert str(d.Sum.of(text)) == text
    assert str(d.Sum.of("0 * answered")) == "0 * answered"  # a leading term has no sign unless negative
    assert str(d.Sum.of("- answered")) == "-answered"


def test_asa_divides_microseconds_by_the_exact_million() -> None:
    """kpis.md "Per queue visit": ASA = sum of waits of answered visits / answered, shown in seconds. Waits are
    kept in microseconds; the scale 1e-6 is applied as ``/ 1_000_000`` (1e-6 is no binary fraction, so
    multiplying by it rounds differently). 17 answers waiting 67.760437 s in all:
    67_760_437 / 17 / 1_000_000 = 3.98590805882353 (as a float), where 1e-6 * 67_760_437 / 17 gives
    3.9859080588235294."""
    asa = d.KPIS["asa_seconds"].ratio().evaluate(counts(answered=17, wait_answered_us=67_760_437))
    assert asa == 67_760_437 / 17 / 1_000_000 == 3.98590805882353
    assert asa != 1e-6 * 67_760_437 / 17


def test_a_kpi_without_a_setting_ignores_the_formula_asked_for() -> None:
    """Only the service level has variants (kpis.md "Per queue visit", ``sl_formula``); asking NPS for an
    ``sl_formula`` variant gives its one formula: 100 * (3 - 1) / 5 = 40 on CASE."""
    nps = d.KPIS["nps"]
    assert nps.ratio("abandons_count_against") is nps.ratio() is nps.variants[""]
    assert nps.ratio("abandons_count_against").evaluate(CASE) == 40.0


def test_every_measure_is_exported_and_counters_are_distinct() -> None:
    exported = {name for f in d.FAMILIES for s in f.series for name in s.value.vector()}
    assert exported == set(MEASURES) - {"customers"}  # a distinct count is no counter (measures.DISTINCT)
    metrics = [f.metric for f in d.FAMILIES]
    assert len(metrics) == len(set(metrics))
    records = [e.record for e in d.exports()]
    assert len(records) == len(set(records))


def _records(terms: tuple[tuple[int, d.Export], ...]) -> list[tuple[int, str]]:
    return [(sign, export.record) for sign, export in terms]


def test_decompose_finds_the_fewest_exports_also_through_series_outside_the_target() -> None:
    """The recording rules add up exported series, so a count of kpis.md must be written as a sum of them.
    ``abandoned_short`` has no series of its own (the family exports kind="short" unnamed): it is all
    abandons minus the long ones, contacts_abandoned - contacts_abandoned_long, although contacts_abandoned
    carries no ``abandoned_short`` at all; ``passives`` is all NPS responses minus promoters and detractors
    (3 terms, no shorter way). Each term is listed in table order of the search (named series before the
    family's whole) with its sign."""
    assert _records(d.decompose(d.Sum.of("abandoned_short"))) == [
        (-1, "contacts_abandoned_long"), (1, "contacts_abandoned")]  # -(abandoned - short) + abandoned
    assert _records(d.decompose(d.Sum.of("promoters + passives"))) == [
        (-1, "survey_nps_detractors"), (1, "survey_nps_responses")]  # (p + pa + d) - d
    assert _records(d.decompose(d.Sum.of("passives"))) == [
        (-1, "survey_nps_promoters"), (-1, "survey_nps_detractors"), (1, "survey_nps_responses")]


def test_decompose_uses_each_export_once_and_up_to_the_limit() -> None:
    """Twice ``answered`` is two different exports that both carry it (the counter and the wait histogram's
    count), never one export twice; four unrelated counts need four counters, which ``limit=3`` refuses;
    a sum that is zero is no rule and is refused too."""
    assert _records(d.decompose(d.Sum.of("2 * answered"))) == [
        (1, "contacts_answered"), (1, "wait_time_answered_seconds_count")]
    four = d.Sum.of("answered + handled + first_contacts + promoters")
    assert _records(d.decompose(four)) == [
        (1, "contacts_answered"), (1, "contacts_handled"), (1, "first_contacts"), (1, "survey_nps_promoters")]
    with pytest.raises(ValueError, match=re.escape(f"{four} is not a sum of at most 3 exported series")):
        d.decompose(four, limit=3)
    with pytest.raises(ValueError, match=re.escape("answered - answered is not a sum of at most 4 exported series")):
        d.decompose(d.Sum.of("answered - answered"))


def test_decompose_keeps_to_the_targets_unit() -> None:
    """A sum of microseconds is made of histogram sums (exported in seconds), a count of counters and
    histogram counts: the wait of answered visits is the wait histogram's ``_sum{outcome="answered"}``, and
    ``answered`` never borrows a seconds series."""
    assert _records(d.decompose(d.Sum.of("wait_answered_us"))) == [(1, "wait_time_answered_seconds_sum")]
    assert _records(d.decompose(d.Sum.of("answered"))) == [(1, "contacts_answered")]


# --- the recording rules, read back ------------------------------------------------------------------------
def _generator() -> ModuleType:
    path = ROOT / "deploy" / "prometheus" / "generate_recording_rules.py"
    spec = importlib.util.spec_from_file_location("generate_recording_rules", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


GEN = _generator()
RULES: dict[str, str] = {
    r["record"]: r["expr"].strip() for g in yaml.safe_load(GEN.render())["groups"] for r in g["rules"] if "record" in r
}
LAYER1 = re.compile(r"^sum by \(queue, channel\) \(increase\((\w+)(?:\{(\w+)(=~?)\"([^\"]+)\"\})?\[\w+\]\)\)")
RECORDED = re.compile(r"queue_channel:contactcenter_(\w+):increase\w+")
Vector = dict[str, Fraction]


def layer1_vector(record: str) -> Vector:
    """What a recorded increase adds up, in exported units, read from its rule's selector and the table's
    families (the measures each exported series carries)."""
    match = LAYER1.match(RULES[record])
    assert match, RULES[record]
    metric, label, op, values = match.groups()
    family = next(f for f in d.FAMILIES if f.metric == metric)
    wanted = None if label is None else (values.split("|") if op == "=~" else [values])
    assert label in (None, family.label)
    out: Vector = {}
    for series in family.series:
        if wanted is None or series.label_value in wanted:
            for name, c in series.value.vector().items():
                out[name] = out.get(name, Fraction(0)) + c * family.unit
    return {k: v for k, v in out.items() if v}


def linear(expr: str, window: str) -> Vector:
    """The vector of a sum of recorded increases (``sum by (...)`` wrappers, ``on (...)``, parentheses and
    ``> 0`` dropped; only + and - allowed between terms)."""
    text = re.sub(r"sum (by \([^)]*\) )?\(", "(", expr)
    text = re.sub(r"on \([^)]*\)", "", text).replace("> 0", "")
    out: Vector = {}
    sign = 1
    for token in re.findall(r"[+-]|queue_channel:contactcenter_\w+:increase\w+|[^\s()]+", text):
        if token in "+-":
            sign = 1 if token == "+" else -1
            continue
        assert token.endswith(f":increase{window}"), (token, expr)
        for name, c in layer1_vector(token).items():
            out[name] = out.get(name, Fraction(0)) + sign * c
        sign = 1
    return {k: v for k, v in out.items() if v}


def ratio_vectors(expr: str, window: str) -> tuple[Fraction, Vector, Vector]:
    """``scale * NUM / (DEN > 0)`` -> (scale, NUM, DEN) as vectors of measures."""
    scale_text, rest = re.match(r"^(?:([\d.]+) \* )?(.*)$", expr, re.S).groups()  # type: ignore[union-attr]
    num, den = rest.split("\n  /\n")
    return Fraction(scale_text or 1), linear(num, window), linear(den, window)


def assert_same(ratio: d.Ratio, scale: Fraction, num: Vector, den: Vector) -> None:
    """Exactly the table's numerator and denominator, each in one exported unit, and the same figure."""
    num_unit = next(iter(num.values())) / next(iter(ratio.numerator.vector().values()))
    den_unit = next(iter(den.values())) / next(iter(ratio.denominator.vector().values()))
    assert num == {k: v * num_unit for k, v in ratio.numerator.vector().items()}
    assert den == {k: v * den_unit for k, v in ratio.denominator.vector().items()}
    assert scale * num_unit / den_unit == ratio.scale  # Prometheus: scale * (u_n * num) / (u_d * den)


def branches(expr: str) -> dict[str, str]:
    """formula -> the branch's inner expression; ``""`` for the ``unless`` (no info exported) default."""
    out: dict[str, str] = {}
    for branch in expr.split("\nor\n"):
        inner, tail = re.match(r"^\(\n(.*)\n\) (.*)$", branch, re.S).groups()  # type: ignore[union-attr]
        body = "\n".join(line[2:] for line in inner.splitlines())
        match = re.search(r'formula(=~?)"([^"]+)"', tail)
        if tail.startswith("unless"):
            out[""] = body
        else:
            assert match and tail.startswith("and on"), tail
            for formula in match.group(2).split("|"):
                assert formula not in out
                out[formula] = body
    return out


WINDOWS = ("5m", "15m", "30m", "1h", "6h", "24h")


@pytest.mark.parametrize("window", WINDOWS)
def test_recorded_ratios_are_the_tables(window: str) -> None:
    full = window in GEN.KPI_WINDOWS
    seen = 0
    for kpi in d.PROM_KPIS.values():
        if kpi.setting is not None:
            continue
        for level in ("queue_channel", "queue", "centre"):
            record = GEN.kpi_record(kpi, level, window)
            assert (record in RULES) == full, record
            if full:
                assert_same(kpi.ratio(), *ratio_vectors(RULES[record], window))
                seen += 1
    assert seen == (3 * sum(k.setting is None for k in d.PROM_KPIS.values()) if full else 0)


@pytest.mark.parametrize("window", WINDOWS)
def test_recorded_service_level_follows_each_queues_formula(window: str) -> None:
    sl = d.SERVICE_LEVEL
    num = branches(RULES[f"queue_channel:contactcenter_sl_in_time_contacts:increase{window}"])
    den = branches(RULES[f"queue_channel:contactcenter_sl_eligible_contacts:increase{window}"])
    assert set(num) == set(den) == {"", *d.SL_FORMULAS}
    for formula in ("", *d.SL_FORMULAS):
        ratio = sl.ratio(formula or None)
        assert_same(ratio, Fraction(1), linear(num[formula], window), linear(den[formula], window))
    levels = ("queue_channel", "queue", "centre") if window in GEN.KPI_WINDOWS else ("queue_channel",)
    for level in levels:
        expr = RULES[f"{level}:contactcenter_service_level:ratio_increase{window}"]
        if level == "centre":  # the centre-wide formula on the added counts
            assert "contactcenter_centre_sl_formula_info" in expr
            for formula, body in branches(expr).items():
                assert_same(sl.ratio(formula or None), *ratio_vectors(body, window))
        else:  # a queue has one formula: add up the chosen numerators and denominators
            assert re.fullmatch(
                rf"sum (by \([^)]*\) )?\(queue_channel:contactcenter_sl_in_time_contacts:increase{window}\)\n  /\n"
                rf"\(sum (by \([^)]*\) )?\(queue_channel:contactcenter_sl_eligible_contacts:increase{window}\) > 0\)",
                expr,
            ), expr


def test_checked_in_rules_are_generated() -> None:
    assert (ROOT / "deploy" / "prometheus" / "rules" / "recording.yml").read_text(encoding="utf-8") == GEN.render()


# --- the collector -----------------------------------------------------------------------------------------
def test_collector_series_are_the_tables_and_carry_the_formulas() -> None:
    kpi = KpiSettings(sl_formula="abandons_within_count_for",
                      queues={"vip": QueueOverride(sl_formula="abandons_count_against")})
    settings = Settings(kpi=kpi)
    histograms = Histograms(wait_buckets(settings))
    live = LiveKpis(kpi, observer=histograms)
    events = []
    for i, (queue, outcome, wait) in enumerate((("vip", "abandoned", 2), ("vip", "abandoned", 30),
                                                ("vip", "answered", 4), ("billing", "answered", 40))):
        base = {"contact_id": f"c{i}", "customer_id": f"u{i}", "queue": queue, "channel": "voice"}
        events.append({"event_id": f"{i}q", "type": "contact.queued", "ts": format_ts(T0 + i), "reason": None, **base})
        done = {"event_id": f"{i}o", "type": f"contact.{outcome}", "ts": format_ts(T0 + i + wait * 1_000_000), **base}
        if outcome == "answered":
            done["agent_id"] = "a1"
        events.append(done)
    for offset, event in enumerate(events):
        live.handle("contact-events", 0, parse_any_event(event), orjson.dumps(event), offset)
        live.settle(0)
    text = exposition(registry_for(KpiCollector(settings, live, histograms, {}))).decode()
    assert 'contactcenter_sl_formula_info{channel="voice",formula="abandons_count_against",queue="vip"} 1.0' in text
    assert 'contactcenter_sl_formula_info{channel="voice",formula="abandons_within_count_for",queue="billing"} 1.0' in text
    assert 'contactcenter_centre_sl_formula_info{formula="abandons_within_count_for"} 1.0' in text
    vip = live.totals()[("vip", "voice")]
    for family in d.COUNTER_FAMILIES:
        for series in family.series:
            labels = {"channel": "voice", "queue": "vip"}
            if series.label_value is not None:
                labels[family.label or ""] = series.label_value
            rendered = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            assert f"{family.metric}{{{rendered}}} {float(series.value.evaluate(vip))}" in text, family.metric
    assert 'contactcenter_contacts_abandoned_total{channel="voice",kind="long",queue="vip"} 1.0' in text
