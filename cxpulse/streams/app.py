"""The Faust worker: agents, tables and timers around the pure KPI core (:class:`~cxpulse.core.live.LiveKpis`).

Data flow::

    contact-events ─┐                        ┌─> contact-events-dlq / survey-responses-dlq
    survey-responses┴─> contacts agent ──────┼─> table "contacts" (changelog)      [key contact_id]
                                             └─> <app>-fcr-summaries ─> customers agent ─> table "customers"
    breach timer (every 200 ms) ─> sla-breaches        [summaries: partition by customer, a list per batch]

Why this shape (see docs/live-engine.md): Faust windows expire on the wall clock and have no late-event hook,
so event time, disorder and windows live in the core; Faust tables only keep each contact's and customer's
state, written once per batch per changed key. The counts are *derived* from that state, so recovery rebuilds
them exactly from the changelog, and a re-delivered event after a crash is a duplicate by ``event_id``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka.errors import MessageSizeTooLargeError
from faust.types import TP
import orjson

from cxpulse.core.live import LiveKpis, now_us
from cxpulse.core.processors import Rejection
from cxpulse.kafka_security import client_options, faust_credentials
from cxpulse.models.events import InvalidEvent
from cxpulse.models.wire import decode_contact_event, decode_survey_response
from cxpulse.settings import Settings
from cxpulse.streams import codec
from cxpulse.sinks.prometheus import Histograms, KpiCollector, registry_for, wait_buckets
from cxpulse.streams.dead_letters import DeadLetter
from cxpulse.streams.runner import MAX_RECORD_BYTES
from cxpulse.streams.liveness import EXIT_STALLED, Liveness
from cxpulse.streams.table_writer import BulkTableWriter

log = logging.getLogger("cxpulse.worker")

BATCH_MAX = 2000
TRUNCATED_BYTES = 256 * 1024  # a dead letter too large for its topic keeps this much of the original
BATCH_WITHIN = 0.05  # seconds: a batch waits at most this long, so live figures lag by no more
BREACH_TICK = 0.2  # seconds: a breach goes out at most this long after its crossing
MAINTENANCE_EVERY = 60.0  # seconds: forget contacts past the retention


def save_changed(stage: Any, dirty: set[str], states: dict[str, Any], encode: Any, partition: int) -> list[str]:
    """Stage each changed key of one partition once (``stage(partition, key, value)``; value None deletes it).

    Returns the keys whose state could not be *encoded* (a failure of our own, e.g. a number the codec cannot
    write): they are not staged, and the caller puts them back to their stored value and dead-letters the
    events that changed them. Why per key: one such contact once crashed the agent, and Faust then acked the
    rest of the partition's batch without storing it (a silent loss). A failure of the store or the changelog
    is not caught here: it stops the batch before its offsets are acknowledged (see ``process_contacts``)."""
    failed: list[str] = []
    for key in dirty:
        state = states.get(key)
        if state is None:
            stage(partition, key.encode(), None)
            continue
        try:
            value = encode(state, partition)
        except Exception:  # noqa: BLE001 - any encoding failure is isolated to its key
            log.exception("cannot encode the state of a key of partition %d", partition)
            failed.append(key)
            continue
        stage(partition, key.encode(), value)
    dirty.clear()
    return failed


def stored_value(table: Any, partition: int, key: bytes) -> bytes | None:
    """A table's stored value of ``key`` in ``partition``, read from its store directly.

    Why not ``table[key]``: Faust picks the RocksDB partition from the *current event*, which in a batch is
    not the event being handled; the partition is known here, so ask its database."""
    store = table.data
    db_for = getattr(store, "_db_for_partition", None)
    if db_for is not None:  # rocksdb://
        value: bytes | None = db_for(partition).get(key)
        return value
    return store.data.get(key)  # memory:// (tests): one dict for all partitions


def stop_now(why: str, code: int = 70) -> None:
    """Stop the process at once, without acknowledging the batch in hand.

    Why ``os._exit``: Faust's ``take_events`` acknowledges a batch in a ``finally`` even when the agent raises,
    and would then commit offsets past events whose state was never stored. Exiting before that ``finally``
    runs leaves those offsets uncommitted; the restarted worker reads the events again (duplicates of what was
    stored are dropped by event id)."""
    log.critical("stopping the worker: %s", why)
    logging.shutdown()
    os._exit(code)


@dataclass
class Worker:
    """Everything the worker is made of, so tests and the CLI can build one from settings."""

    settings: Settings
    app: faust.App
    live: LiveKpis
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    recovered: set[str] = field(default_factory=set)
    breaches_loaded: bool = False
    registry: Any = None  # prometheus_client registry of /metrics
    breach_listeners: list[Any] = field(default_factory=list)  # called with each published breach's dict
    liveness: Liveness | None = None  # consumer stall and broker reachability (see streams/liveness.py)

    def live_problems(self) -> list[str]:
        """Why this worker cannot be trusted to be current, for /readyz (empty: fine)."""
        return self.liveness.problems() if self.liveness is not None else []


def create_worker(settings: Settings) -> Worker:
    """Build the Faust app for ``settings`` (topics, partitions, store, web port)."""
    kafka, topics, ws = settings.kafka, settings.kafka.topics, settings.worker
    app = faust.App(
        ws.app_id,
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
    )
    liveness = Liveness(
        stall_after_us=int(ws.stall_seconds * 1_000_000),
        exit_after_us=int(ws.stall_exit_seconds * 1_000_000),
        broker_after_us=int(ws.broker_unreachable_seconds * 1_000_000),
    )
    histograms = Histograms(wait_buckets(settings))
    contacts_table = app.Table("contacts", partitions=kafka.partitions, key_type=bytes, value_type=bytes)
    customers_table = app.Table("customers", partitions=kafka.partitions, key_type=bytes, value_type=bytes)

    def loader_for(partition: int) -> Any:
        """Read an evicted contact back from this partition's table (RocksDB on disk) when one of its events
        arrives: settled contacts do not stay in memory (Engine v2)."""
        def load(contact_id: str) -> Any:
            value = stored_value(contacts_table, partition, contact_id.encode())
            return codec.decode_contact(value)[1] if value is not None else None
        return load

    live_kpis = LiveKpis(settings.kpi, observer=histograms, loader_for=loader_for)
    contact_writer = BulkTableWriter(app, contacts_table)
    customer_writer = BulkTableWriter(app, customers_table)
    worker = Worker(settings=settings, app=app, live=live_kpis, liveness=liveness)
    live = worker.live
    lag: dict[tuple[str, int], int] = {}
    worker.registry = registry_for(KpiCollector(settings, live, histograms, lag, liveness, worker.ready.is_set))

    source = app.topic(topics.contact_events, topics.survey_responses, value_serializer="raw", key_serializer="raw")
    summaries = app.topic(f"{ws.app_id}-fcr-summaries", partitions=kafka.partitions, internal=True,
                          value_serializer="raw", key_serializer="raw")
    breaches_topic = app.topic(topics.sla_breaches, value_serializer="raw", key_serializer="raw")
    dlq = {
        topics.contact_events: app.topic(topics.contact_events_dlq, value_serializer="raw", key_serializer="raw"),
        topics.survey_responses: app.topic(topics.survey_responses_dlq, value_serializer="raw", key_serializer="raw"),
    }
    async def send_dead_letter(letter: DeadLetter) -> None:
        topic = dlq.get(letter.source_topic) or dlq[topics.contact_events]
        try:
            await topic.send(key=letter.key, value=letter.value, headers=letter.headers())
        except MessageSizeTooLargeError:
            # the dead-letter topic was made elsewhere with a smaller limit: the record still goes, cut, and
            # says so (its source topic, partition and offset point at the whole original)
            cut = letter.truncated(TRUNCATED_BYTES)
            await topic.send(key=cut.key, value=cut.value, headers=cut.headers())

    async def send_rejection(rejection: Rejection) -> None:
        topic, partition, offset = rejection.source or (topics.contact_events, -1, -1)
        await send_dead_letter(DeadLetter(rejection.raw or b"", rejection.key, rejection.reason, rejection.kind, topic, partition, offset))

    def parse(topic: str, raw: bytes) -> Any:
        if topic == topics.survey_responses:
            return decode_survey_response(raw)
        return decode_contact_event(raw)

    @app.agent(source, name="cxpulse-contacts")
    async def process_contacts(stream: faust.StreamT) -> None:
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
            liveness.consumed()
            try:
                await contact_batch(events)
            except Exception as exc:  # noqa: BLE001 - never ack a batch whose state was not stored
                log.exception("a batch of source events could not be processed")
                stop_now(f"a batch could not be processed ({type(exc).__name__}); its offsets stay uncommitted")

    async def contact_batch(events: list[Any]) -> None:
        """Validate, apply and store one batch; every event either counts, is a duplicate, or is dead-lettered."""
        touched: dict[int, Any] = {}
        for event in events:
            message = event.message
            raw = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
            topic = message.topic
            live.offsets[(topic, message.partition)] = message.offset  # consumed, whatever its fate
            try:
                parsed = parse(topic, raw)
                live.admit(parsed)
            except InvalidEvent as exc:
                live.note_invalid(topic, exc.kind)
                await send_dead_letter(DeadLetter(raw, message.key, exc.reason, exc.kind, topic, message.partition, message.offset))
                continue
            try:
                live.handle(topic, message.partition, parsed, raw, message.offset, message.key)
            except Exception as exc:  # a bug must not stop the pipeline: the event is kept in the DLQ
                log.exception("internal error on an event of %s[%d]", topic, message.partition)
                live.note_invalid(topic, "internal_error")
                await send_dead_letter(DeadLetter(raw, message.key, f"internal error: {type(exc).__name__}", "internal_error", topic, message.partition, message.offset))
                continue
            touched[message.partition] = event
        outgoing: dict[int, list[Any]] = {}  # FCR summaries by target partition (customer)
        for partition, event in touched.items():
            for rejection in live.settle(partition):
                await send_rejection(rejection)
            proc = live.contacts(partition)
            failed = save_changed(contact_writer.stage, proc.dirty, proc.contacts, codec.encode_contact, partition)
            if failed:
                await roll_back(partition, set(failed), events)
            for summary in proc.drain_summaries():
                target = codec.customer_partition(summary.customer_id, kafka.partitions)
                outgoing.setdefault(target, []).append(summary)
            proc.evict(keep_packed=False)  # settled and stored: the table holds them from now on
        for partition, proc in live.contact_parts.items():  # marks set by the timers (breaches, forgetting)
            if proc.dirty and partition not in touched:
                save_changed(contact_writer.stage, proc.dirty, proc.contacts, codec.encode_contact, partition)
        await contact_writer.flush()  # stored and in the changelog before the batch is acknowledged
        for target, batch in outgoing.items():
            await summaries.send(value=codec.encode_summaries(batch), partition=target)

    async def roll_back(partition: int, contact_ids: set[str], events: list[Any]) -> None:
        """Contacts whose new state could not be stored: back to their stored state, and this batch's events
        of theirs to the dead-letter topic as ``internal error`` (events.md: never a silent loss)."""
        proc = live.contacts(partition)
        for contact_id in contact_ids:
            stored = stored_value(contacts_table, partition, contact_id.encode())
            proc.replace(contact_id, codec.decode_contact(stored)[1] if stored is not None else None)
        for event in events:
            message = event.message
            if message.partition != partition:
                continue
            raw = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
            try:
                contact_id = orjson.loads(raw).get("contact_id")
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if contact_id in contact_ids:
                health = live.topic_health(message.topic)
                health.processed -= 1
                live.note_invalid(message.topic, "internal_error")
                await send_dead_letter(DeadLetter(
                    raw, message.key, "internal error: the contact's state could not be stored", "internal_error",
                    message.topic, message.partition, message.offset,
                ))
        # the contacts put back are in step with the table already
        proc.dirty -= contact_ids

    @app.agent(summaries, name="cxpulse-customers")
    async def process_customers(stream: faust.StreamT) -> None:
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
            touched: dict[int, Any] = {}
            for event in events:
                partition = event.message.partition
                customers = live.customers(partition)
                for summary in codec.decode_summaries(event.value):
                    customers.update(summary)
                touched[partition] = event
            try:
                for partition, event in touched.items():
                    proc = live.customers(partition)
                    failed = save_changed(customer_writer.stage, proc.dirty, proc.customers, codec.encode_customer, partition)
                    # kept in memory and tried again with the next batch; counted so that it is seen
                    proc.dirty.update(failed)
                    for _ in failed:
                        live.note_invalid(summaries.get_topic_name(), "internal_error")
                for partition, proc in live.customer_parts.items():  # forgotten by the maintenance timer
                    if proc.dirty and partition not in touched:
                        save_changed(customer_writer.stage, proc.dirty, proc.customers, codec.encode_customer, partition)
                await customer_writer.flush()
            except Exception as exc:  # noqa: BLE001 - never ack summaries whose customers were not stored
                log.exception("a batch of FCR summaries could not be stored")
                stop_now(f"a batch of FCR summaries could not be stored ({type(exc).__name__})")

    def assigned(topic_name: str) -> set[int]:
        return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic_name}

    @contacts_table.on_recover
    async def contacts_recovered() -> None:
        items = ((codec.key_text(k), *codec.decode_contact(v)) for k, v in contacts_table.items())
        count = live.rebuild_contacts(items, assigned(topics.contact_events))
        log.info("contacts recovered: %d contacts in %d partitions", count, len(live.contact_parts))
        worker.recovered.add("contacts")
        _maybe_ready()

    @customers_table.on_recover
    async def customers_recovered() -> None:
        items = ((codec.key_text(k), codec.decode(v)) for k, v in customers_table.items())
        count = live.rebuild_customers(items, assigned(summaries.get_topic_name()))
        log.info("customers recovered: %d customers in %d partitions", count, len(live.customer_parts))
        worker.recovered.add("customers")
        _maybe_ready()

    def _maybe_ready() -> None:
        if worker.breaches_loaded and {"contacts", "customers"} <= worker.recovered:
            worker.ready.set()

    @app.on_partitions_revoked.connect
    async def partitions_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        # until the new assignment is recovered and the breach log re-read, publish nothing: a partition may be
        # moving to another worker, which will publish its breaches
        worker.ready.clear()
        worker.recovered.clear()
        worker.breaches_loaded = False

    @app.on_partitions_assigned.connect
    async def partitions_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        worker.breaches_loaded = False
        asyncio.ensure_future(load_published_breaches())

    async def load_published_breaches() -> None:
        """Read what is already on ``sla-breaches`` (by this or any worker) so no breach is published twice:
        after a restart, and after a rebalance hands over a partition whose breaches another worker published."""
        from cxpulse.streams.breach_log import read_published_visits

        while True:
            try:
                visits = await read_published_visits(
                    kafka.bootstrap_servers, topics.sla_breaches, client_options=client_options(kafka)
                )
                break
            except Exception as exc:  # never start publishing blind: retry until the log is read
                log.warning("cannot read %s yet (%s); retrying", topics.sla_breaches, exc)
                await asyncio.sleep(1.0)
        live.published_visits.update(visits)
        log.info("sla-breaches already published: %d", len(visits))
        worker.breaches_loaded = True
        _maybe_ready()

    def caught_up(partition: int) -> bool:
        """No unread contact event in this partition (high watermark reached)."""
        tp = TP(topics.contact_events, partition)
        if tp not in app.consumer.assignment():
            return False  # being handed over in a rebalance
        highwater = app.consumer.highwater(tp)
        if highwater is None or highwater < 0:
            return False  # not fetched yet: unknown, so not caught up (judge by stream time)
        if highwater == 0:
            return True  # an empty partition
        done = live.offsets.get((topics.contact_events, partition))
        return done is not None and done + 1 >= highwater

    @app.timer(BREACH_TICK)
    async def publish_breaches() -> None:
        if not worker.ready.is_set():
            return
        try:
            due = live.due_breaches(now_us(), caught_up)
        except Exception:  # a timer must never take the worker down; the breaches stay due for the next tick
            log.exception("breach timer failed")
            return
        for breach in due:
            record = breach.to_dict()
            await breaches_topic.send(key=breach.contact_id.encode(), value=orjson.dumps(record))
            for listener in worker.breach_listeners:
                listener(record)

    @app.timer(MAINTENANCE_EVERY)
    async def forget_old_contacts() -> None:
        # marks only: the agents delete the keys from the tables (tables change inside agents only)
        if not worker.ready.is_set():
            return
        now = now_us()
        for proc in live.contact_parts.values():
            proc.dirty.update(proc.forget(now))
        for proc in live.customer_parts.values():
            proc.dirty.update(proc.forget(now))

    @app.timer(5.0)
    async def measure_lag() -> None:
        """Consumer lag per source partition = high watermark - next offset to process (aiokafka has no API)."""
        fresh: dict[tuple[str, int], int] = {}
        assignment = app.consumer.assignment()
        for tp in app.assignor.assigned_actives():
            if tp.topic not in (topics.contact_events, topics.survey_responses) or tp not in assignment:
                continue
            highwater = app.consumer.highwater(tp)
            if highwater is None or highwater < 0:
                continue
            done = live.offsets.get((tp.topic, tp.partition))
            fresh[(tp.topic, tp.partition)] = max(0, highwater - (done + 1 if done is not None else 0))
        lag.clear()  # a partition given to another worker after a rebalance must not keep its old gauge
        lag.update(fresh)
        liveness.start_judging(worker.ready.is_set())
        liveness.lag_measured(sum(fresh.values()))
        if liveness.must_exit:
            stop_now("; ".join(liveness.problems()) + " - exiting so that the supervisor restarts the worker", EXIT_STALLED)

    probe: dict[str, Any] = {}

    @app.timer(5.0)
    async def check_broker() -> None:
        """A metadata request to the bootstrap servers: the only sure sign that Kafka answers this worker."""
        from aiokafka import AIOKafkaClient

        client = probe.get("client")
        if client is None:
            client = probe["client"] = AIOKafkaClient(
                bootstrap_servers=kafka.bootstrap_servers, request_timeout_ms=4000,
                client_id=f"{ws.app_id}-probe", **client_options(kafka),
            )
        try:
            await asyncio.wait_for(client.fetch_all_metadata(), timeout=4.5)
            ok = True
        except Exception:  # noqa: BLE001 - any failure means: not reachable now
            ok = False
        if ok != (not liveness.broker_failing):
            log.warning("Kafka %s", "reachable again" if ok else "does not answer a metadata request")
        liveness.broker_checked(ok)

    from cxpulse.sinks.redis_sink import attach_redis_sink
    attach_redis_sink(worker)
    from cxpulse.streams.web import add_routes

    add_routes(worker)
    return worker
