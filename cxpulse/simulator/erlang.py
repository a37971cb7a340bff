"""Erlang C for the simulator: the formula lives in :mod:`cxpulse.core.erlang` (the live staffing KPI uses it
and the core imports nothing of the simulator); this module keeps the simulator's and the tests' imports."""

from __future__ import annotations

from cxpulse.core.erlang import (
    agents_for_service_level,
    average_speed_of_answer,
    erlang_b,
    erlang_c,
    service_level,
)

__all__ = [
    "erlang_b",
    "erlang_c",
    "service_level",
    "average_speed_of_answer",
    "agents_for_service_level",
]
