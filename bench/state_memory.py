"""What a worker's live state holds, structure by structure, read from the checkpoint its clean stop wrote.

Why: the worker's RSS after a simulated week is far above the sum of what we thought it kept (issue 9: at most
500 MB). A checkpoint (``cxpulse/core/checkpoint.py``) is exactly the live state of one side (contacts,
customers, agents): every partition's processor and aggregates. This script reads one back in a fresh process
and prints, per attribute summed over the partitions, the Python objects it holds (``sys.getsizeof`` of every
object reachable from it, each object counted once, in the order given), the count of top-level entries, and
the process's RSS before and after the load (what the objects cost with the allocator's overhead).

    .venv/bin/python bench/days.py --days 1 --skip-replay --no-cold-restart --keep   # prints the work dir
    .venv/bin/python bench/state_memory.py WORK_DIR/**/checkpoints/contacts.checkpoint
"""

from __future__ import annotations

import argparse
import gc
import pickle
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from restore_memory import MIB, rss_kb  # noqa: E402  (the same resident-memory reading)


def deep_size(root: Any, seen: set[int]) -> int:
    """Bytes of every object reachable from ``root`` not in ``seen`` (which it extends)."""
    total = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif hasattr(obj, "__slots__"):
            stack.extend(getattr(obj, slot) for slot in obj.__slots__ if hasattr(obj, slot))
        elif hasattr(obj, "__dict__"):
            stack.append(vars(obj))
    return total


def entries(value: Any) -> int:
    return len(value) if hasattr(value, "__len__") else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a <side>.checkpoint file of a worker's data dir")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from cxpulse.core import checkpoint

    gc.collect()
    before = rss_kb()
    with args.checkpoint.open("rb") as handle:
        header = pickle.load(handle)
        data = handle.read()
    saved, extra = checkpoint.loads(data)
    del data
    gc.collect()
    after = rss_kb()
    print(f"{args.checkpoint.name}: {header['size'] / MIB:,.1f} MiB pickled, {len(saved)} partitions; "
          f"RSS +{(after - before) / 1024:,.1f} MiB once loaded")
    sizes: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    seen: set[int] = set()
    distinct_sizes: dict[str, int] = defaultdict(int)
    distinct_seen: set[int] = set()
    for state in saved.values():
        for name, value in state.items():
            if name == "aggregates":
                for slot, inner in value.items():
                    sizes[f"aggregates.{slot}"] += deep_size(inner, seen)
                    counts[f"aggregates.{slot}"] += entries(inner)
                distinct = value.get("distinct")
                if distinct is not None:  # the customer side's index, by its own slots (objects shared
                    for slot in distinct.__slots__:  # between slots counted in the first, in slot order)
                        if not hasattr(distinct, slot):  # a checkpoint of an older version of the index
                            continue
                        key = f"aggregates.distinct.{slot}"
                        counts[key] += entries(getattr(distinct, slot))
                        distinct_sizes[key] += deep_size(getattr(distinct, slot), distinct_seen)
            else:
                sizes[name] += deep_size(value, seen)
                counts[name] += entries(value)
    total = sum(sizes.values())
    print(f"{'attribute':<34} {'MiB':>9} {'entries':>11}")
    for name, size in sorted(sizes.items(), key=lambda item: -item[1]):
        if size >= 0.05 * MIB:
            print(f"{name:<34} {size / MIB:>9.1f} {counts[name]:>11,}")
    print(f"{'(all)':<34} {total / MIB:>9.1f}")
    for name, count in sorted(counts.items()):
        if name.startswith("aggregates.distinct."):
            print(f"  {name}: {count:,} entries, {distinct_sizes[name] / MIB:,.1f} MiB")
    if extra is not None:
        print(f"observer: {deep_size(extra, seen) / MIB:.1f} MiB")


if __name__ == "__main__":
    main()
