"""Simulating in child processes changes where records are computed, never which records or their order."""

from __future__ import annotations

from cxpulse.simulator.centre import load_centre
from cxpulse.simulator.engine import Simulation
from cxpulse.simulator.feed import ProcessFeed
from cxpulse.simulator.load import sharded_simulations, slice_ms_for
from cxpulse.simulator.writers import WireRecord, wire_chunks

START_MS = 1_795_400_000_000
UNTIL_MS = START_MS + 2 * 3600 * 1000


def _flatten(chunks: object) -> list[WireRecord]:
    return [record for chunk in chunks for record in chunk]  # type: ignore[attr-defined]


def test_one_child_gives_the_same_records_as_this_process() -> None:
    local = _flatten(wire_chunks(Simulation(load_centre(), start_ms=START_MS, seed=4, invalid_rate=0.02).events(UNTIL_MS)))
    sim = Simulation(load_centre(), start_ms=START_MS, seed=4, invalid_rate=0.02)
    feed = ProcessFeed([lambda: sim.events(UNTIL_MS)]).start()
    try:
        assert _flatten(feed.sync_chunks()) == local
    finally:
        feed.close()


def _sharded(seed: int) -> list[WireRecord]:
    sims = sharded_simulations(load_centre(), scale=6.0, shards=3, seed=seed, start_ms=START_MS)
    feed = ProcessFeed(
        [lambda sim=sim: sim.events(UNTIL_MS) for sim in sims],
        slice_ms=slice_ms_for(200.0, 60.0, 3, records_per_slice=64),
        start_ms=START_MS,
    ).start()
    try:
        return _flatten(feed.sync_chunks())
    finally:
        feed.close()


def test_shards_merge_in_event_time_order_deterministically() -> None:
    first, again = _sharded(9), _sharded(9)
    assert first == again
    times = [record[0] for record in first]
    assert times == sorted(times)
    # three sites, each with its own ids; together about six times the file's centre
    tags = {record[3][13:21] for record in first if record[3].startswith(b'{"event_id":"')}
    assert len(tags) == 3
    single = sum(1 for _ in Simulation(load_centre(), start_ms=START_MS, seed=9, flat_profile=True).events(UNTIL_MS))
    assert 5 * single < len(first) < 7 * single
