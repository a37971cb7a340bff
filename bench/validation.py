"""Contract validation speed: the pydantic models (``cxpulse.models.events``) against the msgspec decoder
(``cxpulse.models.wire``), over the same simulator events, in one run.

Both sides get the encoded bytes of each record of its topic, exactly as the worker would: pydantic with
``parse_contact_event`` / ``parse_survey_response``, msgspec with ``decode_contact_event`` /
``decode_survey_response``. The two are run in alternating rounds and the best round of each counts (the
machine is shared; the best round is the least disturbed one). Reported per side: events/s by wall clock
and by this process's CPU time, and the ratio msgspec / pydantic.

A second line does the same for events that carry one field the contract does not know (forward
compatibility): the msgspec decoder then takes its second road (orjson, then msgspec on the contract's keys).
No assertions: this prints figures.

Usage::

    .venv/bin/python bench/validation.py [--hours 6] [--rounds 7] [--seed 3]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import orjson

from cxpulse.models.events import parse_contact_event, parse_survey_response
from cxpulse.models.wire import decode_contact_event, decode_survey_response, disagreements
from cxpulse.simulator.centre import load_centre
from cxpulse.simulator.engine import Simulation
from cxpulse.simulator.events import SURVEY_TOPIC
from cxpulse.simulator.writers import encode

START_MS = int(datetime(2026, 11, 23, 6, 0, tzinfo=timezone.utc).timestamp() * 1000)  # a Monday, 06:00 UTC

Batch = Sequence[tuple[bool, bytes]]  # (is a survey, the record's bytes)


def simulated(hours: float, seed: int) -> list[tuple[bool, bytes]]:
    """The records of the shipped centre for ``hours`` of event time, encoded as on the wire."""
    sim = Simulation(load_centre(), start_ms=START_MS, seed=seed)
    return [(r.topic == SURVEY_TOPIC, encode(r)) for r in sim.events(START_MS + int(hours * 3_600_000))]


def with_unknown_field(batch: Batch) -> list[tuple[bool, bytes]]:
    """The same records with one field the contract does not define (``"tenant"``, a small object)."""
    out = []
    for survey, raw in batch:
        obj = orjson.loads(raw)
        obj["tenant"] = {"id": "t-42", "region": "eu-west"}
        out.append((survey, orjson.dumps(obj)))
    return out


def one_round(batch: Batch, contact: Callable[[bytes], Any], survey: Callable[[bytes], Any]) -> tuple[float, float]:
    """Wall and CPU seconds to validate every record once."""
    wall, cpu = time.perf_counter(), time.process_time()
    for is_survey, raw in batch:
        (survey if is_survey else contact)(raw)
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(batch: Batch, rounds: int) -> dict[str, tuple[float, float]]:
    """Best (wall, CPU) seconds of each side over alternating rounds."""
    sides = {
        "pydantic": (parse_contact_event, parse_survey_response),
        "msgspec": (decode_contact_event, decode_survey_response),
    }
    best = {name: (float("inf"), float("inf")) for name in sides}
    for _ in range(rounds):
        for name, (contact, survey) in sides.items():
            wall, cpu = one_round(batch, contact, survey)
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return best


def report(label: str, batch: Batch, best: dict[str, tuple[float, float]]) -> None:
    """One block of figures: events/s of each side (wall, CPU) and the ratio."""
    n = len(batch)
    p_wall, p_cpu = best["pydantic"]
    m_wall, m_cpu = best["msgspec"]
    print(f"{label}: {n:,} events")
    print(f"  pydantic  {n / p_wall:>10,.0f} events/s wall   {n / p_cpu:>10,.0f} events/s cpu")
    print(f"  msgspec   {n / m_wall:>10,.0f} events/s wall   {n / m_cpu:>10,.0f} events/s cpu")
    print(f"  ratio     {p_wall / m_wall:>10.2f}x wall          {p_cpu / m_cpu:>10.2f}x cpu   (msgspec / pydantic)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=6.0, help="simulated hours of the shipped centre")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per side (best counts)")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    batch = simulated(args.hours, args.seed)
    report("simulator events", batch, measure(batch, args.rounds))
    extra = with_unknown_field(batch)
    report("same events + one unknown field", extra, measure(extra, args.rounds))
    print(f"disagreements (msgspec refused, pydantic accepted): {disagreements()}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
