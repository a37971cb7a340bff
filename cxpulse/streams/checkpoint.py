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

Anything else, a kill -9 (no checkpoint is written) included, rebuilds from the tables as before. The file is
deleted when it is read, used or not: the state goes on changing from there, and only the next clean stop
describes it again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any

from faust.types import TP

import cxpulse
from cxpulse.settings import Settings

log = logging.getLogger("cxpulse.worker")

Offsets = dict[int, int | None]  # partition -> last changelog offset the state reflects (None: never written)


def fingerprint(settings: Settings) -> str:
    """What the saved state was computed with: the KPI settings, the partition count, the Python version (pickle)
    and the text of every module of the package (a checkpoint from other code is never read)."""
    digest = hashlib.sha256()
    digest.update(settings.kpi.model_dump_json().encode())
    digest.update(f"{settings.kafka.partitions}|{sys.version_info[:2]}".encode())
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

    def save(self, side: str, offsets: Offsets, data: bytes) -> Path:
        """Write atomically (a new file renamed over the old): a stop cut short leaves none, never half a one."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(side)
        partial = path.with_suffix(".partial")
        with partial.open("wb") as handle:
            pickle.dump({"fingerprint": self.fingerprint, "offsets": offsets, "size": len(data)}, handle, protocol=5)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
        return path

    def take(self, side: str, offsets: Offsets) -> tuple[bytes | None, str]:
        """The saved state of ``side`` if it describes the tables at ``offsets`` (the recovered ones), with why
        not otherwise; the file is gone afterwards either way."""
        path = self.path(side)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return None, "no checkpoint"
        try:
            with handle:
                header = pickle.load(handle)
                if header.get("fingerprint") != self.fingerprint:
                    return None, "the settings or the code changed since it was written"
                saved = header.get("offsets")
                if set(saved) != set(offsets):
                    return None, f"it holds partitions {sorted(saved)}, this worker owns {sorted(offsets)}"
                moved = sorted(p for p in offsets if saved[p] != offsets[p])
                if moved:
                    return None, f"the table changed since it was written (partitions {moved})"
                data = handle.read()
                if len(data) != header.get("size"):
                    return None, f"it is cut short ({len(data)} of {header.get('size')} bytes)"
                return data, "checkpoint"
        except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint is only a slower start
            return None, f"it cannot be read ({exc!r})"
        finally:
            path.unlink(missing_ok=True)


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
