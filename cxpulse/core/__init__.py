"""The KPI core: plain Python, no Faust, Kafka or Redis; replay, the live worker and the tests run the same code.

Its hot modules are also compiled to C with mypyc when cxpulse is installed (``setup.py`` says which and why).
The sources stay the reference, and this module decides at import which of the two runs:

- the compiled modules, when the build recorded in ``compiled.json`` was made from exactly the sources beside
  them (their SHA-256);
- the sources, for all of them at once, when one source changed after the build (an edit or a checkout without
  ``make venv``) or when ``CXPULSE_PURE_PYTHON=1`` is set. All at once because a compiled module calls its
  compiled siblings directly, not through their Python modules: half a fallback would still run old code.

So a stale build can make cxpulse slower, never make it count differently
(:func:`runs` says which one runs; the worker logs it at start).
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Sequence

_HERE = Path(__file__).resolve().parent


def _sources_to_run() -> tuple[frozenset[str], str | None]:
    """The compiled modules to import from their sources instead, and why (None: the build is used, or there is
    none)."""
    record = _HERE / "compiled.json"
    try:
        sources: dict[str, str] = json.loads(record.read_text(encoding="utf-8"))["sources"]
    except (OSError, ValueError, KeyError, TypeError):
        return frozenset(), None  # not built (a source checkout on PYTHONPATH, a pure-Python install)
    names = frozenset(sources)
    if os.environ.get("CXPULSE_PURE_PYTHON") == "1":
        return names, "CXPULSE_PURE_PYTHON=1"
    for name, digest in sorted(sources.items()):
        source = _HERE / f"{name.rpartition('.')[2]}.py"
        try:
            current = hashlib.sha256(source.read_bytes()).hexdigest()
        except OSError:
            return frozenset(), None  # an install without the sources: the build is all there is
        if current != digest:
            return names, f"{source.name} changed after the core was compiled (make venv compiles it again)"
    return frozenset(), None


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Imports the named modules from their ``.py`` files, ahead of the compiled extension beside them."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        return importlib.util.spec_from_file_location(fullname, _HERE / f"{fullname.rpartition('.')[2]}.py")


_PURE, WHY_SOURCES = _sources_to_run()
if _PURE:
    sys.meta_path.insert(0, _SourceFinder(_PURE))


def runs() -> str:
    """``compiled`` or ``sources`` (with the reason): which KPI core this process runs (imports the core)."""
    from cxpulse.core import processors

    if Path(processors.__file__ or "").suffix == ".py":
        return f"sources ({WHY_SOURCES})" if WHY_SOURCES else "sources (not compiled)"
    return "compiled"
