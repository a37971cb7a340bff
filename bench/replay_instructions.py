"""Instructions per event of ``cxpulse replay`` (valgrind's callgrind), for the working tree and earlier commits.

Why instructions and not time: this machine is shared and its pace moves by 10-15% from one run to the next, often
within one run, so two codes a few per cent apart need many alternated rounds to tell apart by their rates (and
a simulated week's replay takes a minute a round). An instruction count does not move with the load: one run of
each code under callgrind tells a 3% change apart. What it does not see: cache misses and memory stalls (a
larger state held in memory may cost time that no instruction shows), and the speed of a C call against the
same number of Python instructions. So it complements the rates of ``bench/days.py``; it does not replace them.

Each code replays the same file under ``valgrind --tool=callgrind`` (about 60x slower than normal: 300k events
take about five minutes), once for the file and once for a file of one event (the start-up: imports, settings,
the document), and the difference is divided by the events. The codes run two at a time (two processes).

Usage::

    .venv/bin/python bench/replay_instructions.py --rev fa4c277                # the tree and fa4c277, 60k events
    .venv/bin/python bench/replay_instructions.py --events 300000 --rev HEAD~3 --rev HEAD
    .venv/bin/python bench/replay_instructions.py --file events.jsonl --events 0   # the whole file
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from days import child_env, simulate_days  # noqa: E402
from faust_baseline import archive_code  # noqa: E402

REFS = re.compile(rb"I\s+refs:\s+([\d,]+)")
ONE_EVENT = (b'{"event_id":"e1","type":"contact.queued","ts":"2026-01-05T09:00:00Z","contact_id":"c1",'
             b'"customer_id":"u1","channel":"voice","queue":"billing"}\n')


def instructions(pythonpath: str | None, path: Path) -> int:
    """Instructions of one ``cxpulse replay --no-progress path`` (every thread), run under callgrind."""
    env = child_env()
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    with tempfile.TemporaryDirectory(prefix="cxpulse-ir-") as scratch:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={scratch}/out.%p", sys.executable, "-m",
             "cxpulse.cli", "replay", "--no-progress", str(path)],
            capture_output=True, env=env, cwd=scratch,
        )
    found = REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        tail = done.stderr.decode(errors="replace")[-1500:]
        raise SystemExit(f"replay_instructions: the replay under callgrind failed (rc {done.returncode}): {tail}")
    return int(found.group(1).replace(b",", b""))


def measure(label: str, pythonpath: str | None, path: Path, one: Path, events: int) -> tuple[str, int, int, float]:
    """(label, instructions of the file, of the start-up, per event)."""
    total, start_up = instructions(pythonpath, path), instructions(pythonpath, one)
    return label, total, start_up, (total - start_up) / events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, help="JSON Lines events (default: a simulated day, as bench/days.py)")
    parser.add_argument("--events", type=int, default=60_000, help="the file's first N lines (0: all of it)")
    parser.add_argument("--rev", action="append", default=[], help="also this commit (git archive; repeatable)")
    parser.add_argument("--no-tree", action="store_true", help="only the --rev commits, not the working tree")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("replay_instructions: valgrind is not installed (apt-get install valgrind)")
    if args.events < 0:
        raise SystemExit(f"replay_instructions: --events {args.events}: a number of lines from 0")
    if args.no_tree and not args.rev:
        raise SystemExit("replay_instructions: --no-tree needs at least one --rev")
    with tempfile.TemporaryDirectory(prefix="cxpulse-ir-") as scratch:
        work = Path(scratch)
        source = args.file
        if source is None:
            print("replay_instructions: simulating a day of the shipped centre scaled to 66k contacts", flush=True)
            source = simulate_days(work, 1, 66_000, seed=7).path
        elif not source.is_file():
            raise SystemExit(f"replay_instructions: --file {source}: no such file")
        path = work / "head.jsonl"  # not events.jsonl: the simulated file's own name
        with source.open("rb") as inp, path.open("wb") as out:
            events = 0
            for line in inp:
                if args.events and events >= args.events:
                    break
                out.write(line)
                events += 1
        if events == 0:
            raise SystemExit(f"replay_instructions: {source} holds no line")
        one = work / "one.jsonl"
        one.write_bytes(ONE_EVENT)
        codes: list[tuple[str, str | None]] = [] if args.no_tree else [("working tree", None)]
        for rev in args.rev:
            src, commit = archive_code(rev, work / "codes")
            codes.append((f"commit {commit}", str(src)))
        print(f"replay_instructions: {events:,} events of {source}, {len(codes)} codes under callgrind, two at a "
              "time (about 20 s per 10k events each)", flush=True)
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(lambda code: measure(code[0], code[1], path, one, events), codes))
    first = results[0][3]
    print("| code | instructions (file) | start-up | per event | x the first |")
    print("|---|---|---|---|---|")
    for label, total, start_up, per_event in results:
        print(f"| {label} | {total:,} | {start_up:,} | {per_event:,.0f} | {per_event / first:.3f} |")


if __name__ == "__main__":
    main()
