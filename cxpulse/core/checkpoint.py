"""A side of the live state (every partition's processor and aggregates) as bytes, and back.

Why: rebuilding the counts from the stored contacts walks every contact the tables hold (a week: 465k contacts,
80 s and 2.6 GB, measured), although a cleanly stopped worker had all of it in memory a moment before. A
worker that stops cleanly writes what it holds (:mod:`cxpulse.streams.checkpoint` decides when it is still
valid), and the next start reads it back instead of walking the tables: the restored objects are exactly the
ones the worker held, so every figure, pending breach and timer carries on as if it had never stopped.

What is *not* in it: what the new process supplies itself (the settings, the queue-settings cache, the loader
of evicted contacts, the observer of facts). Pickle, because the state is plain dicts, lists, tuples and
slotted objects of this package, and pickle reads them back an order of magnitude faster than a rebuild
(protocol 5); the bytes never leave the worker's own data directory, which is trusted like its RocksDB files.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, BinaryIO

from cxpulse.core.aggregates import Aggregates
from cxpulse.core.attributes import own_attributes

FORMAT = 1  # bumped when what is saved changes shape

# attributes a new process supplies itself (the settings, what is resolved from them, the loader of evicted contacts)
_SUPPLIED = frozenset({"kpi", "queue_settings", "_settings_cache", "loader"})


def processor_state(processor: Any) -> dict[str, Any]:
    """A processor's own attributes, its aggregates as theirs (without the observer)."""
    state: dict[str, Any] = {}
    for name, value in own_attributes(processor).items():
        if name in _SUPPLIED:
            continue
        if isinstance(value, Aggregates):
            value = {slot: saved for slot, saved in own_attributes(value).items() if slot != "observer"}
        state[name] = value
    return state


def load_processor(processor: Any, state: dict[str, Any]) -> None:
    """Put ``state`` (:func:`processor_state`) into a processor just built for the same settings: its aggregates
    keep their observer, everything else is the saved state."""
    for name, value in state.items():
        if name == "aggregates":  # what processor_state took of them, set as pickle sets a pickled one's
            processor.aggregates.__setstate__(value)
            continue
        setattr(processor, name, value)


def dumps(parts: dict[int, Any], extra: Any = None) -> bytes:
    """Every partition's processor of one side (``{partition: processor}``) and ``extra`` (e.g. the observer's
    sums), in one pickle: objects the processors share with their aggregates (the open visits, the awaiting
    feedback, the index of distinct customers) stay shared when read back."""
    buffer = io.BytesIO()
    dump(parts, extra, buffer)
    return buffer.getvalue()


def dump(parts: dict[int, Any], extra: Any, file: BinaryIO) -> None:
    """:func:`dumps` written to ``file`` as it goes (the same bytes).

    Why: the worker's checkpoints while it runs. As one bytes object the contact side's pickle of a week's state
    (tens of MiB) was held whole next to the state while the file was written, once a minute, and set the worker's
    peak RSS; pickle writes each 64 KiB frame to the file as it completes."""
    saved = {partition: processor_state(proc) for partition, proc in parts.items()}
    pickle.dump((FORMAT, saved, extra), file, protocol=5)


def loads(data: bytes) -> tuple[dict[int, dict[str, Any]], Any]:
    """``({partition: state}, extra)`` of :func:`dumps`; ValueError for another format."""
    found, saved, extra = pickle.loads(data)
    if found != FORMAT:
        raise ValueError(f"checkpoint format {found}, this version reads {FORMAT}")
    return saved, extra
