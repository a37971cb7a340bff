"""Erlang C is right, and the simulator agrees with it where queueing theory applies (M/M/c).

Tolerance of the agreement test, and why: the waits of successive contacts are strongly correlated (a busy
spell delays many in a row), so the simulation's error is estimated by **batch means**: after a warm-up of
2,000 contacts (the centre starts empty, which biases early waits down), the remaining ~98,000 contacts are
cut, in arrival order, into 20 batches of ~4,900; each batch is much longer than the queue's relaxation time
(tens to hundreds of contacts at 73-75% occupancy), so batch SL and ASA are nearly independent, and their
standard deviation / sqrt(20) is the standard error (SE) of the run's SL and ASA. The test asserts
``|sim - Erlang C| <= 4 SE``: a correct simulator fails that with probability well under 0.1% (4 sigma,
a little more with 19 degrees of freedom), while a real bias of that size is caught. Observed SE: about
0.006-0.008 for SL (so SL must agree within ~0.03) and 5-8% of ASA (ASA within ~25%: mean waits are
heavy-tailed and far noisier than the fraction answered in time, which is why SL is the sharp check here).
So that the bound cannot be met by a *noisy* simulator, the SE itself is capped: 0.01 for SL, 10% of the
Erlang ASA. Seeds are fixed, so the test is deterministic anyway. Timestamps have millisecond resolution:
a bias under 1 ms per wait, negligible against the SE. Each case simulates 100k contacts (~1-2 s CPU).
"""

from __future__ import annotations

import math
import statistics
from fractions import Fraction

import pytest

from cxpulse.simulator.centre import parse_centre
from cxpulse.simulator.engine import Simulation
from cxpulse.simulator.erlang import (
    agents_for_service_level,
    average_speed_of_answer,
    erlang_b,
    erlang_c,
    service_level,
)

WARM_UP = 2_000
CONTACTS = 100_000
BATCHES = 20


def _exact_erlang_c(servers: int, load: Fraction) -> Fraction:
    """The textbook formula with exact rationals, as the reference for the stable recursion."""
    top = load**servers / math.factorial(servers) * servers / (servers - load)
    bottom = sum(load**k / math.factorial(k) for k in range(servers)) + top
    return top / bottom


def test_known_values() -> None:
    assert erlang_b(3, 2) == pytest.approx(4 / 19)  # (8/6) / (1 + 2 + 2 + 8/6)
    assert erlang_c(3, 2) == pytest.approx(4 / 9)
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = rho
    assert average_speed_of_answer(0.5, 1.0, 1) == pytest.approx(1.0)  # M/M/1: rho / (mu - lambda)
    for servers, load in [(10, Fraction(8)), (25, Fraction(22)), (60, Fraction(111, 2))]:
        assert erlang_c(servers, float(load)) == pytest.approx(float(_exact_erlang_c(servers, load)), rel=1e-12)


def test_large_centres_do_not_overflow() -> None:
    value = erlang_c(2000, 1950.0)
    assert 0 < value < 1
    assert service_level(1950 / 300, 1 / 300, 2000, 20) == pytest.approx(1 - value * math.exp(-50 / 300 * 20))


def test_edge_cases() -> None:
    assert erlang_c(5, 5.0) == 1.0 and service_level(1.0, 0.2, 5, 20) == 0.0
    assert math.isinf(average_speed_of_answer(1.0, 0.2, 5))
    assert service_level(0.0, 1.0, 3, 20) == 1.0
    with pytest.raises(ValueError, match=r"^servers must be >= 1, got 0$"):
        erlang_c(0, 1.0)


def test_staffing_is_the_smallest_that_meets_the_target() -> None:
    lam, mu, threshold = 240 / 3600, 1 / 330, 20
    agents = agents_for_service_level(lam, mu, threshold, 0.8)
    assert service_level(lam, mu, agents, threshold) >= 0.8 > service_level(lam, mu, agents - 1, threshold)


def _mmc_centre(arrival_rate: float, handle_seconds: float, agents: int) -> dict[str, object]:
    """One voice queue, exponential talk, nothing else: no hold, wrap, abandons, transfers, repeats, surveys."""
    return {
        "name": "M/M/c",
        "surveys": {"response_probability": 0},
        "queues": {
            "erlang": {
                "channel": "voice",
                "arrivals_per_hour": arrival_rate * 3600,
                "agents": agents,
                "talk": {"dist": "exponential", "mean": handle_seconds},
            }
        },
    }


def _waits_in_arrival_order(arrival_rate: float, handle_seconds: float, agents: int, seed: int) -> list[float]:
    centre = parse_centre(_mmc_centre(arrival_rate, handle_seconds, agents))
    sim = Simulation(centre, start_ms=1_700_000_000_000, seed=seed)
    queued: dict[str, int] = {}
    waits: dict[str, float] = {}
    for record in sim.events():
        event = record.event
        assert isinstance(event, dict)
        if event["type"] == "contact.queued":
            if len(queued) == CONTACTS:
                break
            queued[event["contact_id"]] = record.at_ms
        elif event["type"] == "contact.answered":
            waits[event["contact_id"]] = (record.at_ms - queued[event["contact_id"]]) / 1000.0
        else:
            assert event["type"] == "contact.ended" and not event["transferred"]
    # contacts still waiting at the cut-off are the last few; keep the answered prefix in arrival order
    ordered = [waits.get(contact_id) for contact_id in queued]
    answered = ordered[: ordered.index(None)] if None in ordered else ordered
    assert len(answered) > CONTACTS * 0.99
    return [w for w in answered if w is not None]


@pytest.mark.parametrize(
    ("arrival_rate", "handle_seconds", "agents", "threshold", "seed"),
    [
        (1.0, 8.0, 11, 1.0, 1),  # short contacts: 8 Erlangs on 11 agents
        (1 / 20, 180.0, 12, 15.0, 2),  # a voice queue: 3 calls a minute, 3 min AHT, 9 Erlangs on 12 agents
    ],
)
def test_simulated_queue_agrees_with_erlang_c(
    arrival_rate: float, handle_seconds: float, agents: int, threshold: float, seed: int
) -> None:
    waits = _waits_in_arrival_order(arrival_rate, handle_seconds, agents, seed)[WARM_UP:]
    size = len(waits) // BATCHES
    batches = [waits[i * size : (i + 1) * size] for i in range(BATCHES)]
    sl_batches = [sum(w <= threshold for w in batch) / len(batch) for batch in batches]
    asa_batches = [statistics.fmean(batch) for batch in batches]

    sl_sim, asa_sim = statistics.fmean(sl_batches), statistics.fmean(asa_batches)
    sl_se = statistics.stdev(sl_batches) / math.sqrt(BATCHES)
    asa_se = statistics.stdev(asa_batches) / math.sqrt(BATCHES)
    sl_theory = service_level(arrival_rate, 1 / handle_seconds, agents, threshold)
    asa_theory = average_speed_of_answer(arrival_rate, 1 / handle_seconds, agents)

    report = f"SL sim {sl_sim:.4f} vs {sl_theory:.4f} (SE {sl_se:.4f}); ASA sim {asa_sim:.3f} vs {asa_theory:.3f} (SE {asa_se:.3f})"
    assert sl_se <= 0.01 and asa_se <= 0.10 * asa_theory, f"run too noisy to be a test: {report}"
    assert abs(sl_sim - sl_theory) <= 4 * sl_se, report
    assert abs(asa_sim - asa_theory) <= 4 * asa_se, report
