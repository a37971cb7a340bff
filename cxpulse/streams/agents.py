"""The worker's Faust agents: source events into contacts, FCR summaries into customers, agent states into
agents (contract v2), one batch at a time.

::

    contact-events ─┐                        ┌─> contact-events-dlq / survey-responses-dlq
    survey-responses┴─> contacts agent ──────┼─> table "contacts" (changelog)      [key contact_id]
                                             └─> <app>-fcr-summaries ─> customers agent ─> table "customers"
    agent-events ────> agent-states agent ───┬─> table "agents" (changelog)        [key agent_id]
                                             └─> agent-events-dlq

Why batches: each changed contact or customer is written once per batch (in bulk, see
:mod:`cxpulse.streams.table_writer`), and the batch is acknowledged only once its state is stored; a batch whose
state cannot be stored stops the worker before its offsets are committed (:func:`~cxpulse.streams.worker.stop_now`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
import orjson
from faust.types import EventT

from cxpulse.core.contact import Summary
from cxpulse.core.live import LiveKpis, now_us
from cxpulse.models.agent_events import parse_agent_event
from cxpulse.models.events import InvalidEvent
from cxpulse.models.wire import decode_contact_event, decode_survey_response
from cxpulse.streams import codec
from cxpulse.streams.batching import batch_wait, take_batches
from cxpulse.streams.dead_letters import DeadLetter, DeadLetterOutbox
from cxpulse.streams.storage import save_changed, stored_agent, stored_contact
from cxpulse.streams.table_writer import BulkTableWriter
from cxpulse.streams.worker import Worker, stop_now

log = logging.getLogger("cxpulse.worker")

BATCH_MAX = 2000  # events per batch at most; how long a batch waits: streams/batching.py (short live, longer behind)


def raw_value(event: EventT) -> bytes:
    """The record's value as bytes (Faust hands raw values over as bytes, or None for an empty record)."""
    return event.value if isinstance(event.value, bytes) else bytes(event.value or b"")


Parse = Callable[[str, bytes], Any]  # (topic, raw) -> the validated event; raises InvalidEvent
Handle = Callable[[str, int, Any, bytes, int, Any], Any]  # (topic, partition, parsed, raw, offset, key)


def apply_event(live: LiveKpis, event: EventT, parse: Parse, handle: Handle) -> DeadLetter | None:
    """Record ``event``'s offset as consumed, validate it with ``parse`` and :meth:`LiveKpis.admit`, apply it
    with ``handle``; None when applied, else the dead letter to send: an invalid event with its reason, one whose
    handling raised as ``internal error`` (logged).

    Why one function: every event either counts, is a duplicate, or is dead-lettered, in the contacts agent
    and the agent-states agent alike; a bug on one event must not stop the pipeline in either. Why synchronous,
    with ``parse`` and ``handle`` taking the record's coordinates: it runs once per event, and a coroutine and
    two closures per event were a few percent of a loaded worker's time (session 12); only the rare dead letter
    needs an ``await``, which the caller does."""
    message = event.message
    raw = raw_value(event)
    topic, partition, offset = message.topic, message.partition, message.offset
    live.offsets[(topic, partition)] = offset  # consumed, whatever its fate
    try:
        parsed = parse(topic, raw)
        live.admit(parsed)
    except InvalidEvent as exc:
        live.note_invalid(topic, exc.kind)
        return DeadLetter(raw, message.key, exc.reason, exc.kind, topic, partition, offset)
    try:
        handle(topic, partition, parsed, raw, offset, message.key)
    except Exception as exc:  # a bug must not stop the pipeline: the event is kept in the DLQ
        log.exception("internal error on an event of %s[%d]", topic, partition)
        live.note_invalid(topic, "internal_error")
        return DeadLetter(raw, message.key, f"internal error: {type(exc).__name__}", "internal_error", topic,
                          partition, offset)
    return None


async def dead_letter_unstored(live: LiveKpis, dead_letters: DeadLetterOutbox, partition: int,
                               events: Sequence[EventT], id_field: str, ids: set[str], what: str) -> None:
    """Send this batch's events on ``partition`` whose ``id_field`` is in ``ids`` (contacts or agents whose new
    state could not be stored) to the dead-letter topic as ``internal error``, no longer counted as processed.

    Why one function: the contacts and the agent-states agents roll back the same way, and a lost event must be
    accounted for identically in both (events.md: never a silent loss)."""
    for event in events:
        message = event.message
        if message.partition != partition:
            continue
        raw = raw_value(event)
        try:
            entity_id = orjson.loads(raw).get(id_field)
        except (orjson.JSONDecodeError, AttributeError):
            continue
        if entity_id in ids:
            live.topic_health(message.topic).processed -= 1
            live.note_invalid(message.topic, "internal_error")
            await dead_letters.send(DeadLetter(
                raw, message.key, f"internal error: the {what}'s state could not be stored", "internal_error",
                message.topic, message.partition, message.offset,
            ))


class CheckpointedBatches:
    """What the contacts' and the customers' agents share: each batch runs under ``lock``, and the side's checkpoint
    while running (:meth:`cxpulse.streams.recovery.Recovery.save_running_checkpoint`), when due, is taken under it
    too, between two batches: never while a batch's changes are half stored."""

    def __init__(self) -> None:
        self.checkpoint_due: Callable[[], bool] = lambda: False
        self.save_checkpoint: Callable[[], Awaitable[None]] | None = None
        self.lock = asyncio.Lock()

    async def process(self, events: Sequence[EventT]) -> None:
        """Apply and store one batch, then the side's checkpoint, if one is due."""
        async with self.lock:
            await self._process(events)
            if self.save_checkpoint is not None and self.checkpoint_due():
                await self.save_checkpoint()

    async def checkpoint_when_idle(self) -> None:
        """The checkpoint of a worker that has no batch to end (a timer's): between two batches too."""
        if self.save_checkpoint is not None and self.checkpoint_due() and not self.lock.locked():
            async with self.lock:
                await self.save_checkpoint()

    async def _process(self, events: Sequence[EventT]) -> None:
        raise NotImplementedError


class ContactBatches(CheckpointedBatches):
    """Validate, apply and store batches of source events (the body of the contacts agent): every event either
    counts, is a duplicate, or is dead-lettered."""

    def __init__(self, worker: Worker, writer: BulkTableWriter, dead_letters: DeadLetterOutbox) -> None:
        super().__init__()
        self.worker = worker
        self.live = worker.live
        self.writer = writer
        self.dead_letters = dead_letters
        self.survey_topic = worker.settings.kafka.topics.survey_responses
        self.partitions = worker.settings.kafka.partitions
        self.recent_contacts = worker.settings.worker.recent_contacts

    def parse(self, topic: str, raw: bytes) -> Any:
        """The validated event of ``raw`` (raises :class:`InvalidEvent`), by the contract of its topic."""
        if topic == self.survey_topic:
            return decode_survey_response(raw)
        return decode_contact_event(raw)

    async def _process(self, events: Sequence[EventT]) -> None:
        live, writer = self.live, self.writer
        touched: dict[int, EventT] = {}
        parse, handle = self.parse, live.handle
        for event in events:
            dead = apply_event(live, event, parse, handle)
            if dead is None:
                touched[event.message.partition] = event
            else:
                await self.dead_letters.send(dead)
        outgoing: dict[int, list[Summary]] = {}  # FCR summaries by target partition (customer)
        for partition in touched:
            for rejection in live.settle(partition):
                await self.dead_letters.send_rejection(rejection)
            proc = live.contacts(partition)
            failed = save_changed(writer.stage, proc.dirty, proc.contacts, codec.encode_contact, partition)
            if failed:
                await self.roll_back(partition, set(failed), events)
            for summary in proc.drain_summaries():
                target = codec.customer_partition(summary.customer_id, self.partitions)
                outgoing.setdefault(target, []).append(summary)
            # settled and stored: the table holds them from now on (the most recent few stay: worker.recent_contacts)
            proc.evict(keep_packed=False, keep=self.recent_contacts)
        for partition, proc in live.contact_parts.items():  # marks set by the timers (breaches, forgetting)
            if proc.dirty and partition not in touched:
                save_changed(writer.stage, proc.dirty, proc.contacts, codec.encode_contact, partition)
        await writer.flush()  # stored and in the changelog before the batch is acknowledged
        summaries = self.worker.topics.summaries
        for target, batch in outgoing.items():
            await summaries.send(value=codec.encode_summaries(batch), partition=target)

    async def roll_back(self, partition: int, contact_ids: set[str], events: Sequence[EventT]) -> None:
        """Contacts whose new state could not be stored: back to their stored state, and this batch's events
        of theirs to the dead-letter topic as ``internal error`` (events.md: never a silent loss)."""
        live = self.live
        proc = live.contacts(partition)
        for contact_id in contact_ids:
            proc.replace(contact_id, stored_contact(self.worker.contacts_table, partition, contact_id))
        await dead_letter_unstored(live, self.dead_letters, partition, events, "contact_id", contact_ids, "contact")
        # the contacts put back are in step with the table already
        proc.dirty -= contact_ids


class CustomerBatches(CheckpointedBatches):
    """Apply and store batches of FCR summaries (the body of the customers agent)."""

    def __init__(self, worker: Worker, writer: BulkTableWriter) -> None:
        super().__init__()
        self.live = worker.live
        self.writer = writer
        self.summaries_topic = worker.topics.summaries.get_topic_name()

    async def _process(self, events: Sequence[EventT]) -> None:
        """Update each summary's customer, then store every changed customer; a storage failure stops the worker."""
        live = self.live
        touched: set[int] = set()
        for event in events:
            partition = event.message.partition
            customers = live.customers(partition)
            for summary in codec.decode_summaries(event.value):
                customers.update(summary)
            touched.add(partition)
        await self.store(touched)

    async def store(self, touched: set[int]) -> bool:
        """Store every changed customer (``touched`` partitions first, then any other with changes: forgotten
        contacts, the sweeper's deletions); a storage failure stops the worker. True when nothing is left unsaved."""
        live, writer = self.live, self.writer
        try:
            for partition in touched:
                proc = live.customers(partition)
                failed = save_changed(writer.stage, proc.dirty, proc.customers, codec.encode_customer, partition)
                # kept in memory and tried again with the next batch; counted so that it is seen
                proc.dirty.update(failed)
                for _ in failed:
                    live.note_invalid(self.summaries_topic, "internal_error")
            for partition, proc in live.customer_parts.items():  # forgotten contacts, swept customers
                if proc.dirty and partition not in touched:
                    save_changed(writer.stage, proc.dirty, proc.customers, codec.encode_customer, partition)
            await writer.flush()
        except Exception as exc:  # noqa: BLE001 - never ack summaries whose customers were not stored
            log.exception("a batch of FCR summaries could not be stored")
            stop_now(f"a batch of FCR summaries could not be stored ({type(exc).__name__})")
        return not any(proc.dirty for proc in live.customer_parts.values())

    async def forget_and_store(self) -> bool:
        """Before a checkpoint of the customers: forget the contacts past their memory and store the customers that
        changed (the maintenance timer's forget, moved here when the customers are checkpointed while running: see
        :func:`cxpulse.streams.checkpoint.lost_contact`). False when a customer stays unsaved (no checkpoint now)."""
        now = now_us()
        for proc in self.live.customer_parts.values():
            proc.dirty.update(proc.forget(now))
        return await self.store(set())


def install(worker: Worker, contact_writer: BulkTableWriter, customer_writer: BulkTableWriter,
            dead_letters: DeadLetterOutbox) -> tuple[ContactBatches, CustomerBatches]:
    """Register the contacts and customers agents on ``worker.app``."""
    app, liveness = worker.app, worker.liveness
    contacts = ContactBatches(worker, contact_writer, dead_letters)
    customers = CustomerBatches(worker, customer_writer)
    wait = batch_wait(lambda: liveness.behind)

    @app.agent(worker.topics.source, name="cxpulse-contacts")
    async def process_contacts(stream: faust.StreamT) -> None:
        async for events in take_batches(stream, BATCH_MAX, wait):
            liveness.consumed()
            try:
                await contacts.process(events)
            except Exception as exc:  # noqa: BLE001 - never ack a batch whose state was not stored
                log.exception("a batch of source events could not be processed")
                stop_now(f"a batch could not be processed ({type(exc).__name__}); its offsets stay uncommitted")

    @app.agent(worker.topics.summaries, name="cxpulse-customers")
    async def process_customers(stream: faust.StreamT) -> None:
        async for events in take_batches(stream, BATCH_MAX, wait):
            await customers.process(events)

    return contacts, customers


AGENT_PRUNE_EVERY = 4096  # agent events per partition between drops of intervals no window can see any more


class AgentStateBatches:
    """Validate, apply and store batches of ``agent.state`` events (the body of the agent-states agent).

    Like the contacts: each changed agent is staged once per batch and written in bulk before the batch is
    acknowledged; an agent whose state cannot be encoded goes back to its stored state and this batch's events
    of it go to ``agent-events-dlq`` as ``internal error``. Agent events run in their own agent, so they never
    wait for, or delay, a batch of contact events."""

    def __init__(self, worker: Worker, writer: BulkTableWriter, dead_letters: DeadLetterOutbox) -> None:
        self.worker = worker
        self.live = worker.live
        self.writer = writer
        self.dead_letters = dead_letters
        self.since_prune: dict[int, int] = {}

    @staticmethod
    def parse(topic: str, raw: bytes) -> Any:
        return parse_agent_event(raw)

    def handle(self, topic: str, partition: int, parsed: Any, raw: bytes, offset: int, key: Any) -> None:
        self.live.handle_agent(topic, partition, parsed, offset)

    async def process(self, events: Sequence[EventT]) -> None:
        """Validate, apply and store one batch; every event either counts, is a duplicate, or is dead-lettered."""
        live = self.live
        touched: set[int] = set()
        for event in events:
            dead = apply_event(live, event, self.parse, self.handle)
            if dead is not None:
                await self.dead_letters.send(dead)
                continue
            partition = event.message.partition
            touched.add(partition)
            self.since_prune[partition] = self.since_prune.get(partition, 0) + 1
        for partition in touched:
            proc = live.agents(partition)
            if self.since_prune[partition] >= AGENT_PRUNE_EVERY:
                self.since_prune[partition] = 0
                proc.prune()
            failed = save_changed(self.writer.stage, proc.dirty, proc.agents, codec.encode_agent, partition)
            if failed:
                await self.roll_back(partition, set(failed), events)
        await self.writer.flush()  # stored and in the changelog before the batch is acknowledged

    async def roll_back(self, partition: int, agent_ids: set[str], events: Sequence[EventT]) -> None:
        """Agents whose new state could not be stored: back to their stored state, and this batch's events of
        theirs to the dead-letter topic (events.md: never a silent loss)."""
        live = self.live
        table = self.worker.agents_table
        assert table is not None
        proc = live.agents(partition)
        for agent_id in agent_ids:
            proc.replace(agent_id, stored_agent(table, partition, agent_id))
        await dead_letter_unstored(live, self.dead_letters, partition, events, "agent_id", agent_ids, "agent")
        proc.dirty -= agent_ids


def install_agent_states(worker: Worker, writer: BulkTableWriter, dead_letters: DeadLetterOutbox) -> AgentStateBatches:
    """Register the agent-states agent (topic ``agent-events``, contract v2) on ``worker.app``."""
    batches = AgentStateBatches(worker, writer, dead_letters)
    topic = worker.topics.agents
    wait = batch_wait(lambda: worker.liveness.behind)
    assert topic is not None  # worker_topics always makes it

    @worker.app.agent(topic, name="cxpulse-agent-states")
    async def process_agent_states(stream: faust.StreamT) -> None:
        async for events in take_batches(stream, BATCH_MAX, wait):
            worker.liveness.consumed()
            try:
                await batches.process(events)
            except Exception as exc:  # noqa: BLE001 - never ack a batch whose state was not stored
                log.exception("a batch of agent events could not be processed")
                stop_now(f"a batch of agent events could not be processed ({type(exc).__name__}); "
                         "its offsets stay uncommitted")

    return batches
