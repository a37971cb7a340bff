"""Metric names say whose they are and what they count.

The centre's figures are ``contactcenter_*``; the pipeline's own health and version are ``cxpulse_*``; the
queue-label overflow gauge counts queues, as its help, docs/metrics.md and the CxQueueLabelOverflow alert say.
Everything that names a metric (alert rules and their promtool tests, Grafana dashboards, docs) names one the
collector exports.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import orjson
import pytest
from faust.types import TP
from prometheus_client.parser import text_string_to_metric_families

from cxpulse.core.live import LiveKpis
from cxpulse.models.events import format_ts, parse_any_event
from cxpulse.settings import Settings, WorkerSettings
from cxpulse.sinks.prometheus import Histograms, KpiCollector, QueueLabels, exposition, registry_for, wait_buckets
from cxpulse.streams.liveness import Liveness
from cxpulse.streams.checkpoint import CheckpointCollector
from cxpulse.streams.rocksdb_budget import MIB, BudgetCollector, RocksDBBudget

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_795_338_000_000_000
# the centre's own figures: everything else the collector exports is the pipeline's
DOMAIN = re.compile(r"^contactcenter_")


def _exported(max_queues: int = 200, queues: tuple[str, ...] = ("billing",), events_per_queue: int = 1) -> dict[str, object]:
    """Metric family name (as exposed, counters with ``_total``) -> parsed family, from a real collector."""
    settings = Settings(worker=WorkerSettings(max_queues=max_queues))
    histograms = Histograms(wait_buckets(settings))
    live = LiveKpis(settings.kpi, observer=histograms)
    offset = 0
    for queue in queues:
        for n in range(events_per_queue):
            event = {"event_id": f"{queue}-{n}", "type": "contact.queued", "ts": format_ts(T0 + offset * 1_000_000),
                     "contact_id": f"{queue}-{n}", "customer_id": f"u{n}", "queue": queue, "channel": "voice"}
            live.handle("contact-events", 0, parse_any_event(event), orjson.dumps(event), offset)
            offset += 1
    live.settle(0)
    collector = KpiCollector(settings, live, histograms, {("contact-events", 0): 0},
                             liveness=Liveness(stall_after_us=30_000_000, exit_after_us=0, broker_after_us=15_000_000), ready=lambda: True,
                             commit_holes=lambda: COMMIT_HOLES)
    registry = registry_for(collector)
    registry.register(BudgetCollector(RocksDBBudget(MIB, MIB)))  # as create_worker does on rocksdb://
    registry.register(CheckpointCollector(lambda: {"contacts": CHECKPOINT_AT, "customers": CHECKPOINT_AT + 1}))  # and with checkpoints while running
    text = exposition(registry).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


CHECKPOINT_AT = 1_795_000_000.5
COMMIT_HOLES = {TP("contact-events", 0): 2, TP("contact-events", 3): 1, TP("survey-responses", 1): 1}


def test_commits_past_an_unprocessed_record_are_summed_by_topic() -> None:
    """The consumer counts them by partition; the metric has the topic only (partitions add nothing a
    supervisor or an SRE acts on, and the WARNING in the log names the partition and offset)."""
    family = _exported()["cxpulse_commits_past_unprocessed"]
    samples = {s.labels["topic"]: s.value for s in family.samples}  # type: ignore[attr-defined]
    assert samples == {"contact-events": 3, "survey-responses": 1}


def test_each_side_s_last_checkpoint_time_is_a_gauge_absent_before_the_first() -> None:
    families = _exported()
    for side, at in (("contacts", CHECKPOINT_AT), ("customers", CHECKPOINT_AT + 1)):
        family = families[f"cxpulse_{side}_checkpoint_timestamp_seconds"]
        assert family.type == "gauge"  # type: ignore[attr-defined]
        assert [s.value for s in family.samples] == [at]  # type: ignore[attr-defined]
    some = list(CheckpointCollector(lambda: {"contacts": CHECKPOINT_AT}).collect())
    assert [len(family.samples) for family in some] == [1, 0]


def _exposed_names(families: dict[str, object]) -> set[str]:
    """Every series name a query can use, also of families without a sample yet (no invalid event so far)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",), "info": ("_info",)}
    return {f"{name}{suffix}" for name, family in families.items()
            for suffix in suffixes.get(family.type, ("",))}  # type: ignore[attr-defined]


def test_the_pipelines_own_metrics_are_prefixed_cxpulse() -> None:
    families = _exported()
    ours = {name for name in families if not name.startswith(("process_", "python_"))}
    pipeline = {name for name in ours if not DOMAIN.match(name)}
    assert pipeline == {
        "cxpulse_events_processed", "cxpulse_invalid_events", "cxpulse_duplicate_events",
        "cxpulse_last_event_timestamp_seconds", "cxpulse_last_processed_timestamp_seconds", "cxpulse_consumer_lag",
        "cxpulse_consumer_stalled", "cxpulse_broker_reachable", "cxpulse_consumer_stalls", "cxpulse_ready",
        "cxpulse_sla_breaches_published", "cxpulse_queues_folded_into_other", "cxpulse_build_info",
        "cxpulse_feedback_breaches_published", "cxpulse_rocksdb_memory_bytes", "cxpulse_commits_past_unprocessed",
        "cxpulse_contacts_checkpoint_timestamp_seconds", "cxpulse_customers_checkpoint_timestamp_seconds",
    }
    assert not any("pipeline" in name for name in ours)
    assert "contactcenter_contacts_offered" in ours and "contactcenter_sl_formula_info" in ours


def test_overflow_counts_queues_not_events() -> None:
    labels = QueueLabels(limit=2)
    seen = [labels(q) for q in ("a", "b", "c", "c", "c", "d", "a")]
    assert seen == ["a", "b", "other", "other", "other", "other", "a"]
    assert labels.overflow == 2  # c and d, however many of their events were labelled


def test_overflow_gauge_in_the_exposition(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="cxpulse.sinks.prometheus"):
        families = _exported(max_queues=1, queues=("billing", "sales", "support"), events_per_queue=5)
    family = families["cxpulse_queues_folded_into_other"]
    assert family.type == "gauge"  # type: ignore[attr-defined]
    assert [s.value for s in family.samples] == [2.0]  # type: ignore[attr-defined]
    assert "queues, not events" in family.documentation  # type: ignore[attr-defined]
    offered = {s.labels["queue"]: s.value for s in families["contactcenter_contacts_offered"].samples}  # type: ignore[attr-defined]
    assert offered == {"billing": 5.0, "other": 10.0}
    folded = sorted(r.getMessage() for r in caplog.records if "exported as queue" in r.getMessage())
    assert folded == [
        "queue 'sales' is exported as queue='other': worker.max_queues=1 queue labels are in use",
        "queue 'support' is exported as queue='other': worker.max_queues=1 queue labels are in use",
    ]


def _names_in(text: str) -> set[str]:
    return set(re.findall(r"\b((?:contactcenter|cxpulse)_[a-z_]*[a-z])\b", text))


@pytest.mark.parametrize(
    "path",
    [
        "deploy/prometheus/rules/alerts.yml",
        "deploy/prometheus/tests/pipeline_alerts_test.yml",
        "grafana/dashboards/pipeline.json",
        "docs/metrics.md",
        "docs/runbooks.md",
    ],
)
def test_every_pipeline_metric_named_is_exported(path: str) -> None:
    """A renamed metric left behind in a rule, a dashboard or a doc is a query that never matches."""
    exported = _exposed_names(_exported())
    text = (ROOT / path).read_text(encoding="utf-8")
    named = {n for n in _names_in(text) if n.startswith("cxpulse_") or n.startswith("contactcenter_pipeline")}
    named -= {"cxpulse_queue_label_overflow", "cxpulse_runbook_base_url"}  # prose, not metric names
    missing = sorted(n for n in named if n not in exported)
    assert missing == [], f"{path} names metrics the collector does not export"
    assert "contactcenter_pipeline_" not in text.replace("`contactcenter_pipeline_*`", "")
