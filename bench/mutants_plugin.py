"""pytest plugin for the baseline run of ``bench/mutants.py``: which lines of the mutated package each test runs.

Why: a mutant can only be killed by a test that executes the mutated line. Running just those tests (fastest
first, with ``-x``) instead of the whole selection makes a mutation run several times cheaper, and a mutant on
a line no test executes is reported as surviving without spending a pytest run on it.

Loaded with ``-p mutants_plugin`` (``bench/`` on ``PYTHONPATH``) only when ``CXPULSE_MUTANTS_TRACE_OUT`` is set.
Lines are traced with ``sys.settrace`` (Python 3.11 has no ``sys.monitoring``), but only inside files under
the directories of ``CXPULSE_MUTANTS_TRACE_DIRS``: every other frame gets no local tracer, which keeps the
overhead to one Python call per function call.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Generator
from types import FrameType
from typing import Any

import pytest

_OUT = os.environ.get("CXPULSE_MUTANTS_TRACE_OUT", "")
_DIRS = tuple(d.rstrip(os.sep) + os.sep for d in os.environ.get("CXPULSE_MUTANTS_TRACE_DIRS", "").split(os.pathsep) if d)
_ROOT = os.environ.get("CXPULSE_MUTANTS_TRACE_ROOT", "")


class _Tracer:
    """Collects ``(filename, line)`` executed in the target directories while it is installed."""

    def __init__(self) -> None:
        self.lines: set[tuple[str, int]] = set()
        self._wanted: dict[str, bool] = {}

    def _global(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event != "call":
            return None
        filename = frame.f_code.co_filename
        wanted = self._wanted.get(filename)
        if wanted is None:
            wanted = self._wanted[filename] = filename.startswith(_DIRS)
        if not wanted:
            return None
        self.lines.add((filename, frame.f_lineno))
        return self._local

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            self.lines.add((frame.f_code.co_filename, frame.f_lineno))
        return self._local

    def start(self) -> None:
        self.lines = set()
        threading.settrace(self._global)
        sys.settrace(self._global)

    def stop(self) -> set[tuple[str, int]]:
        sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type]
        return self.lines


_tracer = _Tracer()
_tests: dict[str, dict[str, Any]] = {}
_collection: set[tuple[str, int]] = set()


def _by_file(lines: set[tuple[str, int]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for filename, line in lines:
        out.setdefault(os.path.relpath(filename, _ROOT), []).append(line)
    return {name: sorted(set(numbers)) for name, numbers in sorted(out.items())}


@pytest.hookimpl(hookwrapper=True)
def pytest_collection(session: pytest.Session) -> Generator[None, None, None]:
    """Module-level code of the package runs while test modules are imported: record it as collection lines."""
    if not _OUT:
        yield
        return
    _tracer.start()
    try:
        yield
    finally:
        _collection.update(_tracer.stop())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    """Trace setup, call and teardown of one test."""
    if not _OUT:
        yield
        return
    _tracer.start()
    try:
        yield
    finally:
        lines = _tracer.stop()
        entry = _tests.setdefault(item.nodeid, {"seconds": 0.0, "failed": False})
        entry["lines"] = _by_file(lines)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Durations (under tracing, so generous) order the tests fastest first; failures exclude a test."""
    if not _OUT:
        return
    entry = _tests.setdefault(report.nodeid, {"seconds": 0.0, "failed": False})
    entry["seconds"] += report.duration
    if report.failed:
        entry["failed"] = True


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _OUT:
        return
    with open(_OUT, "w", encoding="utf-8") as handle:
        json.dump({"tests": _tests, "collection": _by_file(_collection)}, handle)
