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
