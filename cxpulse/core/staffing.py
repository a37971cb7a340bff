"""How many agents a queue needs now, and how many it has (kpis.md, "Staffing (v2)").

Why a module of its own: the figure combines two halves of the core that otherwise never meet, the contact
side (offered in the ``15m`` window, AHT over ``1h``) and the agent side (agents serving the queue now). Both
halves only hand over counts, so the same function serves the replay, the live worker and the merge of several
workers' partials, and they all show the same number.

Definition: traffic ``A = lambda * AHT`` Erlangs with ``lambda`` = offered / window length in seconds;
``agents_required`` = the smallest whole ``N > A`` whose Erlang C service level
``1 - C(N, A) * exp(-(N - A) * T / AHT)`` is at least the queue's ``sl_target``; null when offered or AHT is
zero or unknown. ``agents_staffed`` = agents serving the queue that are available, on a contact or in wrap-up;
``gap`` = required - staffed (positive: short of agents), null when required is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cxpulse.core.erlang import erlang_c

MAX_AGENTS = 100_000
"""A search bound: a queue whose service level needs more agents than this is reported as null."""


def erlang_service_level(agents: int, traffic: float, aht_seconds: float, threshold_seconds: float) -> float:
    """``1 - C(N, A) * exp(-(N - A) * T / AHT)``: the fraction answered within T with ``agents`` agents (0 when
    the queue is unstable, N <= A)."""
    if agents <= traffic:
        return 0.0
    return 1.0 - erlang_c(agents, traffic) * math.exp(-(agents - traffic) * threshold_seconds / aht_seconds)


def agents_required(offered: int, window_seconds: float, aht_seconds: float | None, threshold_seconds: float,
                    target: float) -> int | None:
    """The smallest whole N > A meeting ``target``; None when offered or AHT is zero or unknown (or no N up to
    :data:`MAX_AGENTS` does)."""
    if offered <= 0 or window_seconds <= 0 or aht_seconds is None or aht_seconds <= 0:
        return None
    traffic = offered / window_seconds * aht_seconds
    agents = math.floor(traffic) + 1
    while erlang_service_level(agents, traffic, aht_seconds, threshold_seconds) < target:
        agents += 1
        if agents > MAX_AGENTS:
            return None
    return agents


@dataclass(frozen=True, slots=True)
class StaffingInputs:
    """What a queue's staffing figure is computed from, once every part's (partition's, worker's) counts are added.

    ``offered`` in the 15m window and its length (seconds), ``handled`` and ``handle_us`` over the 1h window, and
    the agents serving the queue now that are available, on a contact or in wrap-up (``staffed``)."""

    offered: int
    window_seconds: float
    handled: int
    handle_us: int
    staffed: int


def staffing(inputs: StaffingInputs, threshold_seconds: float, target: float) -> dict[str, Any]:
    """The document's staffing object of one queue."""
    aht = inputs.handle_us / inputs.handled / 1_000_000 if inputs.handled else None
    rate = inputs.offered / inputs.window_seconds if inputs.window_seconds > 0 else 0.0
    required = agents_required(inputs.offered, inputs.window_seconds, aht, threshold_seconds, target)
    return {
        "offered_rate_per_hour": rate * 3600,
        "aht_seconds": aht,
        "traffic_erlangs": rate * aht if aht is not None else None,
        "sl_threshold_seconds": threshold_seconds,
        "sl_target": target,
        "agents_required": required,
        "agents_staffed": inputs.staffed,
        "gap": required - inputs.staffed if required is not None else None,
    }
