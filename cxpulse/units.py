"""Units shared by every layer: the one place where a second is spelled in microseconds.

Why a module of its own, with no imports: event time, windows, settings, the core and the worker all count in
integer microseconds, and each of them may import this without pulling in anything else (no import circle).
"""

from __future__ import annotations

from typing import Final

US_PER_SECOND: Final = 1_000_000  # microseconds per second: every ``*_us`` value is an integer count of these
