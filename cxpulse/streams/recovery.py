"""When a worker is ready: its tables recovered and the breach log read, again after every rebalance.

Why: the counts are *derived* from the contacts' and customers' state, so recovery rebuilds them exactly from
the tables' changelogs; and no breach may be published twice, so ``sla-breaches`` is read back (by this or any
worker) before the breach timer publishes anything. Until both are done the worker is not ready: the HTTP API
answers 503, the Redis sink and the timers wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cxpulse import core
from cxpulse.gc_policy import freeze_state
from cxpulse.kafka_security import client_options
from cxpulse.streams import checkpoint, codec
from cxpulse.streams.breach_log import read_published_feedback, read_published_visits
from cxpulse.streams.storage import stored_value
from cxpulse.streams.worker import Worker, stop_now

log = logging.getLogger("cxpulse.worker")

BREACH_LOG_RETRY = 1.0  # seconds between attempts to read sla-breaches
# changelog keys noted during one recovery at most: a checkpoint's tail is a minute of writes; past this, Faust is
# restoring a whole table (a new disk), which no checkpoint on that disk can describe, and the set would only cost
# memory (a month of a large centre: millions of keys)
RECOVERY_KEYS_MAX = 500_000


class Recovery:
    """Table recovery, rebalance signals and the breach log, and the readiness they decide together."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.live = worker.live

    def assigned(self, topic_name: str) -> set[int]:
        """The partitions of ``topic_name`` this worker owns now."""
        return {tp.partition for tp in self.worker.app.assignor.assigned_actives() if tp.topic == topic_name}

    def source_topic(self, side: str) -> str:
        """The topic whose partitions decide which partitions of ``side`` this worker owns."""
        topics = self.worker.settings.kafka.topics
        return {"contacts": topics.contact_events, "customers": self.worker.topics.summaries.get_topic_name(),
                "agents": topics.agent_events}[side]

    def from_checkpoint(self, side: str, assigned: set[int]) -> bool:
        """Read ``side`` back from the clean stop's checkpoint if it describes the recovered table (see
        :mod:`cxpulse.streams.checkpoint`), or, for a logged side (contacts, customers), from its last checkpoint
        and the keys logged since; False: rebuild from the table."""
        worker = self.worker
        table = worker.table_of(side)
        offsets = checkpoint.recovered_offsets(table, assigned)
        if offsets is None:
            return False
        worker.recovered_offsets[side] = offsets
        if worker.checkpoints is None:
            return False
        said = None
        side_log = worker.touch_logs.get(side)
        if side_log is not None:
            said = self.from_checkpoint_and_log(side, offsets)
            if said is None:
                return True
            side_log.discard()  # the state is read otherwise: the log no longer follows a checkpoint
        data, why = worker.checkpoints.take(side, offsets)
        if data is None:
            if why != "no checkpoint":
                log.info("%s: not read from the checkpoint: %s; rebuilding from the table", side,
                         "see above" if why == said else why)
            return False
        partitions, seconds = checkpoint.timed_load(self.live, side, data)
        log.info("%s recovered from the checkpoint of the last clean stop: %d partitions, %d MiB, in %.1f s",
                 side, partitions, len(data) >> 20, seconds)
        return True

    def from_checkpoint_and_log(self, side: str, offsets: checkpoint.Offsets) -> str | None:
        """``side`` from its last checkpoint (a periodic one, or a clean stop's) and the keys its log names (see
        :mod:`cxpulse.streams.checkpoint`); None when read, else why not (logged)."""
        worker = self.worker
        log_, store = worker.touch_logs[side], worker.checkpoints
        assert store is not None
        table = worker.table_of(side)
        began = time.monotonic()
        noted = worker.recovery_keys.pop(side, {})
        applied = {partition: keys for partition, keys in noted.items() if partition in offsets}
        if side in worker.recovery_keys_overflow:
            worker.recovery_keys_overflow.discard(side)
            why = f"Faust's recovery restored more than {RECOVERY_KEYS_MAX} changelog records"
            log.info("%s: not read from the checkpoint and its log: %s", side, why)
            return why
        found, why = checkpoint.read_with_log(store, side, log_, offsets, applied,
                                              lambda partition, key: stored_value(table, partition, key))
        if found is None:
            log.info("%s: not read from the checkpoint and its log: %s", side, why)
            return why
        saved, extra, touched, now, era = found
        self.live.load_saved(side, saved, extra)
        caught_up = checkpoint.catch_up(self.live, side, touched, now)
        log_.resume(era)
        log.info("%s recovered from the checkpoint and the %d %s stored since, in %.1f s", side, caught_up, side,
                 time.monotonic() - began)
        return None

    def observe_recovery(self, side: str) -> None:
        """Note the keys of ``side``'s changelog records Faust's recovery writes into the stores of the partitions
        this worker owns, before it is ready (standby updates later are not its own partitions'): a start from a
        checkpoint and its log must find every one of them in the log."""
        worker = self.worker
        table = worker.table_of(side)
        assert table is not None
        apply = table.apply_changelog_batch
        topic = table.changelog_topic.get_topic_name()

        def observed(batch: Any) -> None:
            if not worker.ready.is_set() and side not in worker.recovery_keys_overflow:
                actives = {tp.partition for tp in worker.app.assignor.assigned_actives() if tp.topic == topic}
                keys = worker.recovery_keys.setdefault(side, {})
                for event in batch:
                    message = event.message
                    if message.partition in actives:
                        keys.setdefault(message.partition, set()).add(message.key)
                if sum(map(len, keys.values())) > RECOVERY_KEYS_MAX:
                    worker.recovery_keys.pop(side, None)
                    worker.recovery_keys_overflow.add(side)
            apply(batch)

        table.apply_changelog_batch = observed

    async def contacts_recovered(self) -> None:
        """The contacts table is recovered: rebuild the live contacts (and counts) of the owned partitions."""
        self.side_recovered("contacts", self.rebuild_contacts)

    async def customers_recovered(self) -> None:
        """The customers table is recovered: rebuild the live customers of the owned partitions."""
        self.side_recovered("customers", self.rebuild_customers)

    async def agents_recovered(self) -> None:
        """The agents table is recovered: rebuild the agent states of the owned partitions (contract v2)."""
        self.side_recovered("agents", self.rebuild_agents)

    def side_recovered(self, side: str, rebuild: Callable[[set[int]], None]) -> None:
        """Read ``side`` back from the checkpoint or rebuild it from its table, then maybe become ready.

        A rebuild that raises stops the worker (exit code 70, the reason in its log). Why: Faust runs these
        callbacks with ``asyncio.wait``, which keeps their exceptions to itself; the worker went on, alive and
        consuming nothing useful, never ready and saying nothing. Stopped, it is restarted by its supervisor,
        and an error that stays shows as a crash loop with its reason rather than as a silent, stuck worker."""
        try:
            assigned = self.assigned(self.source_topic(side))
            if not self.from_checkpoint(side, assigned):
                rebuild(assigned)
        except Exception as exc:  # noqa: BLE001 - see above: never alive and silently unready
            log.exception("the %s could not be rebuilt from the recovered table", side)
            stop_now(f"the {side} could not be rebuilt from the recovered table ({type(exc).__name__})")
            return
        self.worker.recovered.add(side)
        self.maybe_ready()

    def rebuild_contacts(self, assigned: set[int]) -> None:
        """The live contacts (and counts) of the ``assigned`` partitions, from every stored contact."""
        live, table = self.live, self.worker.contacts_table
        items = ((codec.key_text(k), *codec.decode_contact(v, sync=False)) for k, v in table.items())
        count = live.rebuild_contacts(items, assigned)
        log.info("contacts recovered: %d contacts in %d partitions", count, len(live.contact_parts))

    def rebuild_customers(self, assigned: set[int]) -> None:
        """The live customers of the ``assigned`` partitions, from every stored customer."""
        live, table = self.live, self.worker.customers_table
        items = ((codec.key_text(k), codec.decode(v)) for k, v in table.items())
        count = live.rebuild_customers(items, assigned)
        log.info("customers recovered: %d customers in %d partitions", count, len(live.customer_parts))

    def rebuild_agents(self, assigned: set[int]) -> None:
        """The agent states of the ``assigned`` partitions, from every stored agent."""
        live, table = self.live, self.worker.agents_table
        assert table is not None  # registered only with the table
        items = ((codec.key_text(k), *codec.decode_agent(v)) for k, v in table.items())
        count = live.rebuild_agents(items, assigned)
        log.info("agents recovered: %d agents in %d partitions", count, len(live.agent_parts))

    async def save_checkpoints(self, sender: Any = None, **kwargs: Any) -> None:
        """A clean stop (Faust's ``on_before_shutdown``: the consumer is stopped and every batch processed): wait
        for the last changelog batches to be acknowledged, then save each side with the offsets it reflects.

        Only a worker whose state is whole: recovered and not in a rebalance. Nothing here may stop the stop."""
        worker = self.worker
        if worker.checkpoints is None or not worker.is_ready():
            return
        try:
            for writer in worker.writers.values():
                await writer.drain()
            for side, recovered in worker.recovered_offsets.items():
                writer = worker.writers.get(side)
                if writer is None:
                    continue
                began = time.monotonic()
                offsets = checkpoint.offsets_now(recovered, writer)
                side_log = worker.touch_logs.get(side)
                era = checkpoint.new_era() if side_log is not None else None
                saved = worker.checkpoints.save(side, offsets, functools.partial(self.live.write_checkpoint, side),
                                                era)
                if side_log is not None and era is not None:
                    side_log.begin(era)
                    worker.checkpoint_saved_at[side] = time.time()
                log.info("%s saved for the next start: %d partitions, %d MiB, in %.1f s", side, len(offsets),
                         saved.stat().st_size >> 20, time.monotonic() - began)
        except Exception:  # noqa: BLE001 - the next start rebuilds from the tables instead
            log.exception("cannot save the checkpoint; the next start rebuilds from the tables")

    def checkpoint_due(self, side: str) -> bool:
        """Is a checkpoint of ``side`` due (between two batches, see :meth:`save_running_checkpoint`)?"""
        worker = self.worker
        return (side in worker.touch_logs and worker.checkpoint_every > 0 and worker.is_ready()
                and time.monotonic() >= worker.next_checkpoint_at.get(side, 0.0) and side in worker.recovered_offsets)

    async def save_running_checkpoint(self, side: str, prepare: Callable[[], Awaitable[bool]] | None = None) -> None:
        """Save ``side`` and start a new log (its agent calls this between two batches).

        First ``prepare`` (the customers: forget old contacts and store what that changed; False: not now), then
        every changelog batch sent is acknowledged (the checkpoint names the offsets its state reflects); for the
        contacts, every breach marked published in memory is also handed to the producer and acknowledged
        (``publishing`` keeps the breach timer out meanwhile): a kill -9 after the checkpoint can then lose no
        breach it calls published. The snapshot, the file and the new log are then made without yielding to the
        loop, so no write falls between them. A failure only postpones the next checkpoint: the last one and its
        log stay valid (a customers' log that saw the forget's writes is refused at the next start, which then
        rebuilds: :func:`cxpulse.streams.checkpoint.lost_contact`)."""
        worker = self.worker
        writer = worker.writers.get(side)
        side_log = worker.touch_logs[side]
        assert worker.checkpoints is not None and writer is not None
        worker.next_checkpoint_at[side] = time.monotonic() + worker.checkpoint_every
        try:
            async with worker.publishing if side == "contacts" else contextlib.nullcontext():
                if prepare is not None and not await prepare():
                    return
                await writer.drain()
                if side == "contacts":
                    await worker.app.producer.flush()
                if not worker.is_ready():
                    return  # a rebalance began meanwhile
                began = time.monotonic()
                offsets = checkpoint.offsets_now(worker.recovered_offsets[side], writer)
                era = checkpoint.new_era()
                saved = worker.checkpoints.save(side, offsets, functools.partial(self.live.write_checkpoint, side),
                                                era)
                side_log.begin(era)
                worker.checkpoint_saved_at[side] = time.time()
            log.debug("%s checkpoint: %d MiB in %.2f s", side, saved.stat().st_size >> 20, time.monotonic() - began)
        except Exception:  # noqa: BLE001 - the previous checkpoint and its log still describe the state
            log.exception("cannot save the %s' checkpoint; trying again in %.0f s", side, worker.checkpoint_every)

    def maybe_ready(self) -> None:
        """Ready once the breach log is read and every table is recovered."""
        worker = self.worker
        tables = {"contacts", "customers"} | ({"agents"} if worker.agents_table is not None else set())
        if worker.breaches_loaded and tables <= worker.recovered and not worker.ready.is_set():
            freeze_state()  # the state just rebuilt or read back: no full collection walks it again
            worker.ready.set()

    async def partitions_revoked(self, sender: Any, revoked: Any, **kwargs: Any) -> None:
        """Until the new assignment is recovered and the breach log re-read, publish nothing: a partition may be
        moving to another worker, which will publish its breaches."""
        worker = self.worker
        worker.ready.clear()
        worker.recovered.clear()
        worker.breaches_loaded = False
        worker.recovery_keys, worker.recovery_keys_overflow = {}, set()
        for side_log in worker.touch_logs.values():
            if side_log.active:
                # the state is rebuilt for the new assignment; until the next checkpoint nothing follows one. Only
                # an active log: the revocation that starts a worker's first assignment must leave the last
                # process's log for the recovery to read
                side_log.discard()

    async def partitions_assigned(self, sender: Any, assigned: Any, **kwargs: Any) -> None:
        """A new assignment: read the breach log again (in the background; recovery runs meanwhile)."""
        self.worker.breaches_loaded = False
        asyncio.ensure_future(self.load_published_breaches())

    async def load_published_breaches(self) -> None:
        """Read what is already on ``sla-breaches`` and ``feedback-breaches`` (by this or any worker) so no
        breach is published twice: after a restart, and after a rebalance hands over a partition whose breaches
        another worker published. Both logs before the timer runs: it publishes both kinds in one tick."""
        worker = self.worker
        kafka = worker.settings.kafka
        topics = kafka.topics
        options = client_options(kafka)
        while True:
            try:
                visits = await read_published_visits(kafka.bootstrap_servers, topics.sla_breaches,
                                                     client_options=options)
                feedback = await read_published_feedback(kafka.bootstrap_servers, topics.feedback_breaches,
                                                         client_options=options)
                break
            except Exception as exc:  # never start publishing blind: retry until both logs are read
                log.warning("cannot read %s / %s yet (%s); retrying", topics.sla_breaches, topics.feedback_breaches,
                            exc)
                await asyncio.sleep(BREACH_LOG_RETRY)
        self.live.published_visits.update(visits)
        self.live.published_feedback.update(feedback)
        log.info("sla-breaches already published: %d; feedback-breaches: %d", len(visits), len(feedback))
        # once per start, where Faust's logging is set up (not in create_worker: before it, INFO goes nowhere):
        # compiled, or the sources and why (a build older than its sources runs them: slower, the same figures)
        log.info("KPI core: %s", core.runs())
        worker.breaches_loaded = True
        self.maybe_ready()


def install(worker: Worker) -> Recovery:
    """Register the tables' recovery callbacks and the rebalance signals on ``worker.app``."""
    recovery = Recovery(worker)
    for side in worker.touch_logs:
        recovery.observe_recovery(side)
    worker.contacts_table.on_recover(recovery.contacts_recovered)
    worker.customers_table.on_recover(recovery.customers_recovered)
    if worker.agents_table is not None:
        worker.agents_table.on_recover(recovery.agents_recovered)
    worker.app.on_partitions_revoked.connect(recovery.partitions_revoked)
    worker.app.on_before_shutdown.connect(recovery.save_checkpoints)
    worker.app.on_partitions_assigned.connect(recovery.partitions_assigned)
    return recovery
