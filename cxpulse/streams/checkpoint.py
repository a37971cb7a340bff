"""Checkpoints of the live state on the worker's disk: written on a clean stop, read at most once, at the next start.

Why: without one, a start rebuilds every count from every contact, customer and agent the tables hold (a
simulated week: 465k contacts, 80 s and 2.6 GB before ready, measured in docs/performance.md). A worker that
stops cleanly held exactly that state in memory a moment before; it writes it next to its RocksDB files
(:mod:`cxpulse.core.checkpoint`), one file per side (contacts, customers, agents), and the next start reads it
back in a few seconds. The same idea as Kafka Streams' ``.checkpoint`` file, and for the same reason it is used
only when it certainly describes the tables as they are now:

- the same settings and the same cxpulse code (a fingerprint of both): a changed SL threshold or a fixed rule
  must recount from the stored contacts;
- the same partitions as at the stop (the histograms' sums are over all of them);
- for each partition, the table's changelog offset after recovery equals the one the state reflected at the
  stop: nothing was written to that table since, by this worker or by another that owned the partition
  meanwhile.

Anything else rebuilds from the tables as before. The file is deleted when it is read, used or not: the state goes
on changing from there, and only the next clean stop describes it again.

The contact and customer sides, the ones a rebuild takes long for (a simulated week: 16 and 6 s of a 24 s start),
are also saved while the worker runs (``worker.checkpoint_every_seconds``, each between two of its agent's batches),
each time with a new log of the keys stored since (:mod:`cxpulse.streams.touch_log`). A start after a kill -9 reads
those checkpoints and moves the contribution of each logged key from its value at the checkpoint to its value now
(:func:`catch_up`), when the checkpoint's offsets are at or before the recovered ones and every changelog record
Faust's recovery applied is one the log names (none written by another worker, none lost with a machine crash).
That checkpoint and its log stay: the restarted worker goes on logging in the same era until the next checkpoint.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from faust.types import TP
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

import cxpulse
from cxpulse import core
from cxpulse.core import checkpoint as saved_state
from cxpulse.core.customer import CustomerState
from cxpulse.settings import Settings
from cxpulse.streams import codec, touch_log
from cxpulse.streams.touch_log import Touched, TouchLog

log = logging.getLogger("cxpulse.worker")

# seconds between an idle worker's looks at whether the contact side's checkpoint is due (a busy one looks after each
# batch): a worker with nothing to read still takes its checkpoint, and a kill -9 after a quiet hour catches up little
CHECKPOINT_TICK = 5.0

Offsets = dict[int, int | None]  # partition -> last changelog offset the state reflects (None: never written)


def fingerprint(settings: Settings) -> str:
    """What the saved state was computed with: the KPI settings, the partition count, the Python version (pickle),
    the text of every module of the package (a checkpoint from other code is never read), and whether the core
    runs compiled or from its sources: the same source pickles its objects differently as a class compiled by
    mypyc and as a Python class (cxpulse/core/__init__.py), so neither reads the other's checkpoint."""
    digest = hashlib.sha256()
    digest.update(settings.kpi.model_dump_json().encode())
    compiled = core.runs() == "compiled"
    digest.update(f"{settings.kafka.partitions}|{sys.version_info[:2]}|compiled={compiled}".encode())
    package = Path(cxpulse.__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class CheckpointStore:
    """One file per side in ``directory``: a small header (fingerprint, offsets) then the state's bytes."""

    def __init__(self, directory: Path, fingerprint: str) -> None:
        self.directory = directory
        self.fingerprint = fingerprint

    def path(self, side: str) -> Path:
        return self.directory / f"{side}.checkpoint"

    def save(self, side: str, offsets: Offsets, data: bytes | Callable[[BinaryIO], None],
             era: str | None = None) -> Path:
        """Write atomically (a new file renamed over the old): a stop cut short leaves none, never half a one.
        ``data``: the state's bytes, or what writes them to the file as they are made
        (:meth:`cxpulse.core.live.LiveKpis.write_checkpoint`: no copy of the whole state in memory). ``era`` names
        the touch log that follows this checkpoint (the contact side's).

        The header goes first and names the state's size, known only once it is written: it is written twice,
        with the size as fixed-width digits, so the second one takes exactly the first one's bytes."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(side)
        partial = path.with_suffix(".partial")
        with partial.open("wb") as handle:
            self._header(handle, offsets, 0, era)
            start = handle.tell()
            if callable(data):
                data(handle)
            else:
                handle.write(data)
            size = handle.tell() - start
            handle.seek(0)
            self._header(handle, offsets, size, era)
            if handle.tell() != start:
                raise RuntimeError("a checkpoint's header changed length")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
        return path

    def _header(self, handle: BinaryIO, offsets: Offsets, size: int, era: str | None) -> None:
        pickle.dump({"fingerprint": self.fingerprint, "offsets": offsets, "size": b"%020d" % size, "era": era},
                    handle, protocol=5)

    def open(self, side: str, offsets: Offsets) -> tuple[bytes | None, dict[str, Any], str]:
        """The saved state of ``side`` and its header if it may be caught up to the tables at ``offsets`` (the
        same code, settings and partitions; no partition's offset past the recovered one), with why not
        otherwise. The file stays (see the module docstring)."""
        return self._read(side, offsets, exact=False)

    def take(self, side: str, offsets: Offsets) -> tuple[bytes | None, str]:
        """The saved state of ``side`` if it describes the tables at ``offsets`` (the recovered ones), with why
        not otherwise; the file is gone afterwards either way."""
        try:
            data, _, why = self._read(side, offsets, exact=True)
            return data, why
        finally:
            self.path(side).unlink(missing_ok=True)

    def _read(self, side: str, offsets: Offsets, *, exact: bool) -> tuple[bytes | None, dict[str, Any], str]:
        """The state, its header and "checkpoint", or None, the header read so far and why not. ``exact``: each
        partition's saved offset must equal the recovered one (nothing written since), else be at or before it."""
        try:
            handle = self.path(side).open("rb")
        except FileNotFoundError:
            return None, {}, "no checkpoint"
        try:
            with handle:
                header = pickle.load(handle)
                if header.get("fingerprint") != self.fingerprint:
                    return None, header, "the settings or the code changed since it was written"
                saved = header.get("offsets")
                if set(saved) != set(offsets):
                    return None, header, f"it holds partitions {sorted(saved)}, this worker owns {sorted(offsets)}"
                if exact:
                    moved = sorted(p for p in offsets if saved[p] != offsets[p])
                    if moved:
                        return None, header, f"the table changed since it was written (partitions {moved})"
                else:
                    ahead = sorted(p for p in offsets if not _at_or_before(saved[p], offsets[p]))
                    if ahead:
                        return None, header, f"the table is older than it (partitions {ahead})"
                data = handle.read()
                size = int(header.get("size", b"-1"))
                if len(data) != size:
                    return None, header, f"it is cut short ({len(data)} of {size} bytes)"
                return data, header, "checkpoint"
        except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint is only a slower start
            return None, {}, f"it cannot be read ({exc!r})"


def recovered_offsets(table: Any, partitions: set[int]) -> Offsets | None:
    """Each partition's changelog offset in ``table``'s store after recovery (None: a store that keeps none,
    ``memory://``: no checkpoint then)."""
    store = table.data
    if not hasattr(store, "persisted_offset"):
        return None
    topic = table.changelog_topic.get_topic_name()
    return {partition: store.persisted_offset(TP(topic, partition)) for partition in sorted(partitions)}


def offsets_now(recovered: Offsets, writer: Any) -> Offsets:
    """The changelog offset each partition's state reflects at a clean stop: the last one this worker's writer
    saw acknowledged, else the one recovered at the start (nothing written since)."""
    out: Offsets = {}
    for partition, offset in recovered.items():
        written = writer.persisted(partition)
        out[partition] = written if written is not None and (offset is None or written > offset) else offset
    return out


def timed_load(live: Any, side: str, data: bytes) -> tuple[int, float]:
    began = time.monotonic()
    count = live.load_checkpoint(side, data)
    return count, time.monotonic() - began


def _at_or_before(saved: int | None, recovered: int | None) -> bool:
    """Is a checkpoint's changelog offset at or before the recovered one (None: nothing written)?"""
    if saved is None:
        return True
    return recovered is not None and saved <= recovered


def tail_problem(touched: dict[int, dict[bytes, Touched]], in_memory: dict[int, set[str]],
                 applied: dict[int, set[bytes]], now: dict[tuple[int, bytes], bytes | None]) -> str | None:
    """Why the keys (contacts or customers) logged since a checkpoint cannot bring it up to the tables (None: they
    can).

    ``in_memory``: the keys the checkpoint holds, by partition; ``applied``: the keys of the changelog records
    Faust's recovery wrote into the stores at this start; ``now``: each logged key's stored value now. What is
    refused (the start rebuilds instead, exactly): a changelog record the log does not name (another worker wrote
    the partition, or a machine crash lost the end of the log); a key deleted after a write of it since the
    checkpoint, or deleted while the checkpoint held it in memory, or stored again after its deletion (the
    deletion kept its counts: they are no longer its stored value's); a key missing from the store without a
    logged deletion."""
    for partition, keys in applied.items():
        logged = touched.get(partition, {})
        missing = sum(1 for key in keys if key not in logged)
        if missing:
            return f"partition {partition}'s changelog holds {missing} records the log does not name"
    for partition, keys in touched.items():
        memory = in_memory.get(partition)
        if memory is None:
            return f"the log names partition {partition}, which the checkpoint does not hold"
        for key, touch in keys.items():
            if touch.deleted_later:
                return "a key stored since the checkpoint was deleted afterwards"
            if touch.deleted_first:
                if key.decode() in memory or now[(partition, key)] is not None:
                    return "a key deleted since the checkpoint was in memory then, or was stored again"
            elif now[(partition, key)] is None:
                return "a key stored since the checkpoint is missing from the table"
    return None


def lost_contact(touched: dict[int, dict[bytes, Touched]], now: dict[tuple[int, bytes], bytes | None]) -> str | None:
    """The customers' own refusal: a customer stored since the checkpoint without a contact it held then. Between
    two checkpoints a customer only gains or changes contacts (the worker forgets old ones just before a checkpoint,
    :meth:`cxpulse.streams.recovery.Recovery.save_running_checkpoint`); a forget in between (a save that failed
    after it) kept the dropped contacts' facts in the counts, which the stored value no longer explains."""
    for partition, keys in touched.items():
        for key, touch in keys.items():
            value = now[(partition, key)]
            if touch.deleted_first or touch.old is None or value is None:
                continue
            had = {item[0] for item in codec.decode(touch.old)["c"]}
            if not had <= {item[0] for item in codec.decode(value)["c"]}:
                return "a customer stored since the checkpoint lost a contact it held then (forgotten)"
    return None


@dataclass(frozen=True)
class LoggedSide:
    """What differs between the two sides a checkpoint and a touch log bring up to the tables: one entry per side in
    :data:`LOGGED`, read by :func:`held_keys`, :func:`catch_up` and :func:`read_with_log`."""

    held: tuple[str, ...]  # the processor attributes whose keys the checkpoint holds in memory
    decode: Callable[[bytes], Any]  # a stored value as the state the processor's ``catch_up`` takes
    processor: Callable[[Any, int], Any]  # (live, partition) -> that partition's processor
    settle: Callable[[Any], None]  # after the catch-up: out of memory what a rebuild would not keep there
    refusal: Callable[[dict[int, dict[bytes, Touched]], dict[tuple[int, bytes], bytes | None]], str | None] | None


LOGGED: dict[str, LoggedSide] = {
    "contacts": LoggedSide(
        held=("contacts", "settled"), decode=lambda value: codec.decode_contact(value)[1],
        processor=lambda live, partition: live.contacts(partition),
        settle=lambda proc: proc.evict_settled(keep_packed=False),  # settled contacts are stored: out of memory
        refusal=None),
    "customers": LoggedSide(
        held=("customers", "packed"), decode=lambda value: CustomerState.from_dict(codec.decode(value)),
        processor=lambda live, partition: live.customers(partition), settle=lambda proc: proc.evict(),
        refusal=lost_contact),
}


def held_keys(side: str, saved: dict[int, dict[str, Any]]) -> dict[int, set[str]]:
    """The keys a checkpoint of ``side`` holds in memory, by partition (the rest of its keys were on disk)."""
    names = LOGGED[side].held
    return {partition: {key for name in names for key in state.get(name, ())} for partition, state in saved.items()}


def catch_up(live: Any, side: str, touched: dict[int, dict[bytes, Touched]],
             now: dict[tuple[int, bytes], bytes | None]) -> int:
    """Bring ``side`` (contacts or customers), just read from a checkpoint, up to the tables: each logged key's
    contribution moves from its value at the checkpoint to ``now`` (checked first with :func:`tail_problem`). A key
    whose first write since deleted it (the sweeper, past the retention) keeps its counts, as the running worker
    kept them. Returns how many keys were caught up."""
    logged = LOGGED[side]
    decode = logged.decode
    count = 0
    for partition, keys in touched.items():
        proc = logged.processor(live, partition)
        for key, touch in keys.items():
            if touch.deleted_first:
                continue
            value = now[(partition, key)]
            assert value is not None  # tail_problem refused a logged key missing from the table
            proc.catch_up(key.decode(), decode(touch.old) if touch.old is not None else None, decode(value))
            count += 1
        logged.settle(proc)
    return count


def read_with_log(store: CheckpointStore, side: str, log: TouchLog, offsets: Offsets,
                  applied: dict[int, set[bytes]], stored: Callable[[int, bytes], bytes | None]) -> tuple[Any, str]:
    """``side``'s checkpoint and what its log names, if they bring it up to the tables at ``offsets``:
    ``((saved, extra, touched, now, era), "checkpoint")``, else ``(None, why)``. Reads the stored value now of
    every logged key with ``stored(partition, key)``."""
    data, header, why = store.open(side, offsets)
    if data is None:
        return None, why
    era = header.get("era")
    touched = touch_log.read(log.path, era) if era is not None else None
    if touched is None:
        return None, "no log of the checkpoint's era"
    saved, extra = saved_state.loads(data)
    now = {(partition, key): stored(partition, key) for partition, keys in touched.items() for key in keys}
    problem = tail_problem(touched, held_keys(side, saved), applied, now)
    refusal = LOGGED[side].refusal
    if problem is None and refusal is not None:
        problem = refusal(touched, now)
    if problem is not None:
        return None, problem
    return (saved, extra, touched, now, era), "checkpoint"


def new_era() -> str:
    return uuid.uuid4().hex


class CheckpointCollector(Collector):
    """``cxpulse_contacts_checkpoint_timestamp_seconds`` and ``cxpulse_customers_checkpoint_timestamp_seconds`` on
    /metrics: when each side was last saved (while running or on a clean stop), so an SRE sees that a crash would
    start from a recent checkpoint (an old one means a failing save, logged at ERROR: the next start after a kill -9
    would catch up more, or rebuild)."""

    SIDES = ("contacts", "customers")

    def __init__(self, saved_at: Callable[[], dict[str, float]]) -> None:
        self.saved_at = saved_at

    def collect(self) -> Any:
        saved = self.saved_at()
        for side in self.SIDES:
            family = GaugeMetricFamily(f"cxpulse_{side}_checkpoint_timestamp_seconds",
                                       f"Wall clock of the {side[:-1]} side's last checkpoint (taken every "
                                       "worker.checkpoint_every_seconds); absent before the first.")
            at = saved.get(side)
            if at is not None:
                family.add_metric([], at)
            yield family
