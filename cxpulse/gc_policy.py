"""How Python's cyclic garbage collector runs in cxpulse's long-lived, state-heavy processes.

Why: the worker and ``cxpulse replay`` hold hundreds of thousands of container objects (contacts, buckets, the
index of distinct customers) and allocate many short-lived ones per event (Faust's messages, parsed events,
facts). With CPython's default thresholds (700, 10, 10) a young collection runs every 700 allocations and a
full one, which walks the whole state, every time the old generation grows by a quarter: a tenth of a replay's
CPU time (measured: a simulated day, 16.1-16.4 s user CPU with the defaults, 14.1-14.8 s with these). The state
holds no reference cycles (plain dicts, lists, tuples and slotted objects, freed by reference counting), so
collecting less often only lets the rare cyclic garbage of the libraries wait a little longer.

After a recovery the worker also moves what it rebuilt into the permanent generation (:func:`freeze_state`):
no collection walks a month of contacts again; the objects are still freed by reference counting.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG = 50_000  # allocations between young collections (default 700)
MIDDLE = 20  # young collections between middle ones (default 10)
OLD = 100  # middle collections between full ones (default 10; CPython also waits for 25% growth)


def tune_for_long_runs() -> None:
    """Collect less often (see the module docstring); call once at the start of the worker or a replay."""
    gc.set_threshold(YOUNG, MIDDLE, OLD)


def freeze_state() -> None:
    """Move every object alive now into the permanent generation (``gc.freeze``): call when a large state was just
    built (a recovery), so full collections stop walking it."""
    gc.freeze()


@contextmanager
def paused() -> Iterator[None]:
    """No automatic collection inside (a replay's feed); the collector's state before is restored after.

    Why a replay may do without: it creates no cyclic garbage to speak of. Measured with the collector off: a
    collection at the end of a simulated day (300k events) found 1,049 objects, of a file of 20,000 invalid events
    94, both what the imports leave. What the young collections cost instead grows with what a replay keeps as
    objects: each walked every object created since the last one that was still alive (150k at a time, the
    contacts and customers kept in memory among them), 8 ms at first and 80 ms late in the day, 6% of the
    replay's time (docs/performance.md, session 17). The worker keeps collecting: it runs for months, with
    Faust, aiokafka and aiohttp, whose garbage is not measured here. A split replay's processes are forked
    inside, so they inherit the pause. Memory is the same either way: a week's peak RSS 220 MiB in one process
    with and without; the three processes of ``--jobs 2``, alternated, 405-462 MiB paused, 413-439 MiB not (the
    spread of a polled peak).

    On the way out, what was built meanwhile moves to the permanent generation (:func:`freeze_state`) before the
    collector is on again: otherwise the first young collection walked all of it at once (0.3 s after a week)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was:
            gc.enable()
