"""The KPI core's hot modules compiled to C with mypyc; everything else is in pyproject.toml.

Why: every event of a replay and of a worker runs through these modules (the contact's lifecycle, the facts it
changes, the sums they go to, the FCR customers), and after the redesign no single function stood above 7% of
the time: what was left was the interpreter itself. mypyc (part of mypy, which compiles mypy and black) turns
the same type-hinted Python into a C extension, about 1.3x faster on the replay without a change to the code
(docs/performance.md, session 14). The sources stay the reference: an interpreter without a compiler, or
``CXPULSE_PURE_PYTHON=1`` at build time, installs the very same modules as Python (the extensions are
optional), and ``cxpulse/core/__init__.py`` falls back to the source of a module whose compiled copy is older
than it (an edit without a rebuild), so a stale build can slow cxpulse down but never change a figure.

Which modules: those of the per-event path that hold no class pickled as a frozen record (those live in
``cxpulse/core/outcomes.py``) and that no test spies on by replacing a function. The list is
:data:`COMPILED`; ``make venv`` rebuilds when one of them changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from setuptools import setup

COMPILED = [
    "cxpulse/core/aggregates.py",
    "cxpulse/core/contact.py",
    "cxpulse/core/customer.py",
    "cxpulse/core/distinct.py",
    "cxpulse/core/future.py",
    "cxpulse/core/measures.py",
    "cxpulse/core/processors.py",
]


def _extensions() -> list:
    if os.environ.get("CXPULSE_PURE_PYTHON") == "1":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:  # a build without mypy (e.g. --no-build-isolation in a venv without it): pure Python
        print("setup.py: mypy is not installed, the KPI core stays pure Python", file=sys.stderr)
        return []
    _record_sources()
    flags = ["--follow-imports=silent", "--ignore-missing-imports"]  # type-check the compiled modules only
    # group_name: the shared library is cxpulse_core__mypyc, whatever the list (by default its name is a hash of
    # the list, which an editable install maps once: a changed list would then not import)
    extensions = mypycify([*flags, *COMPILED], opt_level="3", debug_level="0", group_name="cxpulse_core")
    for extension in extensions:
        extension.optional = True  # no C compiler: a warning, and the pure-Python modules are used
    return extensions


def _record_sources() -> None:
    """Which source each compiled module was built from (its SHA-256), in ``cxpulse/core/compiled.json``: the
    package compares it at import and uses the sources instead of a build they no longer match."""
    here = Path(__file__).resolve().parent
    sources = {
        path[:-3].replace("/", "."): hashlib.sha256((here / path).read_bytes()).hexdigest() for path in COMPILED
    }
    (here / "cxpulse" / "core" / "compiled.json").write_text(json.dumps({"sources": sources}, indent=1) + "\n")


setup(ext_modules=_extensions())
