"""Start a Faust worker for a :class:`~cxpulse.streams.worker.Worker` (used by ``cxpulse worker``)."""

from __future__ import annotations

import logging
from pathlib import Path

import asyncio

from cxpulse.kafka_io import ensure_topics
from cxpulse.kafka_security import client_options
from cxpulse.settings import Settings
from cxpulse.streams.partition_check import check_partitions


MAX_RECORD_BYTES = 8 * 1024 * 1024  # dead letters and changelogs; the worker's producer allows as much


def worker_topics(settings: Settings) -> list[str]:
    """Every topic the worker reads or writes, created up front with the configured partition count.

    Why: Faust subscribes before it creates its internal topics, and an agent whose topic is missing at
    subscription time is silently left without input; auto-created topics get the broker's partition count.
    """
    t = settings.kafka.topics
    return [
        t.contact_events, t.survey_responses, t.contact_events_dlq, t.survey_responses_dlq, t.sla_breaches,
        f"{settings.worker.app_id}-fcr-summaries", t.agent_events, t.agent_events_dlq, t.feedback_breaches,
    ]


def changelog_topics(settings: Settings) -> list[str]:
    """Faust's changelog topics of our tables (named ``<app id>-<table>-changelog``)."""
    return [f"{settings.worker.app_id}-{table}-changelog" for table in ("contacts", "customers", "agents")]


async def prepare_topics(settings: Settings) -> None:
    """Create the worker's topics and the tables' changelogs (compacted, as Faust makes them) if missing."""
    kafka = settings.kafka
    options = client_options(kafka)
    t = kafka.topics
    big = {"max.message.bytes": str(MAX_RECORD_BYTES)}
    dead_letters = [t.contact_events_dlq, t.survey_responses_dlq, t.agent_events_dlq]
    breach_logs = [t.sla_breaches, t.feedback_breaches]
    others = [name for name in worker_topics(settings) if name not in (*breach_logs, *dead_letters)]
    await ensure_topics(kafka.bootstrap_servers, others, partitions=kafka.partitions,
                        replication_factor=kafka.replication_factor, client_options=options)
    # a dead letter carries the original record (up to the broker's own limit, 1 MB by default) plus headers,
    # and a contact's stored state may carry a few such records until they settle: both need more room
    await ensure_topics(kafka.bootstrap_servers, dead_letters, partitions=kafka.partitions,
                        replication_factor=kafka.replication_factor, configs=big, client_options=options)
    # a breach log must remember at least as long as contacts are remembered, or a restart would offer
    # a breach again whose record has expired (a feedback breach comes at survey ts + target, and the survey
    # is forgotten with its contact, so the same retention covers it)
    retention_ms = (settings.kpi.contact_retention + 86400) * 1000
    await ensure_topics(kafka.bootstrap_servers, breach_logs, partitions=kafka.partitions,
                        replication_factor=kafka.replication_factor, configs={"retention.ms": str(retention_ms)},
                        client_options=options)
    await ensure_topics(kafka.bootstrap_servers, changelog_topics(settings), partitions=kafka.partitions,
                        replication_factor=kafka.replication_factor, configs={"cleanup.policy": "compact", **big},
                        client_options=options)


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    import faust

    from cxpulse.streams.app import create_worker

    Path(settings.worker.data_dir).mkdir(parents=True, exist_ok=True)
    asyncio.run(prepare_topics(settings))
    # source topics made elsewhere may have another partition count: refuse before any state is touched
    asyncio.run(check_partitions(settings.kafka, [*worker_topics(settings), *changelog_topics(settings)]))
    built = create_worker(settings)
    # Faust is chatty at INFO about its own internals (WARNING unless worker.framework_log_level says otherwise);
    # our own logger keeps the chosen level
    framework = max(logging.getLevelName(settings.worker.framework_log_level), logging.getLevelName(loglevel.upper()))
    for noisy in ("faust", "aiokafka", "mode"):
        logging.getLogger(noisy).setLevel(framework)
    faust.Worker(built.app, loglevel=loglevel, quiet=True).execute_from_commandline()
