"""``/metrics``: the worker's KPI counts as Prometheus metrics, read from the live state at scrape time.

Why a custom collector and raw counts: every worker exports the counts of its own partitions as monotonically
growing ``_total`` counters (never ratios), so ``sum by (queue) (rate(...))`` over all workers is the true
figure and every ratio KPI is a recording rule (deploy/prometheus/rules). Labels come from small fixed sets
(queue, channel, kind, outcome, category, score, topic, reason); a customer, contact or agent id never
becomes a label. Beyond ``worker.max_queues`` distinct queues, further queues are exported as ``other``.

What each counter series counts comes from :mod:`cxpulse.core.definitions` (``FAMILIES``), which the recording
rules read too. The rules cannot see settings, so the collector also exports each (queue, channel)'s
``sl_formula`` and the centre's as info gauges (``contactcenter_sl_formula_info``,
``contactcenter_centre_sl_formula_info``): the service-level rules pick their variant by them.

Two prefixes, on purpose: the contact centre's own figures are ``contactcenter_*`` (domain metrics another
exporter of the same centre could share), the pipeline's health (events processed, lag, readiness, version)
is ``cxpulse_*``: it describes this program, not the centre.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

import cxpulse
from cxpulse.units import US_PER_SECOND
from cxpulse.core.definitions import CENTRE_SL_FORMULA_INFO, COUNTER_FAMILIES, FAMILIES, PROM_PREFIX, SL_FORMULA_INFO
from cxpulse.core.measures import M
from cxpulse.core.live import LiveKpis
from cxpulse.settings import Settings
from cxpulse.streams.liveness import Liveness
from cxpulse.sinks.agent_metrics import AgentMetrics

PREFIX = PROM_PREFIX
OWN_PREFIX = "cxpulse"  # the pipeline's own metrics (health, version), not the centre's
DEFAULT_WAIT_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400)
HANDLE_BUCKETS = (30, 60, 120, 180, 300, 450, 600, 900, 1200, 1800, 3600)
OTHER = "other"

log = logging.getLogger(__name__)

# The per-(queue, channel) counter families and what each series counts: the definitions table's, so the
# metrics, the recording rules and the KPI document cannot disagree on what a series means.
_COUNTERS: tuple[tuple[str, str | None, tuple[tuple[str | None, tuple[tuple[int, int], ...]], ...], str], ...] = tuple(
    (family.name, family.label, tuple((s.label_value, s.value.indexed) for s in family.series), family.help)
    for family in COUNTER_FAMILIES
)
# a counter kept in microseconds or millionths (v2: resolution, feedback response, cost) is exported in
# seconds or currency units: divided by this (1 for the plain counts)
_DIVISOR: dict[str, int] = {family.name: int(1 / family.unit) for family in COUNTER_FAMILIES}
# measure index -> (histogram, outcome label or None): which facts feed which histogram
_HISTOGRAM_OF: dict[int, tuple[str, str | None]] = {
    M[name]: (family.name.removesuffix("_sum"), series.label_value)
    for family in FAMILIES if family.kind == "histogram_sum"
    for series in family.series for name in series.value.vector()
}


class QueueLabels:
    """Stable ``queue`` label values, at most ``limit`` distinct ones; later queues fold into ``other``.

    ``overflow`` counts the distinct queues folded (what ``cxpulse_queues_folded_into_other`` exports), not
    their events: the label map is decided per queue, once, and a queue never moves back out of ``other``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.known: dict[str, str] = {}
        self.overflow = 0

    def __call__(self, queue: str) -> str:
        label = self.known.get(queue)
        if label is None:
            if len(self.known) < self.limit:
                label = queue
            else:
                label = OTHER
                self.overflow += 1
                # a queue name is no personal data; naming it tells the operator what to configure
                log.warning("queue %r is exported as queue=%r: worker.max_queues=%d queue labels are in use",
                            queue, OTHER, self.limit)
            self.known[queue] = label
        return label


class Histograms:
    """Wait and handle-time histograms per (queue, channel), fed with every fact (and every retraction)."""

    def __init__(self, wait_bounds: tuple[float, ...]) -> None:
        self.wait_bounds = tuple(sorted(set(wait_bounds)))
        self.handle_bounds = HANDLE_BUCKETS
        # (queue, channel, outcome) -> [bucket counts..., +Inf count, sum_us]
        self.wait: dict[tuple[str, str, str], list[int]] = {}
        self.handle: dict[tuple[str, str], list[int]] = {}

    def reset(self) -> None:
        """Forget everything (the live state is being rebuilt from the tables, which re-observes it all)."""
        self.wait.clear()
        self.handle.clear()

    def state(self) -> tuple[dict[tuple[str, str, str], list[int]], dict[tuple[str, str], list[int]]]:
        """The sums, for a checkpoint of the live state (see :meth:`LiveKpis.checkpoint`)."""
        return self.wait, self.handle

    def load_state(self, state: Any) -> None:
        """The sums a checkpoint saved, in place of a rebuild's re-observation of every contact."""
        wait, handle = state
        self.wait, self.handle = dict(wait), dict(handle)

    def __call__(self, facts: list[Any], sign: int) -> None:
        self.observe(facts, sign)

    def observe(self, facts: list[Any], sign: int) -> None:
        for measure, _at, queue, channel, value in facts:
            histogram = _HISTOGRAM_OF.get(measure)
            if histogram is None:
                continue
            name, outcome = histogram
            if name == "wait_time_seconds" and outcome is not None:
                row = self.wait.setdefault((queue, channel, outcome), [0] * (len(self.wait_bounds) + 2))
                self._add(row, self.wait_bounds, value, sign)
            elif name == "handle_time_seconds":
                row = self.handle.setdefault((queue, channel), [0] * (len(self.handle_bounds) + 2))
                self._add(row, self.handle_bounds, value, sign)

    @staticmethod
    def _add(row: list[int], bounds: tuple[float, ...], value_us: int, sign: int) -> None:
        # le buckets are cumulative in the exposition; here each slot counts its own range
        row[bisect.bisect_left(bounds, value_us / US_PER_SECOND)] += sign
        row[-1] += sign * value_us


def wait_buckets(settings: Settings) -> tuple[float, ...]:
    """Default buckets plus every configured SL threshold and short-abandon bound, so "answered within T"
    and "abandoned before S" can be read off the histogram too."""
    kpi = settings.kpi
    bounds = set(DEFAULT_WAIT_BUCKETS)
    for channel in kpi.channels.values():
        bounds.add(channel.sl_threshold_seconds)
        if channel.short_abandon_seconds:
            bounds.add(channel.short_abandon_seconds)
    for queue in kpi.queues.values():
        if queue.sl_threshold_seconds:
            bounds.add(queue.sl_threshold_seconds)
    return tuple(sorted(bounds))


class KpiCollector(Collector):
    """Reads :class:`LiveKpis` at scrape time; holds no copy of the numbers."""

    def __init__(self, settings: Settings, live: LiveKpis, histograms: Histograms, lag: dict[tuple[str, int], int],
                 liveness: Liveness | None = None, ready: Callable[[], bool] | None = None,
                 commit_holes: Callable[[], Mapping[Any, int]] | None = None) -> None:
        """``liveness``, ``ready`` and ``commit_holes`` (the consumer's commits past an unprocessed record, by
        topic partition) are read at scrape time (the collector takes what it reads, not the worker)."""
        self.liveness = liveness
        self.ready = ready
        self.commit_holes = commit_holes
        self.settings = settings
        self.live = live
        self.histograms = histograms
        self.lag = lag
        self.labels = QueueLabels(settings.worker.max_queues)
        self.agent_metrics = AgentMetrics(settings.worker.max_queues)  # contract v2: agents and staffing

    def describe(self) -> Iterable[Metric]:
        # names only, so registering does not call collect() before the worker has state
        return list(self._families().values()) + list(self.agent_metrics.families().values())

    def _families(self) -> dict[str, Metric]:
        fam: dict[str, Metric] = {}
        qc = ["queue", "channel"]
        for name, extra, _, help_text in _COUNTERS:
            fam[name] = CounterMetricFamily(f"{PREFIX}_{name}", help_text, labels=qc + ([extra] if extra else []))
        fam["wait"] = HistogramMetricFamily(f"{PREFIX}_wait_time_seconds", "Wait in queue of answered and abandoned visits.", labels=qc + ["outcome"])
        fam["handle"] = HistogramMetricFamily(f"{PREFIX}_handle_time_seconds", "Talk + hold + wrap of handled contacts.", labels=qc)
        fam["waiting"] = GaugeMetricFamily(f"{PREFIX}_contacts_waiting", "Contacts waiting in queue now.", labels=qc)
        fam["longest"] = GaugeMetricFamily(f"{PREFIX}_longest_wait_seconds", "Wait of the longest-waiting contact now.", labels=qc)
        fam["awaiting"] = GaugeMetricFamily(f"{PREFIX}_feedback_awaiting_follow_up", "Detractor feedback not followed up yet, now (contract v2).", labels=qc)
        fam["oldest_awaiting"] = GaugeMetricFamily(f"{PREFIX}_feedback_oldest_awaiting_seconds", "Age of the oldest detractor feedback awaiting a follow-up, now (contract v2).", labels=qc)
        fam["threshold"] = GaugeMetricFamily(f"{PREFIX}_sl_threshold_seconds", "Configured service-level threshold T.", labels=qc)
        fam["target"] = GaugeMetricFamily(f"{PREFIX}_sl_target_ratio", "Configured service-level target.", labels=qc)
        fam["formula"] = GaugeMetricFamily(SL_FORMULA_INFO, "Always 1: the sl_formula configured for the (queue, channel); the service-level rules pick their variant by it.", labels=qc + ["formula"])
        fam["centre_formula"] = GaugeMetricFamily(CENTRE_SL_FORMULA_INFO, "Always 1: the centre-wide sl_formula, applied to totals over queues.", labels=["formula"])
        fam["processed"] = CounterMetricFamily(f"{OWN_PREFIX}_events_processed", "Valid events processed (first arrivals).", labels=["topic"])
        fam["invalid"] = CounterMetricFamily(f"{OWN_PREFIX}_invalid_events", "Invalid events sent to the dead-letter topic, by reason.", labels=["topic", "reason"])
        fam["duplicates"] = CounterMetricFamily(f"{OWN_PREFIX}_duplicate_events", "Events ignored as duplicates (same event_id).", labels=["topic"])
        fam["last_event"] = GaugeMetricFamily(f"{OWN_PREFIX}_last_event_timestamp_seconds", "Event time of the newest event processed.")
        fam["last_processed"] = GaugeMetricFamily(f"{OWN_PREFIX}_last_processed_timestamp_seconds", "Wall clock of the last event processed.")
        fam["lag"] = GaugeMetricFamily(f"{OWN_PREFIX}_consumer_lag", "Messages not yet consumed, per source partition.", labels=["topic", "partition"])
        fam["stalled"] = GaugeMetricFamily(f"{OWN_PREFIX}_consumer_stalled", "1 while records wait in the source topics and nothing has been consumed for worker.stall_seconds.")
        fam["broker"] = GaugeMetricFamily(f"{OWN_PREFIX}_broker_reachable", "0 while Kafka has not answered a metadata request for worker.broker_unreachable_seconds.")
        fam["stalls"] = CounterMetricFamily(f"{OWN_PREFIX}_consumer_stalls", "How many times consumption stalled while records waited.")
        fam["holes"] = CounterMetricFamily(f"{OWN_PREFIX}_commits_past_unprocessed", "Offset commits that passed a record no stream processed (a transaction marker, or a record lost).", labels=["topic"])
        fam["ready"] = GaugeMetricFamily(f"{OWN_PREFIX}_ready", "1 when the worker has recovered its state and publishes (what /readyz says, minus liveness).")
        fam["published"] = CounterMetricFamily(f"{OWN_PREFIX}_sla_breaches_published", "Breach records published to the sla-breaches topic.")
        fam["feedback_published"] = CounterMetricFamily(f"{OWN_PREFIX}_feedback_breaches_published", "Feedback breach records published to the feedback-breaches topic (contract v2).")
        fam["overflow"] = GaugeMetricFamily(f"{OWN_PREFIX}_queues_folded_into_other", "Distinct queues exported as queue=\"other\" because worker.max_queues queue labels were in use (queues, not events).")
        fam["build"] = GaugeMetricFamily(f"{OWN_PREFIX}_build_info", "cxpulse version.", labels=["version"])
        return fam

    def collect(self) -> Iterator[Metric]:
        live, kpi = self.live, self.settings.kpi
        now = time.time_ns() // 1000
        for part in live.parts():
            part.advance(now)
        fam = self._families()
        label = self.labels

        def folded(rows: Iterable[tuple[tuple[str, ...], list[int]]]) -> dict[tuple[str, ...], list[int]]:
            out: dict[tuple[str, ...], list[int]] = {}
            for (queue, *rest), values in rows:
                key = (label(queue), *rest)
                into = out.get(key)
                if into is None:
                    out[key] = list(values)
                else:
                    for i, v in enumerate(values):
                        into[i] += v
            return out

        totals = folded(live.totals().items())
        for (queue, channel), c in sorted(totals.items()):
            labels = [queue, channel]
            for name, _, series, _ in _COUNTERS:
                divisor = _DIVISOR[name]
                for value, terms in series:
                    total = sum(coefficient * c[index] for coefficient, index in terms)
                    fam[name].add_metric(labels if value is None else labels + [value],
                                         total if divisor == 1 else total / divisor)
        hist = self.histograms
        for (queue, channel, outcome), row in sorted(folded(hist.wait.items()).items()):
            fam["wait"].add_metric([queue, channel, outcome], _buckets(hist.wait_bounds, row), row[-1] / US_PER_SECOND)
        for (queue, channel), row in sorted(folded(hist.handle.items()).items()):
            fam["handle"].add_metric([queue, channel], _buckets(hist.handle_bounds, row), row[-1] / US_PER_SECOND)
        waiting: dict[tuple[str, str], tuple[int, float]] = {}
        for (queue, channel), (count, longest) in live.waiting(now).items():
            key = (label(queue), channel)
            c0, l0 = waiting.get(key, (0, 0.0))
            waiting[key] = (c0 + count, max(l0, longest))
        awaiting: dict[tuple[str, str], tuple[int, float]] = {}
        for (queue, channel), (count, oldest) in live.awaiting(now).items():
            key = (label(queue), channel)
            c0, o0 = awaiting.get(key, (0, 0.0))
            awaiting[key] = (c0 + count, max(o0, oldest))
        for key in sorted(set(totals) | set(waiting) | set(awaiting)):
            count, longest = waiting.get(key, (0, 0.0))
            fam["waiting"].add_metric(list(key), count)
            fam["longest"].add_metric(list(key), longest)
            follow_ups, oldest = awaiting.get(key, (0, 0.0))
            fam["awaiting"].add_metric(list(key), follow_ups)
            fam["oldest_awaiting"].add_metric(list(key), oldest)
            qs = kpi.for_queue(*key)
            fam["threshold"].add_metric(list(key), qs.sl_threshold_seconds)
            fam["target"].add_metric(list(key), qs.sl_target)
            fam["formula"].add_metric([*key, qs.sl_formula], 1)
        for topic, health in sorted(live.health.items()):
            fam["processed"].add_metric([topic], health.processed)
            fam["duplicates"].add_metric([topic], health.duplicates)
            for reason, count in sorted(health.invalid.items()):
                fam["invalid"].add_metric([topic, reason], count)
        if live.last_event_ts_us:
            fam["last_event"].add_metric([], live.last_event_ts_us / US_PER_SECOND)
        if live.last_processed_wall_us:
            fam["last_processed"].add_metric([], live.last_processed_wall_us / US_PER_SECOND)
        for (topic, partition), lag in sorted(self.lag.items()):
            fam["lag"].add_metric([topic, str(partition)], lag)
        if self.liveness is not None:
            fam["stalled"].add_metric([], 1 if self.liveness.stalled else 0)
            fam["broker"].add_metric([], 0 if self.liveness.broker_unreachable else 1)
            fam["stalls"].add_metric([], self.liveness.stalls)
        if self.commit_holes is not None:
            by_topic: dict[str, int] = {}
            for tp, count in self.commit_holes().items():
                by_topic[tp.topic] = by_topic.get(tp.topic, 0) + count
            for topic, count in sorted(by_topic.items()):
                fam["holes"].add_metric([topic], count)
        if self.ready is not None:
            fam["ready"].add_metric([], 1 if self.ready() else 0)
        fam["centre_formula"].add_metric([kpi.sl_formula], 1)
        fam["published"].add_metric([], live.breaches_published_total)
        fam["feedback_published"].add_metric([], live.feedback_breaches_published_total)
        fam["overflow"].add_metric([], label.overflow)
        fam["build"].add_metric([cxpulse.__version__], 1)
        yield from fam.values()
        yield from self.agent_metrics.collect(live, kpi, label, now)


def _buckets(bounds: tuple[float, ...], row: list[int]) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip(bounds, row):
        running += count
        out.append((_le(bound), running))
    running += row[len(bounds)]
    out.append(("+Inf", running))
    return out


def _le(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else repr(float(bound))


def registry_for(collector: KpiCollector) -> CollectorRegistry:
    """A registry of our own (no global state): the KPI collector plus the process' own metrics."""
    from prometheus_client.platform_collector import PlatformCollector
    from prometheus_client.process_collector import ProcessCollector

    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
