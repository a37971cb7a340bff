"""Erlang C for the simulator: the formula lives in :mod:`cxpulse.core.erlang` (the live staffing KPI uses it
and the core imports nothing of the simulator); this module keeps the simulator's and the tests' imports by
re-exporting the core's public names (its ``__all__``), so there is nothing here to keep in step."""

from __future__ import annotations

from cxpulse.core.erlang import *  # noqa: F401,F403 - a re-export, exactly the core's __all__
from cxpulse.core.erlang import __all__  # noqa: F401
