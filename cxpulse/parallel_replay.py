"""``cxpulse replay --jobs N``: one event file replayed by N processes, split the way the live engine splits it.

Why: the KPI core is single-threaded Python (about 25 µs per event on a 2-core test machine, spread over the
contact walk, the aggregates, the FCR index and the spill store: no single hot spot left to cut, see
docs/performance.md). A month of a large centre is millions of events; a machine with N cores replays it N
times as many at once, the way N partitions of a topic are processed by N workers.

How, and why the figures stay exact:

- Every process reads the whole file and keeps the lines of its own contacts: CRC-32 of the contact id modulo
  N (:func:`part_of`), so every event of a contact, surveys and follow-ups included, reaches one process, as a
  keyed topic sends it to one partition. A line with no contact id (an agent event, a line that is not JSON)
  goes to process 0: each line is counted once.
- Each process runs a :class:`~cxpulse.core.engine.KpiEngine` over its contacts. A contact's FCR summary goes
  to the process of its customer (CRC-32 of the customer id): applied at once when that is the same process,
  otherwise written to a spool file that the customer's process applies once every process has read the
  file. The customer side does not depend on the order in which different contacts' summaries arrive (each
  contact's summaries keep their order: one writer), which is what the live engine relies on too: there the
  summaries cross a Kafka topic.
- The document is built once, by :func:`cxpulse.core.engine.replay_document`, over every process's aggregates,
  exactly as the live engine builds it over its partitions' (distinct customers add up: each customer is
  counted by one process only).

What differs from ``--jobs 1``: each process's stream time is the newest event time of its own contacts, as a
live partition's is. An event that arrives within the allowed disorder counts the same either way (that is the
contract); one that arrives later than that may be judged against a slightly earlier clock, exactly as the live
engine running N partitions would judge it. ``tests/integration/test_parallel_replay.py`` holds the two equal.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from zlib import crc32

import orjson

from cxpulse.core.aggregates import Aggregates
from cxpulse.core.agents import AgentProcessor
from cxpulse.core.contact import Summary
from cxpulse.core.engine import Health, KpiEngine, merge_live, replay_document
from cxpulse.event_file import open_events
from cxpulse.models.events import format_ts
from cxpulse.settings import KpiSettings
from cxpulse.spill import SpillStore

SPOOL_BATCH = 4096  # summaries per pickled batch of a spool file: one write per batch, not per summary
_KEY = b'"contact_id"'
_KEY_STRING = b'"contact_id":"'


def part_of(line: bytes, parts: int) -> int:
    """The process (0 .. ``parts`` - 1) of one line: CRC-32 of its contact id, or 0 when it has none.

    The usual line is read without a JSON parser, soundly: with no backslash in the line no string holds an
    escape, so the key ``"contact_id"`` is spelled out wherever it occurs; when it occurs exactly once and is
    followed by ``:"``, the value runs to the next quote and its bytes are the UTF-8 of the id a decoder reads.
    Anything else (escapes, spaces, the key twice, a non-string id) asks orjson, and hashes the same UTF-8."""
    if b"\\" not in line and line.count(_KEY) == 1:
        at = line.find(_KEY_STRING)
        if at >= 0:
            start = at + len(_KEY_STRING)
            end = line.find(b'"', start)
            if end >= 0:
                return crc32(line[start:end]) % parts
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return 0
    contact_id = obj.get("contact_id") if isinstance(obj, dict) else None
    if not isinstance(contact_id, str):
        return 0
    return crc32(contact_id.encode("utf-8", "surrogatepass")) % parts


def customer_part(customer_id: str, parts: int) -> int:
    """The process whose customer side holds ``customer_id``."""
    return crc32(customer_id.encode("utf-8", "surrogatepass")) % parts


@dataclass
class PartResult:
    """What one process hands back: its share of the document's inputs."""

    aggregates: Aggregates
    waiting: dict[tuple[str, str], tuple[int, float]]
    awaiting: dict[tuple[str, str], tuple[int, float]]
    agents: AgentProcessor
    health: Health
    rejections: list[Any]
    first_ts: int | None


@dataclass
class ParallelReplay:
    """The outcome of :func:`replay_parallel`: the document and the merged counts (what ``cxpulse replay`` prints
    of a one-process engine: ``health`` and ``rejections``)."""

    document: dict[str, Any]
    health: Health
    rejections: list[Any]
    elapsed: float  # seconds from the start of the processes to the last part handed back


class _Spool:
    """Summaries bound for other processes' customers, in one file per destination, pickled in batches."""

    def __init__(self, directory: Path, index: int, parts: int) -> None:
        self.paths = {dest: directory / f"{index}-{dest}.spool" for dest in range(parts) if dest != index}
        self.files = {dest: path.open("wb") for dest, path in self.paths.items()}
        self.batches: dict[int, list[tuple[Any, ...]]] = {dest: [] for dest in self.paths}

    def add(self, dest: int, summary: Summary) -> None:
        batch = self.batches[dest]
        batch.append(tuple(summary))
        if len(batch) >= SPOOL_BATCH:
            pickle.dump(batch, self.files[dest], protocol=pickle.HIGHEST_PROTOCOL)
            batch.clear()

    def close(self) -> None:
        for dest, batch in self.batches.items():
            if batch:
                pickle.dump(batch, self.files[dest], protocol=pickle.HIGHEST_PROTOCOL)
            self.files[dest].close()


def _read_spool(path: Path) -> Iterator[list[tuple[Any, ...]]]:
    with path.open("rb") as handle:
        while True:
            try:
                yield pickle.load(handle)
            except EOFError:
                return


def _run_part(index: int, parts: int, path: Path, kpi: KpiSettings, until_us: int | None, spill: bool,
              spool_dir: Path, conn: Connection, progress: Any | None) -> None:
    """One process: phase 1 reads the file (its contacts, and its own customers' summaries at once); after
    the parent's go (every process has read the file), phase 2 applies the summaries the others spooled for
    its customers; then it hands its :class:`PartResult` back."""
    try:
        with SpillStore() if spill else nullcontext() as store:  # type: ignore[attr-defined]
            spool = _Spool(spool_dir, index, parts)
            engine: KpiEngine

            def forward(summaries: list[Summary]) -> None:
                for summary in summaries:
                    dest = customer_part(summary.customer_id, parts)
                    if dest == index:
                        engine.customers.update(summary)
                    else:
                        spool.add(dest, summary)

            engine = KpiEngine(kpi, until_us=until_us, keep_raw=False,
                               spill=store.map if store is not None else None, summaries_to=forward)
            done = 0
            with open_events(path) as handle:
                for line in handle:
                    done += len(line)
                    stripped = line.strip()
                    if stripped and part_of(stripped, parts) == index:
                        engine.process(stripped)
                    if done & 0xFFFF < len(line) and progress is not None:
                        progress[index] = done
            engine.finish()
            spool.close()
            if progress is not None:
                progress[index] = done
            conn.send(("read", engine.stream_time, engine.aggregates.now))
            message = conn.recv()
            if message[0] != "go":
                return
            now_us = message[1]
            for source in range(parts):
                if source != index:
                    for batch in _read_spool(spool_dir / f"{source}-{index}.spool"):
                        engine.apply_summaries(Summary(*row) for row in batch)
            result = PartResult(
                aggregates=engine.aggregates,
                waiting=engine.contacts.waiting_by_queue(now_us),
                awaiting=engine.contacts.awaiting_by_queue(now_us),
                agents=engine.agents,
                health=engine.health,
                rejections=engine.rejections,
                first_ts=engine.contacts.first_ts,
            )
            conn.send(("done", pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)))
    except BaseException:  # noqa: BLE001 - the parent must hear of it, or it waits forever
        try:
            conn.send(("error", traceback.format_exc()))
        except OSError:
            pass
    finally:
        conn.close()


def replay_parallel(path: Path, kpi: KpiSettings, jobs: int, *, until_us: int | None = None, spill: bool = True,
                    on_progress: Callable[[int], None] | None = None) -> ParallelReplay:
    """Replay ``path`` in ``jobs`` processes (see the module doc); the document has the ``all`` window.

    Raises ``RuntimeError`` with the failing process's traceback if one fails, and ``ValueError`` if
    ``until_us`` lies before the newest event time, as :meth:`KpiEngine.snapshot` does."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    context = multiprocessing.get_context("fork")  # the children start with the settings and modules loaded
    progress = context.Array("q", jobs, lock=False) if on_progress is not None else None
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cxpulse-replay-spool-") as spool_dir:
        links: list[Connection] = []
        procs = []
        try:
            for index in range(jobs):
                mine, theirs = context.Pipe()
                proc = context.Process(
                    target=_run_part, name=f"cxpulse-replay-{index}",
                    args=(index, jobs, path, kpi, until_us, spill, Path(spool_dir), theirs, progress),
                )
                proc.start()
                theirs.close()
                links.append(mine)
                procs.append(proc)
            read = [_receive(link, "read", progress, on_progress) for link in links]
            now_us = max(stream_time for _, stream_time, _ in read) if until_us is None else until_us
            newest = max(agg_now for _, _, agg_now in read)
            if now_us < newest:
                raise ValueError(f"cannot evaluate at {format_ts(now_us)}: before the newest event time "
                                 f"{format_ts(newest)}")
            for link in links:
                link.send(("go", now_us))
            results: list[PartResult] = [pickle.loads(_receive(link, "done", None, None)[1]) for link in links]
        finally:
            for link in links:
                try:
                    link.send(("stop",))
                except OSError:
                    pass
                link.close()
            for proc in procs:
                proc.join(timeout=5)
                if proc.is_alive():
                    proc.kill()
                    proc.join()
    elapsed = time.perf_counter() - started
    waiting: dict[tuple[str, str], tuple[int, float]] = {}
    awaiting: dict[tuple[str, str], tuple[int, float]] = {}
    health = Health()
    rejections: list[Any] = []
    for result in results:
        merge_live(waiting, result.waiting)
        merge_live(awaiting, result.awaiting)
        health.processed += result.health.processed
        health.duplicates += result.health.duplicates
        health.invalid.update(result.health.invalid)
        health.reasons.update(result.health.reasons)
        rejections.extend(result.rejections)
    firsts = [result.first_ts for result in results if result.first_ts is not None]
    document = replay_document(
        kpi, [result.aggregates for result in results], waiting, awaiting, now_us,
        first_ts=min(firsts) if firsts else None, agents=[result.agents for result in results], listing=False,
    )
    return ParallelReplay(document, health, rejections, elapsed)


def _receive(link: Connection, expected: str, progress: Any, on_progress: Callable[[int], None] | None) -> Any:
    """The next message of one process; its failure (a traceback, or its end without a word) as RuntimeError."""
    while progress is not None and on_progress is not None and not link.poll(0.1):
        on_progress(sum(progress))
    try:
        message = link.recv()
    except EOFError:
        raise RuntimeError("a replay process ended without its result (killed, or out of memory?)") from None
    if message[0] == "error":
        raise RuntimeError(f"a replay process failed:\n{message[1]}")
    if message[0] != expected:
        raise RuntimeError(f"a replay process said {message[0]!r}, expected {expected!r}")
    return message


def default_jobs() -> int:
    """The CPUs this process may run on (``os.sched_getaffinity``: a container's limit, not the host's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


__all__ = ["ParallelReplay", "customer_part", "default_jobs", "part_of", "replay_parallel"]
