"""How many contacts a worker catching up a backlog walks again (``ContactProcessor._recompute``) because it read
their surveys ahead of their contact events, with and without the step for an answer, an abandon or an end that
sorts before feedback only (``cxpulse/core/processors.py``: ``_before_feedback_only``, session 16).

Why a model and not the worker: a worker reads its two source topics round-robin, and the survey topic, with ~13x
fewer records, runs ahead in event time by an amount that depends on fetch sizes and timing; a py-spy profile showed
the walk (2.5% of the busy main thread) but cannot count it. Here one contact processor (the core, on its sources so
that the two functions can be counted) reads the events of ``bench/faust_baseline.py``'s file in the order of a
consumer that takes ``--surveys-per-record`` survey records per contact-event record, and counts. Counts, not
times: they do not move with this machine's load.

Usage::

    .venv/bin/python bench/read_ahead.py                 # 100,000 events, one survey record per contact record
    .venv/bin/python bench/read_ahead.py --surveys-per-record 0   # surveys in time order (no read-ahead)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ["CXPULSE_PURE_PYTHON"] = "1"  # the sources: their functions can be counted (set before any import)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cxpulse.core import processors  # noqa: E402
from cxpulse.core.aggregates import Aggregates  # noqa: E402
from cxpulse.models.events import parse_any_event  # noqa: E402
from cxpulse.settings import KpiSettings  # noqa: E402
from cxpulse.units import US_PER_SECOND  # noqa: E402
from faust_baseline import scaled_flat_file  # noqa: E402


def read_order(lines: list[bytes], surveys_per_record: int) -> list[bytes]:
    """The file's lines as a consumer takes them: one contact-event record, then ``surveys_per_record`` survey
    records, and so on (0: the file's own order, time order)."""
    if surveys_per_record == 0:
        return lines
    contacts = [line for line in lines if b'"survey.' not in line]
    surveys = [line for line in lines if b'"survey.' in line]
    out: list[bytes] = []
    taken = 0
    for line in contacts:
        out.append(line)
        out += surveys[taken:taken + surveys_per_record]
        taken += surveys_per_record
    return out + surveys[taken:]


def count(order: list[bytes], with_step: bool) -> int:
    """Recomputes over one contact processor that applies ``order``; ``with_step`` False: as before session 16,
    every event that does not sort last is a recompute."""
    recomputes = 0
    real_check, real_recompute = processors._before_feedback_only, processors.ContactProcessor._recompute

    def check(records: list[processors.Record], rec: processors.Record) -> bool:
        return with_step and real_check(records, rec)

    def recompute(self: processors.ContactProcessor, *args: Any) -> None:
        nonlocal recomputes
        recomputes += 1
        real_recompute(self, *args)

    processors._before_feedback_only = check  # type: ignore[assignment]
    processors.ContactProcessor._recompute = recompute  # type: ignore[method-assign]
    try:
        kpi = KpiSettings()
        proc = processors.ContactProcessor(kpi, Aggregates(kpi.bucket_seconds * US_PER_SECOND, 0))
        for line in order:
            proc.handle(parse_any_event(line))
    finally:
        processors._before_feedback_only = real_check
        processors.ContactProcessor._recompute = real_recompute  # type: ignore[method-assign]
    return recomputes


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--hours", type=float, default=4.0, help="simulated hours the events span")
    parser.add_argument("--surveys-per-record", type=int, default=1,
                        help="survey records the consumer takes per contact-event record (0: time order)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cxpulse-read-ahead-") as work:
        path = Path(work) / "events.jsonl"
        scaled_flat_file(path, args.events, args.hours)
        lines = path.read_bytes().splitlines()
    order = read_order(lines, args.surveys_per_record)
    without = count(order, with_step=False)
    with_it = count(order, with_step=True)
    print(f"read_ahead: {len(order):,} events, {args.surveys_per_record} survey record(s) per contact-event record")
    print(f"  recomputes without the step before feedback: {without:,}")
    print(f"  recomputes with it (this code):              {with_it:,} "
          f"({100 * (1 - with_it / max(1, without)):.0f}% fewer)")


if __name__ == "__main__":
    main()
