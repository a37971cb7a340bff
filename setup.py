"""The KPI core's per-event modules compiled to C with mypyc; everything else is in pyproject.toml.

Why: every event of a replay and of a worker runs through these modules (the contact's lifecycle, the facts it
changes, the sums they go to, the FCR customers), and after the redesign no single function stood above 7% of
the time: what was left was the interpreter itself. mypyc (part of mypy, which compiles mypy and black) turns
the same type-hinted Python into a C extension: the replay's core runs 1.4-1.5x faster with the code unchanged
(docs/performance.md, session 14). The sources stay the reference: an interpreter without a compiler, or
``CXPULSE_PURE_PYTHON=1`` at build time, installs the very same modules as Python (the extensions are
optional), and ``cxpulse/core/__init__.py`` runs the sources when one of them changed after the build (an edit
without a rebuild), so a stale build can slow cxpulse down but never change a figure.

Which modules: those every event goes through (:data:`COMPILED`). What compiling asks of them (no instance
``__dict__``, ``ClassVar`` constants, no frozen record that is pickled, annotations checked at run time) is in
docs/live-engine.md, "The compiled core". ``make venv`` compiles again when one of them changes.
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
    "cxpulse/core/due_queue.py",
    "cxpulse/core/engine.py",
    "cxpulse/core/future.py",
    "cxpulse/core/live.py",
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
