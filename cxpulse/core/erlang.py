"""Erlang C (M/M/c): what queueing theory says a queue's service level and ASA should be.

Why it lives in the core: the live KPI ``agents_required`` (kpis.md, "Staffing (v2)") is this formula applied
to each queue's live arrival rate and AHT, and the core imports nothing of the simulator. The simulator uses it
too (:mod:`cxpulse.simulator.erlang` re-exports it): it is the yardstick the simulator is tested against (with
exponential handle times and no abandons, a simulated queue must reproduce these figures), and the planner's
formula a workforce-management team uses to size a queue.

Numerics: the textbook form ``a**c / c!`` overflows for a few hundred agents; the Erlang B recursion
``B(k) = a B(k-1) / (k + a B(k-1))`` stays in [0, 1] for any size, and Erlang C follows from B.
"""

from __future__ import annotations

import math

__all__ = [
    "erlang_b",
    "erlang_c",
    "service_level",
    "average_speed_of_answer",
    "agents_for_service_level",
]


def erlang_b(servers: int, load: float) -> float:
    """Blocking probability of an M/M/c/c system with ``servers`` agents and ``load`` Erlangs offered."""
    if servers < 0:
        raise ValueError(f"servers must be >= 0, got {servers}")
    if load < 0 or not math.isfinite(load):
        raise ValueError(f"load must be a finite number >= 0, got {load}")
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = load * blocking / (k + load * blocking)
    return blocking


def erlang_c(servers: int, load: float) -> float:
    """Probability that a contact has to wait (all ``servers`` busy) in M/M/c with ``load`` Erlangs.

    The queue is only stable when ``load < servers``; otherwise every contact waits (returns 1.0).
    """
    if servers < 1:
        raise ValueError(f"servers must be >= 1, got {servers}")
    if load >= servers:
        return 1.0
    blocking = erlang_b(servers, load)
    return servers * blocking / (servers - load * (1.0 - blocking))


def _load(arrival_rate: float, service_rate: float) -> float:
    if arrival_rate < 0 or service_rate <= 0:
        raise ValueError(f"need arrival_rate >= 0 and service_rate > 0, got {arrival_rate}, {service_rate}")
    return arrival_rate / service_rate


def service_level(arrival_rate: float, service_rate: float, servers: int, threshold: float) -> float:
    """Fraction of contacts answered within ``threshold`` seconds: ``1 - C exp(-(c mu - lambda) T)``.

    Rates are per second (``service_rate`` = 1 / average handle time). An unstable queue gives 0.
    """
    load = _load(arrival_rate, service_rate)
    if load >= servers:
        return 0.0
    wait_probability = erlang_c(servers, load)
    return 1.0 - wait_probability * math.exp(-(servers * service_rate - arrival_rate) * threshold)


def average_speed_of_answer(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Mean wait of all contacts, in seconds: ``C / (c mu - lambda)``; infinite for an unstable queue."""
    load = _load(arrival_rate, service_rate)
    if load >= servers:
        return math.inf
    return erlang_c(servers, load) / (servers * service_rate - arrival_rate)


def agents_for_service_level(
    arrival_rate: float, service_rate: float, threshold: float, target: float = 0.80, max_agents: int = 1_000_000
) -> int:
    """The fewest agents whose Erlang C service level reaches ``target`` (the planner's staffing question)."""
    if not 0 < target < 1:
        raise ValueError(f"target must be in (0, 1), got {target}")
    servers = math.floor(_load(arrival_rate, service_rate)) + 1  # the load is >= 0: at least 1
    while service_level(arrival_rate, service_rate, servers, threshold) < target:
        servers += 1
        if servers > max_agents:
            raise ValueError(f"no staffing up to {max_agents} agents reaches service level {target}")
    return servers
