"""The worker's recovery callbacks (``cxpulse/streams/recovery.py``): a rebuild that raises stops the worker.

Faust runs the tables' recovery callbacks with ``asyncio.wait``, which keeps their exceptions: before, a rebuild
that raised left the worker alive, consuming, never ready and silent. ``stop_now`` exits the process, so it is
replaced here by a recorder that raises (as the exit would end the callback there)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cxpulse.settings import Settings
from cxpulse.streams import recovery as worker_recovery
from cxpulse.streams.app import create_worker


class Stopped(Exception):
    """Raised by the stand-in for ``stop_now``: the process would have exited here."""


@pytest.fixture
def worker(tmp_path: Path) -> Any:
    settings = Settings.model_validate({"worker": {"store": "memory://", "data_dir": str(tmp_path),
                                                   "checkpoint": False}})
    return create_worker(settings)


@pytest.fixture
def stops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reasons: list[str] = []

    def stop_now(why: str, code: int = 70) -> None:
        reasons.append(why)
        raise Stopped(why)

    monkeypatch.setattr(worker_recovery, "stop_now", stop_now)
    return reasons


def broken_items() -> Any:
    raise OSError("IO error: No space left on device")


async def test_a_rebuild_that_raises_stops_the_worker_with_its_side_and_reason(worker: Any, stops: list[str],
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    recovery = worker_recovery.Recovery(worker)
    monkeypatch.setattr(recovery, "assigned", lambda topic: {0, 1})
    monkeypatch.setattr(worker.contacts_table, "items", broken_items)
    with pytest.raises(Stopped):
        await recovery.contacts_recovered()
    assert stops == ["the contacts could not be rebuilt from the recovered table (OSError)"]
    assert "contacts" not in worker.recovered and not worker.ready.is_set()


async def test_a_rebuild_that_works_marks_its_side_recovered_and_the_worker_ready(
        worker: Any, stops: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The same path without the failure: every side recovered and the breach log read make the worker ready."""
    recovery = worker_recovery.Recovery(worker)
    monkeypatch.setattr(recovery, "assigned", lambda topic: {0, 1})
    worker.breaches_loaded = True
    await recovery.contacts_recovered()
    await recovery.customers_recovered()
    assert not worker.ready.is_set()  # the agents side is not recovered yet
    await recovery.agents_recovered()
    assert stops == []
    assert worker.recovered == {"contacts", "customers", "agents"} and worker.ready.is_set()
    assert set(worker.live.contact_parts) == {0, 1}


def test_the_changelog_keys_faust_recovers_are_noted_until_ready_and_up_to_a_cap(
        worker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A start from a checkpoint and its log must find every changelog record Faust's recovery applied in the log:
    the keys are noted for the partitions the worker owns (not standbys'), only while it recovers, and past a cap
    (a whole table restored, not a tail) noting stops and says so."""
    from types import SimpleNamespace

    from faust.types import TP

    recovery = worker_recovery.Recovery(worker)
    table = worker.contacts_table
    topic = table.changelog_topic.get_topic_name()
    monkeypatch.setattr(worker.app.assignor, "assigned_actives", lambda: {TP(topic, 0), TP(topic, 1)})
    applied: list[list[Any]] = []
    monkeypatch.setattr(table, "apply_changelog_batch", lambda batch: applied.append(list(batch)))
    recovery.observe_recovery("contacts")

    def record(partition: int, key: bytes) -> Any:
        return SimpleNamespace(message=SimpleNamespace(partition=partition, key=key))

    table.apply_changelog_batch([record(0, b"a"), record(1, b"b"), record(5, b"a standby's")])
    assert worker.recovery_keys == {"contacts": {0: {b"a"}, 1: {b"b"}}} and len(applied) == 1 and len(applied[0]) == 3
    worker.ready.set()
    table.apply_changelog_batch([record(0, b"after ready")])
    assert worker.recovery_keys == {"contacts": {0: {b"a"}, 1: {b"b"}}} and len(applied) == 2
    worker.ready.clear()
    monkeypatch.setattr(worker_recovery, "RECOVERY_KEYS_MAX", 2)
    table.apply_changelog_batch([record(0, b"c")])
    assert worker.recovery_keys_overflow == {"contacts"} and worker.recovery_keys == {} and len(applied) == 3
    table.apply_changelog_batch([record(0, b"d")])
    assert worker.recovery_keys == {}  # no more noting once over the cap
