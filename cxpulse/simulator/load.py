"""Load mode: how much bigger the centre must be for the simulator to emit N events per second.

Why scale the centre (arrivals *and* agents by the same factor) instead of only arrivals: more arrivals
on the same staff would drown every queue in abandons, which is a different load shape than a busy
centre. Why calibrate by a short dry run instead of a formula: events per contact depend on abandons,
transfers, repeats and surveys, which the simulation knows better than any closed form.
"""

from __future__ import annotations

import hashlib

from cxpulse.simulator.centre import Centre
from cxpulse.simulator.engine import Simulation

# The empty centre fills within ~15 simulated minutes (waits, handle times, survey delays); repeat contacts
# keep adding a few percent over the next hours. Calibrating on minutes 15-75 matches what a load test at
# speed 60 sees in its first wall-clock minute after a ~15 s ramp; later the rate drifts ~5% above.
_WARM_UP_MS = 15 * 60 * 1000
_SAMPLE_MS = 60 * 60 * 1000
_CALIBRATION_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: any fixed instant, the profile is flat


def events_per_simulated_second(centre: Centre, seed: int = 0) -> float:
    """Steady-state events per simulated second of the centre as written (flat hour profile)."""
    sim = Simulation(centre, start_ms=_CALIBRATION_START_MS, seed=seed, flat_profile=True)
    begin = _CALIBRATION_START_MS + _WARM_UP_MS
    count = sum(1 for record in sim.events(begin + _SAMPLE_MS) if record.at_ms >= begin)
    return count / (_SAMPLE_MS / 1000.0)


def scale_for_rate(centre: Centre, events_per_second: float, speed: float, seed: int = 0) -> float:
    """The factor for arrivals and agents so that, at ``speed``, about ``events_per_second`` are emitted."""
    if events_per_second <= 0:
        raise ValueError(f"rate must be > 0, got {events_per_second}")
    if speed <= 0:
        raise ValueError("load mode needs a pace: a speed > 0 (not --fast)")
    base = events_per_simulated_second(centre, seed)
    if base <= 0:
        raise ValueError("the centre produces no events (all arrival rates are 0?)")
    return events_per_second / (speed * base)


def shard_seed(seed: int, shard: int) -> int:
    """Each site of a sharded centre gets its own seed (and so its own ids), derived from the run's seed."""
    return int.from_bytes(hashlib.blake2b(f"{seed}/{shard}".encode(), digest_size=8).digest(), "big")


def sharded_simulations(
    centre: Centre, *, scale: float, shards: int, seed: int, start_ms: int, invalid_rate: float = 0.0
) -> list[Simulation]:
    """The load-mode centre as ``shards`` identical sites, each ``scale / shards`` times the file's centre.

    Statistically the same load as one centre scaled by ``scale`` (at hundreds of agents per queue, pooling
    them in one site or a few changes waits negligibly), but each site can run on its own core.
    """
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    return [
        Simulation(
            centre,
            start_ms=start_ms,
            seed=seed if shards == 1 else shard_seed(seed, index),
            arrival_scale=scale / shards,
            agent_scale=scale / shards,
            flat_profile=True,
            invalid_rate=invalid_rate,
        )
        for index in range(shards)
    ]


def slice_ms_for(events_per_second: float, speed: float, shards: int, records_per_slice: int = 2048) -> int:
    """Simulated time per merge slice so each shard sends about ``records_per_slice`` records per message."""
    events_per_ms = events_per_second / speed / 1000.0
    return int(min(60_000, max(50, records_per_slice * shards / max(events_per_ms, 1e-9))))
