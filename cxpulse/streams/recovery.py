"""When a worker is ready: its tables recovered and the breach log read, again after every rebalance.

Why: the counts are *derived* from the contacts' and customers' state, so recovery rebuilds them exactly from
the tables' changelogs; and no breach may be published twice, so ``sla-breaches`` is read back (by this or any
worker) before the breach timer publishes anything. Until both are done the worker is not ready: the HTTP API
answers 503, the Redis sink and the timers wait.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from cxpulse.kafka_security import client_options
from cxpulse.streams import codec
from cxpulse.streams.breach_log import read_published_feedback, read_published_visits
from cxpulse.streams.worker import Worker

log = logging.getLogger("cxpulse.worker")

BREACH_LOG_RETRY = 1.0  # seconds between attempts to read sla-breaches


class Recovery:
    """Table recovery, rebalance signals and the breach log, and the readiness they decide together."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.live = worker.live

    def assigned(self, topic_name: str) -> set[int]:
        """The partitions of ``topic_name`` this worker owns now."""
        return {tp.partition for tp in self.worker.app.assignor.assigned_actives() if tp.topic == topic_name}

    async def contacts_recovered(self) -> None:
        """The contacts table is recovered: rebuild the live contacts (and counts) of the owned partitions."""
        worker, live = self.worker, self.live
        table = worker.contacts_table
        items = ((codec.key_text(k), *codec.decode_contact(v, sync=False)) for k, v in table.items())
        count = live.rebuild_contacts(items, self.assigned(worker.settings.kafka.topics.contact_events))
        log.info("contacts recovered: %d contacts in %d partitions", count, len(live.contact_parts))
        worker.recovered.add("contacts")
        self.maybe_ready()

    async def customers_recovered(self) -> None:
        """The customers table is recovered: rebuild the live customers of the owned partitions."""
        worker, live = self.worker, self.live
        table = worker.customers_table
        items = ((codec.key_text(k), codec.decode(v)) for k, v in table.items())
        count = live.rebuild_customers(items, self.assigned(worker.topics.summaries.get_topic_name()))
        log.info("customers recovered: %d customers in %d partitions", count, len(live.customer_parts))
        worker.recovered.add("customers")
        self.maybe_ready()

    async def agents_recovered(self) -> None:
        """The agents table is recovered: rebuild the agent states of the owned partitions (contract v2)."""
        worker, live = self.worker, self.live
        table = worker.agents_table
        assert table is not None  # registered only with the table
        items = ((codec.key_text(k), *codec.decode_agent(v)) for k, v in table.items())
        count = live.rebuild_agents(items, self.assigned(worker.settings.kafka.topics.agent_events))
        log.info("agents recovered: %d agents in %d partitions", count, len(live.agent_parts))
        worker.recovered.add("agents")
        self.maybe_ready()

    def maybe_ready(self) -> None:
        """Ready once the breach log is read and every table is recovered."""
        worker = self.worker
        tables = {"contacts", "customers"} | ({"agents"} if worker.agents_table is not None else set())
        if worker.breaches_loaded and tables <= worker.recovered:
            worker.ready.set()

    async def partitions_revoked(self, sender: Any, revoked: Any, **kwargs: Any) -> None:
        """Until the new assignment is recovered and the breach log re-read, publish nothing: a partition may be
        moving to another worker, which will publish its breaches."""
        worker = self.worker
        worker.ready.clear()
        worker.recovered.clear()
        worker.breaches_loaded = False

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
        worker.breaches_loaded = True
        self.maybe_ready()


def install(worker: Worker) -> Recovery:
    """Register the tables' recovery callbacks and the rebalance signals on ``worker.app``."""
    recovery = Recovery(worker)
    worker.contacts_table.on_recover(recovery.contacts_recovered)
    worker.customers_table.on_recover(recovery.customers_recovered)
    if worker.agents_table is not None:
        worker.agents_table.on_recover(recovery.agents_recovered)
    worker.app.on_partitions_revoked.connect(recovery.partitions_revoked)
    worker.app.on_partitions_assigned.connect(recovery.partitions_assigned)
    return recovery
