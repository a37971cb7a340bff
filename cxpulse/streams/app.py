"""The Faust worker: agents, tables and timers around the pure KPI core (:class:`~cxpulse.core.live.LiveKpis`).

Data flow::

    contact-events ─┐                        ┌─> contact-events-dlq / survey-responses-dlq
    survey-responses┴─> contacts agent ──────┼─> table "contacts" (changelog)      [key contact_id]
                                             └─> <app>-fcr-summaries ─> customers agent ─> table "customers"
    breach timer (every 200 ms) ─> sla-breaches        [summaries: partition by customer, a list per batch]
                                └> feedback-breaches   [contract v2: detractor feedback past its target]

Why this shape (see docs/live-engine.md): Faust windows expire on the wall clock and have no late-event hook,
so event time, disorder and windows live in the core; Faust tables only keep each contact's and customer's
state, written once per batch per changed key. The counts are *derived* from that state, so recovery rebuilds
them exactly from the changelog, and a re-delivered event after a crash is a duplicate by ``event_id``.

This module only composes the worker; each part lives in the module named for it:

* :mod:`cxpulse.streams.worker`: the :class:`Worker` dataclass (what a worker is made of), ``stop_now``;
* :mod:`cxpulse.streams.storage`: reading and staging table values (``stored_value``, ``save_changed``);
* :mod:`cxpulse.streams.agents`: the contacts and customers agents, their batches and the roll-back;
* :mod:`cxpulse.streams.recovery`: table recovery, rebalance signals, the breach log, readiness;
* :mod:`cxpulse.streams.timers`: breach publishing, maintenance, consumer lag, the broker probe;
* :mod:`cxpulse.streams.consumer`: Faust's Kafka consumer, two holes closed that lost events on a restart;
* :mod:`cxpulse.streams.web` and :mod:`cxpulse.sinks.redis_sink`: the HTTP API and the Redis read model,
  given only what they read.
"""

from __future__ import annotations

import functools
from pathlib import Path

import faust
from faust.types.transports import TransportT
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from cxpulse.core.live import LiveKpis
from cxpulse.kafka_security import faust_credentials
from cxpulse.settings import Settings
from cxpulse.sinks.prometheus import Histograms, KpiCollector, registry_for, wait_buckets
from cxpulse.sinks.redis_sink import attach_redis_sink
from cxpulse.streams import agents, consumer, recovery, timers
from cxpulse.streams.checkpoint import CHECKPOINT_TICK, CheckpointCollector, CheckpointStore, fingerprint
from cxpulse.streams.dead_letters import DeadLetterOutbox
from cxpulse.streams.liveness import Liveness
from cxpulse.streams.rocksdb_budget import MIB, BudgetCollector, RocksDBBudget, share_budget
from cxpulse.streams.runner import MAX_RECORD_BYTES
from cxpulse.streams.storage import contact_loader, customer_loader, save_changed, stored_value
from cxpulse.streams.table_writer import BulkTableWriter
from cxpulse.streams.touch_log import TouchLog
from cxpulse.streams.web import add_routes
from cxpulse.streams.worker import Worker, WorkerTopics, stop_now
from cxpulse.units import US_PER_SECOND


class WorkerApp(faust.App):
    """``faust.App`` whose Kafka consumer is :class:`cxpulse.streams.consumer.Consumer` and whose flow control is
    :class:`cxpulse.streams.consumer.FlowControl`: Faust's own with the holes through which a worker lost events
    closed, and the one it cannot close counted (that module says which and why)."""

    def _new_transport(self) -> TransportT:
        return consumer.Transport(self.conf.broker_consumer, self)

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        """Flow control of the streams' queues that keeps what a resume of an active flow would have cleared."""
        return consumer.FlowControl(loop=self.loop)


def faust_app(settings: Settings) -> faust.App:
    """The Faust app for ``settings``: broker, store, partitions, web port, and the producer and consumer
    tuning the worker relies on (raw bytes in and out, at-least-once, offsets committed every second)."""
    kafka, ws = settings.kafka, settings.worker
    static = {"consumer_group_instance_id": ws.group_instance_id} if ws.group_instance_id else {}
    return WorkerApp(
        ws.app_id,
        **static,
        broker=[f"kafka://{server.strip()}" for server in kafka.bootstrap_servers.split(",")],
        broker_credentials=faust_credentials(kafka),
        store=ws.store,
        datadir=ws.data_dir,
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        web_enabled=True,
        web_host=ws.web_host,
        web_port=ws.web_port,
        web_bind=ws.web_host,
        key_serializer="raw",
        value_serializer="raw",
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        table_standby_replicas=0,
        broker_commit_every=10_000,
        broker_commit_interval=1.0,
        producer_linger_ms=5,
        producer_max_batch_size=256 * 1024,
        producer_max_request_size=MAX_RECORD_BYTES,
        stream_buffer_maxsize=8192,
        web_in_thread=False,
        # a worker killed and restarted rejoins after the old member's session expires: 10 s, not 60 s
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        Monitor="cxpulse.streams.monitor:QuietMonitor",  # no per-record stats nobody reads (streams/monitor.py)
    )


def worker_topics(app: faust.App, settings: Settings) -> WorkerTopics:
    """The topics the worker reads and writes, all raw bytes."""
    kafka, topics = settings.kafka, settings.kafka.topics
    raw = {"value_serializer": "raw", "key_serializer": "raw"}
    return WorkerTopics(
        source=app.topic(topics.contact_events, topics.survey_responses, **raw),
        summaries=app.topic(f"{settings.worker.app_id}-fcr-summaries", partitions=kafka.partitions, internal=True,
                            **raw),
        breaches=app.topic(topics.sla_breaches, **raw),
        dead_letters={
            topics.contact_events: app.topic(topics.contact_events_dlq, **raw),
            topics.survey_responses: app.topic(topics.survey_responses_dlq, **raw),
            topics.agent_events: app.topic(topics.agent_events_dlq, **raw),
        },
        agents=app.topic(topics.agent_events, **raw),
        feedback_breaches=app.topic(topics.feedback_breaches, **raw),
    )


def rocksdb_options(settings: Settings) -> dict[str, int]:
    """RocksDB sizes per database (one per table and partition: 3 x ``kafka.partitions`` of them); the block
    cache and the total of the write buffers are shared by all of them (:mod:`cxpulse.streams.rocksdb_budget`).

    Why not Faust's defaults: 64 MiB write buffers (up to 3) and a 2 GiB block cache *per database* let a
    worker's memory grow by hundreds of MiB as the tables fill, although the settled contacts they hold are
    read back rarely (one get per late event); small buffers flush more often, which RocksDB does in the
    background."""
    ws = settings.worker
    return {
        "write_buffer_size": ws.rocksdb_write_buffer_mib * MIB,
        "max_write_buffer_number": 2,
        "block_cache_size": ws.rocksdb_block_cache_mib * MIB,
    }


def create_worker(settings: Settings) -> Worker:
    """Build the Faust app for ``settings`` (topics, partitions, store, web port) and give it its parts."""
    kafka, ws = settings.kafka, settings.worker
    app = faust_app(settings)
    liveness = Liveness(
        stall_after_us=int(ws.stall_seconds * US_PER_SECOND),
        exit_after_us=int(ws.stall_exit_seconds * US_PER_SECOND),
        broker_after_us=int(ws.broker_unreachable_seconds * US_PER_SECOND),
    )
    histograms = Histograms(wait_buckets(settings))
    store_options = rocksdb_options(settings)
    contacts_table = app.Table("contacts", partitions=kafka.partitions, key_type=bytes, value_type=bytes,
                               options=store_options)
    customers_table = app.Table("customers", partitions=kafka.partitions, key_type=bytes, value_type=bytes,
                                options=store_options)
    agents_table = app.Table("agents", partitions=kafka.partitions, key_type=bytes, value_type=bytes,
                             options=store_options)
    budget = RocksDBBudget(ws.rocksdb_block_cache_mib * MIB, ws.rocksdb_memtables_mib * MIB)
    if not all([share_budget(table, budget) for table in (contacts_table, customers_table, agents_table)]):
        budget = None  # memory:// (tests): no RocksDB
    live = LiveKpis(settings.kpi, observer=histograms, loader_for=contact_loader(contacts_table),
                    customer_loader_for=customer_loader(customers_table))
    live.agent_listing = settings.wallboard.show_agents  # names reach the document only where a board shows them
    worker = Worker(settings=settings, app=app, live=live, liveness=liveness, topics=worker_topics(app, settings),
                    contacts_table=contacts_table, customers_table=customers_table, agents_table=agents_table,
                    rocksdb_budget=budget)
    registry = worker.registry = registry_for(KpiCollector(settings, live, histograms, worker.lag, liveness,
                                                          worker.is_ready, lambda: app.consumer.holes_passed))

    if budget is not None:
        registry.register(BudgetCollector(budget))

    dead_letters = DeadLetterOutbox(worker.topics.dead_letters, default_source=kafka.topics.contact_events)
    writers = worker.writers = {side: BulkTableWriter(app, table, stop_now) for side, table in
                                (("contacts", contacts_table), ("customers", customers_table), ("agents", agents_table))}
    if ws.checkpoint:
        directory = Path(app.conf.tabledir) / "checkpoints"
        worker.checkpoints = CheckpointStore(directory, fingerprint(settings))
        if ws.checkpoint_every_seconds > 0 and budget is not None:  # rocksdb:// (memory:// keeps no offsets)
            for side in ("contacts", "customers"):
                worker.touch_logs[side] = writers[side].touch_log = TouchLog(directory / f"{side}.log")
            worker.checkpoint_every = ws.checkpoint_every_seconds
    contact_batches, customer_batches = agents.install(worker, writers["contacts"], writers["customers"],
                                                       dead_letters)
    agents.install_agent_states(worker, writers["agents"], dead_letters)
    recovering = recovery.install(worker)
    if worker.touch_logs:
        contact_batches.checkpoint_due = functools.partial(recovering.checkpoint_due, "contacts")
        contact_batches.save_checkpoint = functools.partial(recovering.save_running_checkpoint, "contacts")
        customer_batches.checkpoint_due = functools.partial(recovering.checkpoint_due, "customers")
        customer_batches.save_checkpoint = functools.partial(recovering.save_running_checkpoint, "customers",
                                                             customer_batches.forget_and_store)
        app.timer(CHECKPOINT_TICK, name="checkpoint_contacts")(contact_batches.checkpoint_when_idle)
        app.timer(CHECKPOINT_TICK, name="checkpoint_customers")(customer_batches.checkpoint_when_idle)
        registry.register(CheckpointCollector(lambda: worker.checkpoint_saved_at))
    timers.install(worker)
    sink = attach_redis_sink(app, settings, live, worker.is_ready, behind=lambda: worker.liveness.behind)
    if sink is not None:
        worker.breach_listeners.append(sink.on_breach)
    add_routes(app, live, ready=worker.is_ready, recovered=lambda: worker.recovered, problems=worker.live_problems,
               registry=registry)
    return worker


__all__ = ["Worker", "create_worker", "faust_app", "save_changed", "stop_now", "stored_value", "worker_topics"]
