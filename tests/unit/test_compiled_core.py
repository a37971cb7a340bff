"""The KPI core compiled with mypyc (``setup.py``) and its sources: which one runs, and that both count alike.

``make venv`` compiles the core's per-event modules; ``cxpulse/core/__init__.py`` runs the sources instead when
one of them changed after the build, or with ``CXPULSE_PURE_PYTHON=1``. These tests pin that: the test run itself
uses the build (so CI exercises the compiled code, not a silent fallback), an edited source switches every
module to the sources, and a replay prints the same document either way.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from cxpulse import core

ROOT = Path(__file__).resolve().parents[2]


def _compiled_list() -> list[str]:
    """``COMPILED`` of setup.py, read without running it."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "COMPILED" for t in node.targets):
            return [elt.value for elt in node.value.elts]  # type: ignore[attr-defined]
    raise AssertionError("setup.py has no COMPILED list")


def _child(code: str, pythonpath: Path | None = None, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k not in ("CXPULSE_PURE_PYTHON", "PYTHONPATH")} | env
    if pythonpath is not None:
        environ["PYTHONPATH"] = str(pythonpath)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/",
                          env=environ)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_this_run_uses_the_compiled_core_for_every_listed_module() -> None:
    assert core.runs() == "compiled", "make venv compiles the core (gcc and Python's headers: make deps)"
    listed = _compiled_list()
    assert "cxpulse/core/processors.py" in listed and len(listed) >= 7
    for path in listed:
        module = __import__(path[:-3].replace("/", "."), fromlist=["_"])
        assert Path(module.__file__).suffix == ".so", module.__file__
    record = json.loads((ROOT / "cxpulse" / "core" / "compiled.json").read_text(encoding="utf-8"))
    assert sorted(record["sources"]) == sorted(p[:-3].replace("/", ".") for p in listed)


def test_an_edited_source_runs_every_module_from_its_source(tmp_path: Path) -> None:
    """A copy of the built package: as built it runs compiled; one source edited (a comment added) and every
    compiled module comes from its ``.py``, the edited one and the others alike."""
    shutil.copytree(ROOT / "cxpulse", tmp_path / "cxpulse", ignore=shutil.ignore_patterns("__pycache__"))
    for runtime in ROOT.glob("cxpulse_core__mypyc*.so"):
        shutil.copy2(runtime, tmp_path / runtime.name)
    probe = ("import cxpulse.core as core, cxpulse.core.aggregates as a, cxpulse.core.processors as p; "
             "print(core.runs(), a.__file__.rsplit('.', 1)[1], p.__file__.rsplit('.', 1)[1])")
    assert _child(probe, tmp_path) == "compiled so so"
    contact = tmp_path / "cxpulse" / "core" / "contact.py"
    contact.write_text(contact.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    assert _child(probe, tmp_path) == (
        "sources (contact.py changed after the core was compiled (make venv compiles it again)) py py")
    assert _child(probe, tmp_path, CXPULSE_PURE_PYTHON="1") == "sources (CXPULSE_PURE_PYTHON=1) py py"


def test_a_replay_prints_the_same_document_compiled_and_from_the_sources(tmp_path: Path) -> None:
    """Two simulated hours of the shipped centre (surveys, follow-ups, transfers, abandons) through ``cxpulse
    replay --json``: the compiled core and the sources print the same document and the same counts."""
    events = tmp_path / "events.jsonl"
    cli = [sys.executable, "-m", "cxpulse.cli"]
    made = subprocess.run([*cli, "simulate", "--fast", "--seed", "5", "--duration", "2h", "--out", str(events)],
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    assert len(events.read_text(encoding="utf-8").splitlines()) > 500
    printed = {}
    for pure in ("0", "1"):
        done = subprocess.run([*cli, "replay", "--json", "--no-progress", str(events)], capture_output=True,
                              text=True, timeout=300, env=os.environ | {"CXPULSE_PURE_PYTHON": pure})
        assert done.returncode == 0, done.stderr
        printed[pure] = json.loads(done.stdout)
    assert printed["0"] == printed["1"]
    assert printed["0"]["queues"], printed["0"]
