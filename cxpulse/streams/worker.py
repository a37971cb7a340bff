"""What one worker is made of: its Faust app, topics, tables, live state and readiness, in one dataclass.

Why a dataclass of its own: :func:`cxpulse.streams.app.create_worker` builds it, and the modules that give the
worker its behaviour (:mod:`~cxpulse.streams.agents`, :mod:`~cxpulse.streams.recovery`,
:mod:`~cxpulse.streams.timers`) each take it and register their part on its app. The sinks and the HTTP routes
do *not* take it: they get only what they read (see ``create_worker``), so they do not import the worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import faust
from faust.types import TableT, TopicT
from prometheus_client import CollectorRegistry

from cxpulse.core.live import LiveKpis
from cxpulse.settings import Settings
from cxpulse.streams.checkpoint import CheckpointStore, Offsets
from cxpulse.streams.liveness import Liveness
from cxpulse.streams.rocksdb_budget import RocksDBBudget
from cxpulse.streams.touch_log import TouchLog

log = logging.getLogger("cxpulse.worker")

BreachListener = Callable[[dict[str, Any]], None]


@dataclass
class WorkerTopics:
    """The Faust topics a worker reads and writes (names from ``kafka.topics`` and the app id)."""

    source: TopicT  # contact-events and survey-responses, read by the contacts agent
    summaries: TopicT  # <app id>-fcr-summaries: FCR summaries partitioned by customer, read by the customers agent
    breaches: TopicT  # sla-breaches, written by the breach timer
    dead_letters: dict[str, TopicT]  # source topic name -> its dead-letter topic
    agents: TopicT | None = None  # agent-events (contract v2), read by the agent-state agent
    feedback_breaches: TopicT | None = None  # feedback-breaches (contract v2), written by the breach timer


@dataclass
class Worker:
    """Everything the worker is made of, so tests and the CLI can build one from settings."""

    settings: Settings
    app: faust.App
    live: LiveKpis
    liveness: Liveness  # consumer stall and broker reachability (see streams/liveness.py)
    topics: WorkerTopics
    contacts_table: TableT  # key contact_id: each contact's state (changelog: <app id>-contacts-changelog)
    customers_table: TableT  # key customer_id: each customer's FCR state
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    recovered: set[str] = field(default_factory=set)  # tables recovered since the last assignment
    breaches_loaded: bool = False  # sla-breaches (and feedback-breaches) read since the last assignment
    registry: CollectorRegistry | None = None  # prometheus_client registry of /metrics
    breach_listeners: list[BreachListener] = field(default_factory=list)  # called with each published breach's dict
    lag: dict[tuple[str, int], int] = field(default_factory=dict)  # (topic, partition) -> records not yet processed
    agents_table: TableT | None = None  # key agent_id: each agent's recent states (contract v2)
    rocksdb_budget: RocksDBBudget | None = None  # the tables' shared RocksDB memory (None on memory://)
    checkpoints: CheckpointStore | None = None  # the live state saved on a clean stop (None: worker.checkpoint off)
    writers: dict[str, Any] = field(default_factory=dict)  # side -> its table's BulkTableWriter
    recovered_offsets: dict[str, Offsets] = field(default_factory=dict)  # side -> changelog offsets at recovery
    # side (contacts, customers) -> the keys its table stored since its last checkpoint (streams/touch_log.py); empty:
    # no checkpoints while running
    touch_logs: dict[str, TouchLog] = field(default_factory=dict)
    checkpoint_every: float = 0.0  # seconds between checkpoints of each logged side while running (0: none)
    next_checkpoint_at: dict[str, float] = field(default_factory=dict)  # side -> time.monotonic() of its next one
    checkpoint_saved_at: dict[str, float] = field(default_factory=dict)  # side -> time.time() of its last (/metrics)
    # side -> keys of its changelog records Faust's recovery applied since the last assignment, by partition
    recovery_keys: dict[str, dict[int, set[bytes]]] = field(default_factory=dict)
    # sides with more than RECOVERY_KEYS_MAX of them: a whole table restored, not a tail
    recovery_keys_overflow: set[str] = field(default_factory=set)
    # held while breaches are marked published in memory but not yet handed to the producer: a checkpoint taken then
    # would hold a mark of a breach a kill -9 loses
    publishing: asyncio.Lock = field(default_factory=asyncio.Lock)

    def table_of(self, side: str) -> TableT | None:
        """The table that stores ``side`` (contacts, customers or agents)."""
        return {"contacts": self.contacts_table, "customers": self.customers_table, "agents": self.agents_table}[side]

    def live_problems(self) -> list[str]:
        """Why this worker cannot be trusted to be current, for /readyz (empty: fine)."""
        return self.liveness.problems()

    def is_ready(self) -> bool:
        """State recovered and the breach log read: what the HTTP API, the sinks and the timers wait for."""
        return self.ready.is_set()


def stop_now(why: str, code: int = 70) -> None:
    """Stop the process at once, without acknowledging the batch in hand.

    Why ``os._exit``: Faust's ``take_events`` acknowledges a batch in a ``finally`` even when the agent raises,
    and would then commit offsets past events whose state was never stored. Exiting before that ``finally``
    runs leaves those offsets uncommitted; the restarted worker reads the events again (duplicates of what was
    stored are dropped by event id)."""
    log.critical("stopping the worker: %s", why)
    logging.shutdown()
    os._exit(code)
