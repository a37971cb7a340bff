"""Where a worker's memory goes when it rebuilds its contacts from the table (issue 9: restart).

A worker restarted after a simulated day holds ~7.5 KB per contact once ready, twice what the same worker held
before the restart (~3.7 KB, ``bench/days.py``). This script rebuilds the contact side the way recovery does
(``LiveKpis.rebuild_contacts`` over stored rows, with a table loader: settled contacts leave memory every
8,192), without Faust, Kafka or RocksDB, and prints, in a fresh process: the resident memory before and after,
and, in a second fresh process under ``tracemalloc``, how much of it Python's objects still hold: the rest is
memory the allocator kept after short-lived objects were freed.

    .venv/bin/python bench/restore_memory.py --days 1

The stored rows come from a replay of the simulated days (every contact's final state, encoded by the worker's
own codec), so the rebuild sees what a worker's table would hold.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

MIB = 1024 * 1024


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def store(events: Path, rows: Path, partitions: int) -> int:
    """Replay ``events`` and write every contact's state as the worker's table would hold it."""
    from cxpulse.core.engine import KpiEngine
    from cxpulse.core.processors import unpack_contact
    from cxpulse.streams import codec

    engine = KpiEngine(keep_raw=False)
    with events.open("rb") as handle:
        for line in handle:
            if line.strip():
                engine.process(line)
    proc = engine.contacts
    stored = [(cid, state) for cid, state in proc.contacts.items()]
    stored += [(cid, unpack_contact(packed)) for cid, packed in proc.settled.items()]
    out = [(cid, codec.encode_contact(state, hash(cid) % partitions)) for cid, state in stored]
    rows.write_bytes(msgspec.msgpack.encode(out))
    return len(out)


def rebuild(rows: Path, partitions: int, trace: bool) -> None:
    """In a fresh process: rebuild the contact side from ``rows`` and print what memory it holds (``trace``:
    under tracemalloc, which tells what Python objects hold but slows the rebuild and costs memory itself)."""
    from cxpulse.core.live import LiveKpis
    from cxpulse.settings import KpiSettings
    from cxpulse.streams import codec

    table: dict[str, bytes] = dict(msgspec.msgpack.decode(rows.read_bytes()))
    gc.collect()
    before = rss_kb()
    if trace:
        tracemalloc.start()

    def loader_for(partition: int):  # the table: a dict of stored rows, as the worker's RocksDB get would read
        def load(contact_id: str):
            value = table.get(contact_id)
            return None if value is None else codec.decode_contact(value)[1]
        return load

    live = LiveKpis(KpiSettings(), loader_for=loader_for)
    began = time.process_time()
    items = ((cid, *codec.decode_contact(value, sync=False)) for cid, value in table.items())
    count = live.rebuild_contacts(items, set(range(partitions)))
    cpu = time.process_time() - began
    gc.collect()
    after = rss_kb()
    in_memory = sum(len(p.contacts) for p in live.contact_parts.values())
    grown = (after - before) * 1024
    print(f"{'traced' if trace else 'untraced'}: rebuilt {count:,} contacts ({in_memory:,} left in memory) in "
          f"{cpu:.1f} CPU s ({count / cpu:,.0f} contacts per CPU-second); RSS {before / 1024:,.0f} -> "
          f"{after / 1024:,.0f} MiB: +{grown / MIB:,.0f} MiB ({grown / count:,.0f} B per contact)")
    if trace:
        held, peak = tracemalloc.get_traced_memory()
        own = tracemalloc.get_tracemalloc_memory()
        tracemalloc.stop()
        print(f"  held by Python objects the rebuild allocated: {held / MIB:,.1f} MiB ({held / count:,.0f} B per "
              f"contact; peak {peak / MIB:,.1f} MiB); tracemalloc's own bookkeeping {own / MIB:,.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--contacts-per-day", type=int, default=66_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rebuild", type=Path, help=argparse.SUPPRESS)  # the child's part
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rebuild is not None:
        rebuild(args.rebuild, args.partitions, args.trace)
        return
    from days import simulate_days

    work = Path(tempfile.mkdtemp(prefix="cxpulse-restore-"))
    sim = simulate_days(work, args.days, args.contacts_per_day, args.seed)
    rows = work / "rows.msgpack"
    count = store(sim.path, rows, args.partitions)
    print(f"{args.days:g} simulated days: {sim.events:,} events, {count:,} stored contacts "
          f"({rows.stat().st_size / MIB:,.0f} MiB of rows), load average {os.getloadavg()[0]:.2f}")
    for trace in ([], ["--trace"]):  # the figures, then what holds them (tracemalloc changes both)
        subprocess.run([sys.executable, __file__, "--rebuild", str(rows), "--partitions", str(args.partitions), *trace],
                       check=True)
    for path in work.iterdir():
        path.unlink()
    work.rmdir()


if __name__ == "__main__":
    main()
