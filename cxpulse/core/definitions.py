"""Every KPI of shared/spec/kpis.md defined once: its counts, its ratio, its scale and its variants.

Why one table: the KPI document (:mod:`cxpulse.core.report`), the Prometheus collector
(:mod:`cxpulse.sinks.prometheus`) and the recording-rule generator (deploy/prometheus) all need the same
formulas. Spelled in each of them, they drift: the recording rules once assumed the default ``sl_formula``
even for a queue that overrides it. Here a KPI is data; each consumer translates the data, and a unit test
checks each translation against hand-computed cases of kpis.md.

Two parts:

- :data:`FIELDS`: the window fields of the KPI document, in document order. A :class:`Count` is a signed
  sum of the raw measures of :mod:`cxpulse.core.measures`; a :class:`Kpi` is a ratio of two such sums
  times a scale, with one :class:`Ratio` per variant when a setting chooses between formulas
  (``service_level`` by ``sl_formula``).
- :data:`FAMILIES`: how the measures are exported to Prometheus: each metric family, its extra label and,
  per label value, the signed sum of measures that series carries. The collector computes the series from
  it; the generator reads, from the same rows, which exported series add up to a KPI's numerator and
  denominator.

Adding a KPI (the v2 ones: agents, resolution, cost, feedback) is adding measures to ``measures.py`` and
entries here; no consumer spells a formula.

Plain Python on purpose (no Faust, Kafka, Redis or pydantic): the generator and the tests import it without
a worker.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

from cxpulse.units import US_PER_SECOND
from cxpulse.core.measures import M

# --- sums of measures ------------------------------------------------------------------------------------

_TERM = re.compile(r"\s*([+-])?\s*(?:(\d+)\s*\*\s*)?([a-z_0-9]+)\s*")


@dataclass(frozen=True)
class Sum:
    """A signed sum of raw measures, e.g. ``answered + abandoned - abandoned_short``.

    Why a value of its own: the same sum is evaluated on counts (the document, the collector), compared as a
    vector (the generator and its test) and printed (help texts, docs)."""

    terms: tuple[tuple[int, str], ...]  # (coefficient, measure name); measure names as in MEASURES

    @classmethod
    def of(cls, text: str) -> "Sum":
        """Parse ``"a + b - c"`` or ``"2 * a"``; every name must be a measure (a typo fails at import)."""
        terms: list[tuple[int, str]] = []
        pos = 0
        while pos < len(text):
            match = _TERM.match(text, pos)  # a match always moves on: a term has at least its name
            if match is None:
                raise ValueError(f"cannot parse {text!r} at {pos}")
            sign, factor, name = match.groups()
            if sign is None and terms:
                raise ValueError(f"missing + or - before {name!r} in {text!r}")
            if name not in M:
                raise ValueError(f"{name!r} in {text!r} is not a measure of cxpulse.core.measures")
            terms.append(((-1 if sign == "-" else 1) * int(factor or 1), name))
            pos = match.end()
        if not terms:
            raise ValueError("empty sum")
        return cls(tuple(terms))

    @property
    def indexed(self) -> tuple[tuple[int, int], ...]:
        """(coefficient, measure index) pairs, for evaluating on a counts list."""
        return tuple((coefficient, M[name]) for coefficient, name in self.terms)

    def evaluate(self, counts: Sequence[int]) -> int:
        """The sum on one counts list (indexed by measure)."""
        return sum(coefficient * counts[M[name]] for coefficient, name in self.terms)

    def vector(self) -> dict[str, int]:
        """Measure -> net coefficient, zeros dropped: two sums are the same count iff their vectors are equal."""
        out: dict[str, int] = {}
        for coefficient, name in self.terms:
            out[name] = out.get(name, 0) + coefficient
        return {name: c for name, c in out.items() if c}

    @property
    def unit(self) -> str:
        """``us`` when the sum adds durations in microseconds, ``1`` when it counts; never both."""
        units = {unit_of(name) for _, name in self.terms}
        if len(units) != 1:
            raise ValueError(f"{self} adds counts and durations")
        return units.pop()

    def __str__(self) -> str:
        out = ""
        for coefficient, name in self.terms:
            sign = "-" if coefficient < 0 else "+"
            factor = f"{abs(coefficient)} * " if abs(coefficient) != 1 else ""
            out += (f" {sign} " if out else ("-" if sign == "-" else "")) + factor + name
        return out


def unit_of(measure: str) -> str:
    """The unit of a raw measure: durations are kept in microseconds (``*_us``), money in millionths of the
    currency unit (``*_micros``, contract v2), everything else counts."""
    if measure.endswith("_us"):
        return "us"
    return "micros" if measure.endswith("_micros") else "1"


# --- the document ----------------------------------------------------------------------------------------

SlFormula = Literal["exclude_short_abandons", "abandons_count_against", "abandons_within_count_for"]
SL_FORMULAS: tuple[str, ...] = ("exclude_short_abandons", "abandons_count_against", "abandons_within_count_for")
DEFAULT_SL_FORMULA = "exclude_short_abandons"

MICROSECONDS = Fraction(1, US_PER_SECOND)  # the scale of a ratio of microseconds to counts, in seconds
MICROS = Fraction(1, 1_000_000)  # the scale of an amount in millionths of the currency unit (v2: cost)


@dataclass(frozen=True)
class Count:
    """A raw count of the document: the value is a sum of measures (most are one measure)."""

    name: str  # the field name in the document
    value: Sum


@dataclass(frozen=True)
class Ratio:
    """One formula of a ratio KPI: ``scale * numerator / denominator``, null when the denominator is 0."""

    numerator: Sum
    denominator: Sum
    scale: Fraction
    text: str  # the formula as kpis.md writes it (help texts, docs)

    def evaluate(self, counts: Sequence[int]) -> float | None:
        """The ratio on one counts list; a zero denominator is null (kpis.md, Windows), not 0 and not 100.

        A scale below 1 divides by its exact integer inverse: ``1e-6`` is not a binary fraction, and
        ``sum_us / n / 1_000_000`` is the figure the document has always shown."""
        denominator = self.denominator.evaluate(counts)
        if denominator == 0:
            return None
        numerator = self.numerator.evaluate(counts)
        if self.scale < 1:
            return numerator / denominator / int(1 / self.scale)
        return float(self.scale) * numerator / denominator


@dataclass(frozen=True)
class Amount:
    """An amount of the document (v2: ``cost``): ``scale * value``, null when ``present`` is 0.

    Why not a Count: kpis.md wants cost null where it is not configured, not 0; a window whose handled
    contacts all lie in queues without cost settings has no ``costed`` contact, so its cost is null."""

    name: str
    value: Sum
    scale: Fraction
    present: Sum

    def evaluate(self, counts: Sequence[int]) -> float | None:
        """``value * scale``, rounded once: an int by int true division is the correctly rounded quotient (for
        cost, millionths / 1_000_000), whatever the scale."""
        if self.present.evaluate(counts) == 0:
            return None
        return self.value.evaluate(counts) * self.scale.numerator / self.scale.denominator


@dataclass(frozen=True)
class Kpi:
    """A ratio field of the document, with its Prometheus recorded name.

    ``setting`` names the setting choosing among ``variants`` (``sl_formula``); a KPI without a setting has
    exactly one variant, under the key ``""``."""

    name: str  # the field name in the document
    record: str  # the recorded Prometheus name without level and window, e.g. contactcenter_service_level:ratio
    variants: Mapping[str, Ratio]
    setting: str | None = None
    default: str = ""  # the variant used when the setting is unset
    prometheus: bool = True  # False: no recording rule (a distinct count is no sum of counters)

    def ratio(self, variant: str | None = None) -> Ratio:
        """The formula for the given setting value (ignored by a KPI without a setting)."""
        if self.setting is None:
            return self.variants[""]
        key = self.default if variant is None else variant
        try:
            return self.variants[key]
        except KeyError:
            raise ValueError(f"unknown {self.setting} {key!r}") from None


def _one(numerator: str, denominator: str, text: str, scale: Fraction | int = 1) -> Mapping[str, Ratio]:
    return {"": Ratio(Sum.of(numerator), Sum.of(denominator), Fraction(scale), text)}


SERVICE_LEVEL = Kpi(
    "service_level",
    "contactcenter_service_level:ratio",
    {
        "exclude_short_abandons": Ratio(
            Sum.of("answered_within_threshold"),
            Sum.of("answered + abandoned - abandoned_short"),
            Fraction(1),
            "answered_within_threshold / (answered + abandoned - abandoned_short)",
        ),
        "abandons_count_against": Ratio(
            Sum.of("answered_within_threshold"),
            Sum.of("answered + abandoned"),
            Fraction(1),
            "answered_within_threshold / (answered + abandoned)",
        ),
        "abandons_within_count_for": Ratio(
            Sum.of("answered_within_threshold + abandoned_within_threshold"),
            Sum.of("answered + abandoned"),
            Fraction(1),
            "(answered_within_threshold + abandoned with wait <= T) / (answered + abandoned)",
        ),
    },
    setting="sl_formula",
    default=DEFAULT_SL_FORMULA,
)

_CSAT = " + ".join(f"csat_{k}" for k in range(1, 6))

FIELDS: tuple[Count | Kpi | Amount, ...] = (
    Count("offered", Sum.of("offered")),
    Count("answered", Sum.of("answered")),
    Count("answered_within_threshold", Sum.of("answered_within_threshold")),
    Count("abandoned", Sum.of("abandoned")),
    Count("abandoned_short", Sum.of("abandoned_short")),
    Count("sla_breaches", Sum.of("sla_breaches")),
    SERVICE_LEVEL,
    Kpi("abandon_rate", "contactcenter_abandon_rate:ratio", _one(
        "abandoned - abandoned_short", "answered + abandoned - abandoned_short",
        "(abandoned - abandoned_short) / (answered + abandoned - abandoned_short)")),
    Kpi("asa_seconds", "contactcenter_asa:seconds", _one(
        "wait_answered_us", "answered", "sum of waits of answered visits / answered", MICROSECONDS)),
    Count("handled", Sum.of("handled")),
    Kpi("aht_seconds", "contactcenter_aht:seconds", _one(
        "handle_us", "handled", "sum(talk + hold + wrap) / handled", MICROSECONDS)),
    Count("repeat_contacts", Sum.of("repeat_contacts")),
    Count("first_contacts", Sum.of("first_contacts")),
    Count("first_contacts_resolved", Sum.of("first_contacts_resolved")),
    Kpi("fcr", "contactcenter_fcr:ratio", _one(
        "first_contacts_resolved", "first_contacts", "first_contacts_resolved / first_contacts")),
    Count("first_contacts_closed", Sum.of("first_contacts_closed")),
    Count("first_contacts_confirmed", Sum.of("first_contacts_confirmed")),
    Kpi("fcr_confirmed", "contactcenter_fcr_confirmed:ratio", _one(
        "first_contacts_confirmed", "first_contacts_closed", "first_contacts_confirmed / first_contacts_closed")),
    Count("nps_responses", Sum.of("promoters + passives + detractors")),
    Count("promoters", Sum.of("promoters")),
    Count("passives", Sum.of("passives")),
    Count("detractors", Sum.of("detractors")),
    Kpi("nps", "contactcenter_nps:score", _one(
        "promoters - detractors", "promoters + passives + detractors",
        "100 * (promoters - detractors) / nps_responses", 100)),
    Count("csat_responses", Sum.of(_CSAT)),
    Count("csat_satisfied", Sum.of("csat_4 + csat_5")),
    Kpi("csat", "contactcenter_csat:percent", _one(
        "csat_4 + csat_5", _CSAT, "100 * (responses with csat >= 4) / csat_responses", 100)),
    # contract v2: kpis.md "Resolution and cost (v2)"
    Count("contacts", Sum.of("contacts")),
    Count("customers", Sum.of("customers")),
    Kpi("contacts_per_customer", "contactcenter_contacts_per_customer:ratio", _one(
        "contacts", "customers", "contacts / customers"), prometheus=False),
    Count("resolved", Sum.of("resolved")),
    Kpi("average_resolution_seconds", "contactcenter_resolution:seconds", _one(
        "resolution_us", "resolved", "resolution_seconds / resolved", MICROSECONDS)),
    Amount("cost", Sum.of("cost_micros"), MICROS, Sum.of("costed")),
    Count("costed_contacts", Sum.of("costed")),
    Kpi("cost_per_contact", "contactcenter_cost_per_contact:ratio", _one(
        "cost_micros", "costed", "cost / handled (queues with cost configured)", MICROS)),
    # contract v2: kpis.md "Closed-loop feedback (v2)"
    Count("detractor_feedback", Sum.of("detractor_feedback")),
    Count("followed_up", Sum.of("followed_up")),
    Kpi("average_feedback_response_seconds", "contactcenter_feedback_response:seconds", _one(
        "feedback_response_us", "followed_up", "feedback_response_seconds / followed_up", MICROSECONDS)),
    Count("feedback_breaches", Sum.of("feedback_breaches")),
)
"""The window fields of the KPI document, in document order (``start`` and ``end`` come first, from the
window itself)."""

COUNTS: dict[str, Count] = {f.name: f for f in FIELDS if isinstance(f, Count)}
KPIS: dict[str, Kpi] = {f.name: f for f in FIELDS if isinstance(f, Kpi)}
PROM_KPIS: dict[str, Kpi] = {name: kpi for name, kpi in KPIS.items() if kpi.prometheus}
"""The KPIs that Prometheus records from counters (all but those made of a distinct count)."""


# --- Prometheus export -----------------------------------------------------------------------------------

PROM_PREFIX = "contactcenter"
FamilyKind = Literal["counter", "histogram_sum", "histogram_count"]


@dataclass(frozen=True)
class Series:
    """One exported series of a family: its label value (None for an unlabelled family) and what it counts.

    ``record`` names the per-(queue, channel) recorded increase of this series alone
    (``queue_channel:contactcenter_<record>:increase_<w>``); None when no rule needs it on its own."""

    label_value: str | None
    value: Sum
    record: str | None = None


@dataclass(frozen=True)
class Family:
    """A Prometheus metric family labelled ``queue, channel`` (plus ``label`` when set).

    ``kind``: a ``counter`` (exported as ``<name>_total``, its series computed from the counts by the
    collector), or the ``_sum`` / ``_count`` of a histogram (filled by the collector's histograms from each
    fact; described here so the rules know what they add up). ``unit`` is the exported value of one unit of
    the measures (a histogram sum is in seconds, the measures in microseconds). ``record`` names the recorded
    increase of the whole family, ``groups`` named unions of some label values."""

    name: str  # e.g. contacts_abandoned -> contactcenter_contacts_abandoned_total
    kind: FamilyKind
    help: str
    series: tuple[Series, ...]
    label: str | None = None
    record: str | None = None
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()
    unit: Fraction = field(default=Fraction(1))

    @property
    def histogram(self) -> str | None:
        """The histogram this ``_sum`` or ``_count`` belongs to (None for a counter)."""
        return None if self.kind == "counter" else self.name.removesuffix("_sum").removesuffix("_count")

    @property
    def metric(self) -> str:
        """The name Prometheus stores (counters get ``_total`` from the client library)."""
        return f"{PROM_PREFIX}_{self.name}_total" if self.kind == "counter" else f"{PROM_PREFIX}_{self.name}"


def _counter(name: str, measure: str, help_text: str, record: str | None = None) -> Family:
    return Family(name, "counter", help_text, (Series(None, Sum.of(measure), record or name),))


FAMILIES: tuple[Family, ...] = (
    _counter("contacts_offered", "offered", "Queue visits offered (contact.queued), by attribution time."),
    _counter("contacts_answered", "answered", "Queue visits answered."),
    _counter("contacts_answered_within_threshold", "answered_within_threshold",
             "Visits answered with wait <= the queue's SL threshold."),
    _counter("contacts_abandoned_within_threshold", "abandoned_within_threshold",
             "Visits abandoned with wait <= the SL threshold."),
    _counter("sla_breaches", "sla_breaches", "Visits whose wait exceeded the SL threshold (at queued + T)."),
    _counter("contacts_handled", "handled", "contact.ended events (agent work finished)."),
    _counter("repeat_contacts", "repeat_contacts",
             "Contacts that repeat a contact of the same customer and reason within the FCR window."),
    _counter("first_contacts", "first_contacts", "First contacts whose final contact.ended arrived."),
    _counter("first_contacts_resolved", "first_contacts_resolved", "First contacts resolved at their final contact.ended."),
    _counter("first_contacts_closed", "first_contacts_closed", "First contacts closed (FCR window over)."),
    _counter("first_contacts_confirmed", "first_contacts_confirmed",
             "Closed first contacts resolved with no matching recontact."),
    # contract v2: resolution, cost and closed-loop feedback
    _counter("contacts", "contacts", "Contacts (first contact.queued of each contact), at t0.", "contacts"),
    _counter("contacts_resolved", "resolved", "Final contact.ended (not transferred) with resolved true."),
    Family("contact_resolution_seconds", "counter",
           "Sum of resolution times (final resolved end - first queued) of resolved contacts, in seconds.",
           (Series(None, Sum.of("resolution_us"), "contact_resolution_seconds"),), unit=MICROSECONDS),
    Family("contact_cost", "counter",
           "Cost of handled contacts (queues with cost configured), in the currency of the cost settings.",
           (Series(None, Sum.of("cost_micros"), "contact_cost"),), unit=MICROS),
    _counter("contacts_costed", "costed", "Handled contacts of queues with cost configured."),
    _counter("feedback_detractors", "detractor_feedback", "Detractor feedback: survey responses with nps <= 6 or csat <= 2."),
    _counter("feedback_followed_up", "followed_up", "Detractor feedback followed up (first survey.followed_up)."),
    Family("feedback_response_seconds", "counter",
           "Sum of times from detractor feedback to its first follow-up, in seconds.",
           (Series(None, Sum.of("feedback_response_us"), "feedback_response_seconds"),), unit=MICROSECONDS),
    _counter("feedback_breaches", "feedback_breaches",
             "Detractor feedback not followed up by survey ts + feedback_response_target (at that moment)."),
    Family(
        "contacts_abandoned", "counter",
        "Queue visits abandoned; kind=short: faster than the short-abandon bound.",
        (Series("short", Sum.of("abandoned_short")),
         Series("long", Sum.of("abandoned - abandoned_short"), "contacts_abandoned_long")),
        label="kind", record="contacts_abandoned",
    ),
    Family(
        "survey_nps_responses", "counter", "Survey NPS answers by category.",
        (Series("promoter", Sum.of("promoters"), "survey_nps_promoters"),
         Series("passive", Sum.of("passives")),
         Series("detractor", Sum.of("detractors"), "survey_nps_detractors")),
        label="category", record="survey_nps_responses",
    ),
    Family(
        "survey_csat_responses", "counter", "Survey CSAT answers by score (1-5).",
        tuple(Series(str(k), Sum.of(f"csat_{k}")) for k in range(1, 6)),
        label="score", record="survey_csat_responses", groups=(("survey_csat_satisfied", ("4", "5")),),
    ),
    Family(
        "wait_time_seconds_sum", "histogram_sum", "Wait in queue of answered and abandoned visits.",
        (Series("answered", Sum.of("wait_answered_us"), "wait_time_answered_seconds_sum"),
         Series("abandoned", Sum.of("wait_abandoned_us"))),
        label="outcome", unit=MICROSECONDS,
    ),
    Family(
        "wait_time_seconds_count", "histogram_count", "Wait in queue of answered and abandoned visits.",
        (Series("answered", Sum.of("answered"), "wait_time_answered_seconds_count"),
         Series("abandoned", Sum.of("abandoned"))),
        label="outcome",
    ),
    Family(
        "handle_time_seconds_sum", "histogram_sum", "Talk + hold + wrap of handled contacts.",
        (Series(None, Sum.of("handle_us"), "handle_time_seconds_sum"),), unit=MICROSECONDS,
    ),
    Family(
        "handle_time_seconds_count", "histogram_count", "Talk + hold + wrap of handled contacts.",
        (Series(None, Sum.of("handled"), "handle_time_seconds_count"),),
    ),
)
"""Every family the collector exports per (queue, channel) from the counts, counters first: where two
exports carry the same count (``answered`` as a counter and as the wait histogram's count), rules use the
first."""

COUNTER_FAMILIES: tuple[Family, ...] = tuple(f for f in FAMILIES if f.kind == "counter")

SL_FORMULA_INFO = f"{PROM_PREFIX}_sl_formula_info"
"""Gauge ``{queue, channel, formula}`` = 1: the ``sl_formula`` of each (queue, channel) the worker knows."""
CENTRE_SL_FORMULA_INFO = f"{PROM_PREFIX}_centre_sl_formula_info"
"""Gauge ``{formula}`` = 1: the centre-wide ``sl_formula``, which totals over queues apply (kpis.md, Windows)."""


@dataclass(frozen=True)
class Export:
    """Something a rule can ``increase()``: a union of series of one family, and what it adds up to."""

    record: str  # the ``contactcenter_<record>`` part of the recorded name
    family: Family
    label_values: tuple[str, ...] | None  # None: the whole family

    @property
    def selector(self) -> str:
        """The PromQL series selector, e.g. ``contactcenter_contacts_abandoned_total{kind="long"}``."""
        if self.label_values is None or self.family.label is None:
            return self.family.metric
        if len(self.label_values) == 1:
            return f'{self.family.metric}{{{self.family.label}="{self.label_values[0]}"}}'
        return f'{self.family.metric}{{{self.family.label}=~"{"|".join(self.label_values)}"}}'

    def vector(self) -> dict[str, int]:
        """Measure -> coefficient of what this export adds up to (in measure units; see ``family.unit``)."""
        out: dict[str, int] = {}
        for series in self.family.series:
            if self.label_values is None or series.label_value in self.label_values:
                for name, coefficient in series.value.vector().items():
                    out[name] = out.get(name, 0) + coefficient
        return {name: c for name, c in out.items() if c}


def exports() -> tuple[Export, ...]:
    """Every named export of :data:`FAMILIES`, in table order: each named series, each named group, and each
    family with a ``record`` as a whole."""
    out: list[Export] = []
    for family in FAMILIES:
        for series in family.series:
            if series.record:
                values = None if series.label_value is None else (series.label_value,)
                out.append(Export(series.record, family, values))
        for record, values in family.groups:
            out.append(Export(record, family, values))
        if family.record:
            out.append(Export(family.record, family, None))
    return tuple(out)


def decompose(target: Sum, prefer: frozenset[str] = frozenset(), limit: int = 4) -> tuple[tuple[int, Export], ...]:
    """The fewest named exports, each added or subtracted once, whose sum is exactly ``target``.

    Why search rather than spell: the rules then follow the table, and e.g. ``abandoned - abandoned_short``
    becomes the single exported series ``kind="long"``. Ties go to exports of a histogram in ``prefer``, then
    to the earlier export (counters first). All terms share one unit, the target's; raises when no
    combination of at most ``limit`` terms exists."""
    want = target.vector()
    unit = target.unit
    # every export of the target's unit, also those sharing no measure with it: abandoned_short is
    # contacts_abandoned - contacts_abandoned_long, and contacts_abandoned carries no abandoned_short
    candidates = sorted(
        (e for e in exports() if _export_unit(e) == unit),
        key=lambda e: e.family.histogram not in prefer,
    )
    vectors = [e.vector() for e in candidates]

    def search(start: int, left: int, acc: dict[str, int]) -> list[tuple[int, int]] | None:
        if not any(acc.values()):
            return []
        if left == 0:
            return None
        for i in range(start, len(candidates)):
            for sign in (1, -1):
                rest = dict(acc)
                for name, c in vectors[i].items():
                    rest[name] = rest.get(name, 0) - sign * c
                found = search(i + 1, left - 1, rest)
                if found is not None:
                    return [(sign, i)] + found
        return None

    for size in range(1, limit + 1):
        found = search(0, size, dict(want))
        if found is not None and len(found) == size:
            return tuple((sign, candidates[i]) for sign, i in found)
    raise ValueError(f"{target} is not a sum of at most {limit} exported series")


def _export_unit(export: Export) -> str:
    """The unit of what an export adds up (its family's series share one: counts, us or micros)."""
    return export.family.series[0].value.unit


def prom_terms(ratio: Ratio) -> tuple[tuple[tuple[int, Export], ...], tuple[tuple[int, Export], ...]]:
    """The exported series whose sums are exactly a ratio's numerator and denominator.

    A denominator prefers the histogram of its numerator: ASA is the wait histogram's ``_sum / _count``,
    two values of one histogram row, rather than a histogram sum over a separately kept counter."""
    numerator = decompose(ratio.numerator)
    histograms = frozenset(e.family.histogram for _, e in numerator if e.family.histogram)
    return numerator, decompose(ratio.denominator, histograms)


# --- agents and staffing (contract v2: kpis.md "Agents (v2)", "Staffing (v2)") -----------------------------
AGENT_LIVE_STATES: tuple[str, ...] = ("logged_in", "available", "on_contact", "wrap_up", "away")
"""The ``state`` label values of the live agent gauges (``logged_in`` counts every state but logged out)."""
AGENT_TIMED_STATES: tuple[str, ...] = ("available", "on_contact", "wrap_up", "away")
"""The ``state`` label values of the seconds-in-state counter (the states whose time is kept)."""


@dataclass(frozen=True)
class AgentMetric:
    """One agent family of ``/metrics``. Labels are a queue, a team, a state or an away reason: never an agent
    id or name (a supervisor's list of names is the wallboard's agents panel, off by default)."""

    name: str  # without the prefix; a counter without ``_total``
    kind: Literal["gauge", "counter"]
    labels: tuple[str, ...]
    help: str


AGENT_METRICS: tuple[AgentMetric, ...] = (
    AgentMetric("queue_agents", "gauge", ("queue", "state"),
                "Agents serving the queue now, by state (logged_in = any state but logged out)."),
    AgentMetric("queue_agents_away", "gauge", ("queue", "reason"),
                "Agents serving the queue who are away now, by reason (unspecified when none was given)."),
    AgentMetric("team_agents", "gauge", ("team", "state"),
                "Agents of the team now, by state (team empty: agents without a team); each agent once."),
    AgentMetric("team_agents_away", "gauge", ("team", "reason"), "Agents of the team away now, by reason."),
    AgentMetric("agents_required", "gauge", ("queue",),
                "Erlang C agents needed now to meet the queue's sl_target (15m arrival rate, 1h AHT); no series "
                "while the queue has no offered contact or no AHT."),
    AgentMetric("agents_staffed", "gauge", ("queue",),
                "Agents serving the queue now that are available, on a contact or in wrap-up."),
    AgentMetric("agent_state_seconds", "counter", ("team", "state"),
                "Seconds agents of the team spent in each logged-in state; occupancy is a recording rule: "
                "(on_contact + wrap_up) / (available + on_contact + wrap_up)."),
)
"""The agent families of ``/metrics``, read by the collector (names, labels, help) and the recording rules."""


@dataclass(frozen=True)
class AgentOccupancy:
    """Occupancy (kpis.md "Agents (v2)") as a ratio of sums of the seconds-in-state counter over its ``state``
    label: the recording rules divide the increases, so several workers' counters add up first."""

    name: str
    record: str
    busy: tuple[str, ...]
    working: tuple[str, ...]
    text: str


AGENT_OCCUPANCY = AgentOccupancy(
    "occupancy", "contactcenter_agent_occupancy", ("on_contact", "wrap_up"), ("available", "on_contact", "wrap_up"),
    "(on_contact_seconds + wrap_up_seconds) / (available_seconds + on_contact_seconds + wrap_up_seconds)",
)
AGENT_LEVELS: tuple[tuple[str, str], ...] = (("team", "by (team) "), ("centre", ""))
"""The levels occupancy is recorded at: per team and centre-wide (each agent is in one team)."""
