"""What the garbage collector's thresholds cost a replay: CPython's defaults against ``cxpulse/gc_policy.py``.

Why: the worker and ``cxpulse replay`` hold a large state of container objects; with the default thresholds
(700, 10, 10) full collections walk it again and again. This script replays one file through ``KpiEngine`` in
fresh processes, alternating the default thresholds and the policy's (``--rounds`` of each, interleaved, so the
machine's load falls on both alike), and prints the CPU seconds of each run and how many collections of each
generation ran.

    .venv/bin/python bench/gc_policy.py --days 1          # simulates the shipped centre's day first
    .venv/bin/python bench/gc_policy.py --file events.jsonl --rounds 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import gc, json, sys, time
policy = sys.argv[2] == "policy"
if policy:
    from cxpulse.gc_policy import tune_for_long_runs
    tune_for_long_runs()
from cxpulse.core.engine import KpiEngine
engine = KpiEngine(keep_raw=False)
began = time.process_time()
with open(sys.argv[1], "rb") as handle:
    for line in handle:
        if line.strip():
            engine.process(line)
engine.snapshot(engine.contacts.latest_ts)
print(json.dumps({"cpu": time.process_time() - began, "collections": [s["collections"] for s in gc.get_stats()],
                  "thresholds": gc.get_threshold()}))
"""


def run(path: Path, mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), mode], cwd=ROOT, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--file", type=Path, help="a JSON Lines file of contract events")
    parser.add_argument("--days", type=float, default=1.0, help="without --file: simulate this many days")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each, interleaved")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cxpulse-gc-") as work:
        path = args.file
        if path is None:
            path = Path(work) / "events.jsonl"
            subprocess.run([str(ROOT / ".venv" / "bin" / "cxpulse"), "simulate", "--out", str(path), "--fast",
                            "--seed", "7", "--duration", f"{int(args.days * 86400)}s"], check=True,
                           capture_output=True)
        lines = sum(1 for line in path.open("rb") if line.strip())
        print(f"gc_policy: {lines:,} events from {path.name}, {args.rounds} rounds")
        results: dict[str, list[dict]] = {"default": [], "policy": []}
        for _ in range(args.rounds):
            for mode in ("default", "policy"):
                result = run(path, mode)
                results[mode].append(result)
                print(f"  {mode:<8} thresholds {tuple(result['thresholds'])}: {result['cpu']:.2f} CPU s, "
                      f"collections per generation {result['collections']}")
        best = {mode: min(r["cpu"] for r in runs) for mode, runs in results.items()}
        print(f"best of each: default {best['default']:.2f} s, policy {best['policy']:.2f} s "
              f"({100 * (1 - best['policy'] / best['default']):.0f}% less CPU)")


if __name__ == "__main__":
    main()
