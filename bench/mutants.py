"""Mutation run over ``cxpulse/core`` and ``cxpulse/models``: does some unit test fail for each small change?

Usage (``make mutants`` runs the first line)::

    .venv/bin/python bench/mutants.py --equivalent docs/mutation-equivalent.txt
    .venv/bin/python bench/mutants.py --only cxpulse/core/contact.py --jobs 2
    .venv/bin/python bench/mutants.py --list            # the mutants and their ids, nothing run

Why hand-written (stdlib only) rather than mutmut: the project needs ids that stay the same while the code
around them changes (so ``docs/mutation-equivalent.txt`` stays valid), the working tree must never be touched
(four developers share it), and the run must be cheap on a shared 2-core machine. So:

* **Never the working tree.** The package, the tests, ``docs/``, ``config/``, ``deploy/`` and ``pyproject.toml`` are copied
  once per run into a temporary directory per worker; a mutant is written into that copy only, and pytest
  runs with the copy as working directory and ``PYTHONPATH``. Two sanity checks prove it before any mutant:
  the unmutated copy passes, and a copy with deliberately broken ``cxpulse/core/__init__.py`` and
  ``cxpulse/models/__init__.py`` fails with that very breakage.
* **Stable ids.** ``<file>::<function qualname>::<hash of the function's AST>#<site index in the function>``:
  line numbers, comments and edits elsewhere do not move an id; a change to the function itself does (an
  equivalence argued for the old code has to be argued again).
* **Cheap.** A baseline run records, per test, the lines of the package it executes
  (``bench/mutants_plugin.py``). A mutant runs only the tests that execute its lines, fastest first, with
  ``-x``; a mutant on a line no test runs survives without a pytest run. Module-level sites (and code run
  while test modules are imported) get every selected test. Hypothesis example counts are cut through
  ``CXPULSE_PROPERTY_EXAMPLES`` (default 60 here). A fork server per worker imports pytest, hypothesis and
  pydantic once (never ``cxpulse``) and forks one child per mutant; ``--no-fork`` runs a plain
  ``python -m pytest`` subprocess instead.

Mutation operators, one mutant per site: comparison boundary/negation (``<``/``<=``, ``>``/``>=``,
``==``/``!=``, ``is``/``is not``, ``in``/``not in``); integer constant ``n -> n-1`` (``0 -> 1``), the other side
of a boundary than the comparison flip; ``and``/``or`` swap; ``not`` removal; ``+``/``-`` swap (also in ``+=``
and ``-=``); ``max``/``min`` swap; ``True``/``False`` swap; ``continue``/``break`` removal; an early ``return``
directly inside an ``if`` removed. Annotations, decorators, docstrings, ``raise`` statements (messages) and
``__all__`` are not mutated.

Exit status: 0 when no non-equivalent mutant survives, 1 when some do, 2 when a sanity check fails.
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import json
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
TARGET_DIRS = ("cxpulse/core", "cxpulse/models")
COPIED = ("cxpulse", "tests", "docs", "config", "deploy", "pyproject.toml")  # deploy: test_definitions renders rules
# fast, hand-computed files first: with -x most mutants die there before the property tests start
TEST_FILES = (
    "tests/unit/test_core_mutants.py",
    "tests/unit/test_kpi_pinned.py",
    "tests/unit/test_kpi_edges.py",
    "tests/unit/test_live_state.py",
    "tests/unit/test_event_models.py",
    "tests/unit/test_wire.py",  # the msgspec decoder of cxpulse/models/wire.py against the pydantic models
    "tests/unit/test_settings.py",
    "tests/unit/test_schemas.py",
    "tests/unit/test_kpi_document.py",
    "tests/unit/test_kpi_oracle.py",
    "tests/unit/test_kpi_properties.py",
    # contract v2's agent side: the core's agents / agent_report / staffing / erlang and models/agent_events
    # are tested in files not named after their module
    "tests/unit/test_agents.py",
    "tests/unit/test_agent_event_model.py",
    "tests/unit/test_agent_metrics.py",
    "tests/unit/test_erlang_c.py",
    "tests/unit/test_replay_memory.py",  # distinct.py's pruning and the replay's memory rules
    "tests/unit/test_checkpoint.py",  # checkpoint.py and LiveKpis.checkpoint / load_checkpoint (issue 9: restart)
    "tests/unit/test_future_facts.py",  # future.py against a dict (the FCR closing facts)
    "tests/unit/test_checkpoint_tail.py",  # the processors' catch_up (a start after a kill -9: checkpoint + log)
    "tests/unit/test_aggregates_pruned.py",  # facts in buckets a prune has passed (Aggregates._fold_pruned)
    "tests/unit/test_due_queue.py",  # due_queue.py against a plain heap
)
PYTEST_ARGS = ("-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--timeout=0", "--hypothesis-seed=0",
               "-W", "ignore::pytest.PytestAssertRewriteWarning")
RETRY_SLACK = 4.0  # a timed-out mutant runs once more with this many times its time budget
SANITY_MARK = "cxpulse-mutants sanity check: the broken copy is the one imported"
# imported by the fork server before it forks; never a module under cxpulse/core or cxpulse/models (those must
# come from the copy, mutated). cxpulse.settings imports neither and costs ~0.15 s per run, so it is preloaded.
PRELOAD = (
    "pytest", "_pytest.assertion.rewrite", "_pytest.python", "_pytest.fixtures", "pytest_asyncio",
    "pytest_timeout", "hypothesis", "hypothesis.strategies", "_hypothesis_pytestplugin", "pydantic",
    "pydantic_settings", "pydantic_core", "orjson", "msgspec", "yaml", "numpy", "prometheus_client", "zoneinfo",
    "asyncio", "aiokafka", "redis", "jsonschema", "cxpulse.settings",
)


# -- mutants -------------------------------------------------------------------------------------------
_FLIP: dict[type, type] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In,
}
_OP_TEXT: dict[type, str] = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is",
    ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in", ast.Add: "+", ast.Sub: "-", ast.And: "and",
    ast.Or: "or",
}


@dataclass(slots=True)
class Mutant:
    """One change at one site: where, what, and (after the run) what the tests made of it."""

    id: str
    file: str  # relative to the repository, e.g. cxpulse/core/contact.py
    line: int
    change: str
    source_line: str
    path: tuple[Any, ...]  # how to find the node again in a fresh parse: (scope node index path, site index)
    status: str = "pending"  # killed | survived | timeout | uncovered | error
    seconds: float = 0.0
    tests: int = 0
    detail: str = ""


@dataclass(slots=True)
class _Site:
    node: ast.AST
    change: str
    line: int
    end_line: int
    apply: Any  # callable(node) -> replacement node (or None when the node is mutated in place)


def _scopes(tree: ast.Module) -> Iterator[tuple[str, ast.AST, list[ast.AST]]]:
    """(qualname, scope node, the nodes of that scope to search for sites), functions nested in their own scope.

    Module- and class-level statements are each their own scope (named ``<module>:<n>`` / ``Class:<n>`` by
    the statement's own hash, below), so a new import does not renumber anything."""

    def walk(body: list[ast.stmt], prefix: str) -> Iterator[tuple[str, ast.AST, list[ast.AST]]]:
        for stmt in body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{stmt.name}"
                yield name, stmt, [stmt]
                yield from walk_nested(stmt, name + ".")
            elif isinstance(stmt, ast.ClassDef):
                yield from walk(stmt.body, f"{prefix}{stmt.name}.")
            else:
                yield f"{prefix}<stmt>", stmt, [stmt]

    def walk_nested(func: ast.AST, prefix: str) -> Iterator[tuple[str, ast.AST, list[ast.AST]]]:
        for node in ast.walk(func):
            if node is func:
                continue
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _parent_function(func, node) is func:
                name = f"{prefix}{node.name}"
                yield name, node, [node]
                yield from walk_nested(node, name + ".")

    yield from walk(tree.body, "")


def _parent_function(root: ast.AST, target: ast.AST) -> ast.AST | None:
    """The innermost function of ``root`` (or ``root``) that contains ``target``."""
    stack: list[tuple[ast.AST, ast.AST]] = [(root, root)]
    while stack:
        node, owner = stack.pop()
        for child in ast.iter_child_nodes(node):
            if child is target:
                return owner
            inner = child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) else owner
            stack.append((child, inner))
    return None


def _skip_fields(node: ast.AST) -> set[str]:
    """Fields never mutated: annotations (types, not behaviour)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {"returns", "decorator_list"}  # decorators configure (slots, caches), they are not KPI rules
    if isinstance(node, ast.arg):
        return {"annotation"}
    if isinstance(node, ast.AnnAssign):
        return {"annotation"}
    return set()


def _site_nodes(scope: ast.AST) -> Iterator[tuple[ast.AST, ast.AST | None, list[ast.AST]]]:
    """Nodes of ``scope`` in a fixed order (depth first, fields in AST order), nested functions left out,
    with their parent and the chain of ancestors."""

    def visit(node: ast.AST, parent: ast.AST | None, chain: list[ast.AST]) -> Iterator[tuple[ast.AST, ast.AST | None, list[ast.AST]]]:
        yield node, parent, chain
        if _is_docstring(node, parent) or _is_dunder_all(node) or _is_type_checking(node) or isinstance(node, ast.Raise):
            return  # a raise builds an error message (its wording is not a KPI rule); whether it raises is the if above
        skip = _skip_fields(node)
        for name, value in ast.iter_fields(node):
            if name in skip:
                continue
            children = value if isinstance(value, list) else [value]
            for child in children:
                if not isinstance(child, ast.AST):
                    continue
                if child is not scope and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    continue  # its own scope
                yield from visit(child, node, chain + [node])

    yield from visit(scope, None, [])


def _is_docstring(node: ast.AST, parent: ast.AST | None) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _is_dunder_all(node: ast.AST) -> bool:
    return isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _sites(scope: ast.AST) -> list[_Site]:
    """Every mutation site of one scope, in a fixed order."""
    out: list[_Site] = []
    for node, parent, chain in _site_nodes(scope):
        line = getattr(node, "lineno", 0)
        end = getattr(node, "end_lineno", line) or line
        if isinstance(node, ast.Compare):
            for index, op in enumerate(node.ops):
                flipped = _FLIP.get(type(op))
                if flipped is None:
                    continue
                text = f"`{_OP_TEXT[type(op)]}` -> `{_OP_TEXT[flipped]}`"

                def apply(n: ast.AST, index: int = index, flipped: type = flipped) -> None:
                    n.ops[index] = flipped()  # type: ignore[attr-defined]

                out.append(_Site(node, text, line, end, apply))
        elif isinstance(node, ast.BoolOp):
            other = ast.Or if isinstance(node.op, ast.And) else ast.And

            def apply(n: ast.AST, other: type = other) -> None:
                n.op = other()  # type: ignore[attr-defined]

            out.append(_Site(node, f"`{_OP_TEXT[type(node.op)]}` -> `{_OP_TEXT[other]}`", line, end, apply))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            out.append(_Site(node, "`not` removed", line, end, lambda n: n.operand))
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, (ast.Add, ast.Sub)):
            if isinstance(node, ast.BinOp) and _is_str_concat(node):
                continue
            other = ast.Sub if isinstance(node.op, ast.Add) else ast.Add
            sign = "=" if isinstance(node, ast.AugAssign) else ""

            def apply(n: ast.AST, other: type = other) -> None:
                n.op = other()  # type: ignore[attr-defined]

            out.append(_Site(node, f"`{_OP_TEXT[type(node.op)]}{sign}` -> `{_OP_TEXT[other]}{sign}`", line, end, apply))
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            new = not node.value
            out.append(_Site(node, f"`{node.value}` -> `{new}`", line, end, lambda n, new=new: ast.Constant(new)))
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            if isinstance(parent, ast.JoinedStr) or isinstance(parent, ast.FormattedValue):
                continue
            new_int = node.value - 1 if node.value != 0 else 1
            out.append(_Site(node, f"`{node.value}` -> `{new_int}`", line, end, lambda n, v=new_int: ast.Constant(v)))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("max", "min"):
            other_name = "min" if node.func.id == "max" else "max"

            def apply(n: ast.AST, other_name: str = other_name) -> None:
                n.func = ast.Name(other_name, ast.Load())  # type: ignore[attr-defined]

            out.append(_Site(node, f"`{node.func.id}` -> `{other_name}`", line, end, apply))
        elif isinstance(node, (ast.Continue, ast.Break)):
            word = "continue" if isinstance(node, ast.Continue) else "break"
            out.append(_Site(node, f"`{word}` removed", line, end, lambda n: ast.Pass()))
        elif isinstance(node, ast.Return) and isinstance(parent, ast.If) and node in parent.body:
            out.append(_Site(node, "early `return` removed", line, end, lambda n: ast.Pass()))
    return out


def _is_str_concat(node: ast.BinOp) -> bool:
    return any(isinstance(side, (ast.JoinedStr,)) or (isinstance(side, ast.Constant) and isinstance(side.value, str))
               for side in (node.left, node.right))


def _digest(node: ast.AST) -> str:
    return hashlib.sha1(ast.dump(node, include_attributes=False).encode("utf-8")).hexdigest()[:8]


def mutants_of(rel: str, source: str) -> list[Mutant]:
    """Every mutant of one file, with its stable id."""
    tree = ast.parse(source)
    lines = source.splitlines()
    out: list[Mutant] = []
    for scope_index, (qualname, scope, _) in enumerate(_scopes(tree)):
        digest = _digest(scope)
        for site_index, site in enumerate(_sites(scope)):
            short = rel.removeprefix("cxpulse/")
            mutant_id = f"{short}::{qualname}::{digest}#{site_index}"
            text = lines[site.line - 1].strip() if 0 < site.line <= len(lines) else ""
            out.append(Mutant(mutant_id, rel, site.line, site.change, text, (scope_index, site_index, site.end_line)))
    # module-level statements share the qualname "<stmt>": ids differ by digest; identical statements
    # (same digest) would collide, so number the repeats in order
    seen: dict[str, int] = {}
    for mutant in out:
        count = seen.get(mutant.id, 0)
        seen[mutant.id] = count + 1
        if count:
            mutant.id = f"{mutant.id}~{count}"
    return out


def mutated_source(source: str, mutant: Mutant) -> str:
    """The file with just this mutant applied (a fresh parse, so mutants never leak into each other)."""
    tree = ast.parse(source)
    scope_index, site_index, _ = mutant.path
    scope = list(_scopes(tree))[scope_index][1]
    site = _sites(scope)[site_index]
    replacement = site.apply(site.node)
    if replacement is not None:
        _replace(tree, site.node, replacement)
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, name, new)
                return
            if isinstance(value, list):
                for index, item in enumerate(value):
                    if item is old:
                        value[index] = new
                        return
    raise RuntimeError("mutation site not found")


# -- copies and runners -----------------------------------------------------------------------------------
def make_copy(dest: Path, source_root: Path, rev: str | None = None) -> None:
    """The parts of the repository the selected tests need, without caches; with ``rev``, the package
    ``cxpulse/`` comes from that git revision (a half-saved edit in the shared working tree cannot break the
    run) and the tests, docs and config from the working tree."""
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache", "*.egg-info", "*.so")
    for name in COPIED:
        src = source_root / name
        if rev is not None and name == "cxpulse":
            archive = subprocess.run(["git", "-C", str(source_root), "archive", rev, "cxpulse"],
                                     check=True, stdout=subprocess.PIPE).stdout
            subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        elif src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / name)


def child_env(copy_dir: Path, examples: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CXPULSE_PROPERTY_", "COV_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(copy_dir), str(BENCH)])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONHASHSEED"] = "0"
    env["CXPULSE_PROPERTY_EXAMPLES"] = str(examples)
    # tests/conftest.py: no example database; with --hypothesis-seed=0 a kill does not depend on the draw or history
    env["CXPULSE_HYPOTHESIS_PROFILE"] = "mutants"
    # the core's sources, never its compiled build (setup.py, mypyc): the baseline traces source lines (compiled
    # code runs none, and every mutant read "uncovered"), and a mutant is a change of a source
    env["CXPULSE_PURE_PYTHON"] = "1"
    return env


@dataclass(slots=True)
class RunResult:
    code: int | None  # pytest's exit code, None when timed out
    seconds: float
    log: str


class SubprocessRunner:
    """``python -m pytest`` in the copy, one process per mutant."""

    def __init__(self, copy_dir: Path, examples: int) -> None:
        self.copy_dir = copy_dir
        self.env = child_env(copy_dir, examples)
        self.current: subprocess.Popen[bytes] | None = None

    def run(self, args: list[str], timeout: float) -> RunResult:
        started = time.monotonic()
        proc = self.current = subprocess.Popen(
            [sys.executable, "-m", "pytest", *args], cwd=self.copy_dir, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
            return RunResult(proc.returncode, time.monotonic() - started, out.decode("utf-8", "replace"))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            return RunResult(None, time.monotonic() - started, out.decode("utf-8", "replace"))

    def close(self) -> None:
        """Kill a run still going (an interrupted mutation run must leave no pytest behind)."""
        if self.current is not None and self.current.poll() is None:
            os.killpg(self.current.pid, signal.SIGKILL)
            self.current.wait()


class ForkRunner:
    """A server process (``--serve``) in the copy that has pytest and its plugins imported and forks a child
    per mutant: about a second less per mutant than a fresh interpreter."""

    def __init__(self, copy_dir: Path, examples: int) -> None:
        self.copy_dir = copy_dir
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve"], cwd=copy_dir, env=child_env(copy_dir, examples),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
        )
        ready = self.proc.stdout.readline() if self.proc.stdout else ""
        if not ready.startswith("ready"):
            raise RuntimeError(f"fork server did not start: {ready!r}")

    def run(self, args: list[str], timeout: float) -> RunResult:
        assert self.proc.stdin and self.proc.stdout
        log = self.copy_dir / "run.log"
        self.proc.stdin.write(json.dumps({"args": args, "timeout": timeout, "log": str(log)}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the fork server is gone")
        answer = json.loads(line)
        text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        return RunResult(answer["code"], answer["seconds"], text)

    def close(self) -> None:
        """Stop the server; SIGTERM makes it kill the child it is waiting for (children have their own session)."""
        if self.proc.poll() is None:
            assert self.proc.stdin
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()


def serve() -> None:
    """The fork server's loop: one JSON request per line on stdin, one JSON answer per line on stdout."""
    for name in PRELOAD:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a missing optional module only costs its import time later
            pass
    targets = tuple(d.replace("/", ".") for d in TARGET_DIRS)
    leaked = sorted(name for name in sys.modules if name in targets or name.startswith(tuple(t + "." for t in targets)))
    if leaked:
        print(f"error: the fork server imported {leaked}: the mutant would not be the code under test", flush=True)
        sys.exit(2)
    current = [0]

    def stop(signum: int, frame: Any) -> None:
        if current[0]:
            try:
                os.killpg(current[0], signal.SIGKILL)
            except ProcessLookupError:
                pass
        os._exit(143)

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the child: run pytest on the copy, never return into the loop
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.setsid()
                fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                sys.stdin.close()
                import pytest

                code = int(pytest.main(request["args"]))
                sys.stdout.flush()
                sys.stderr.flush()
            except BaseException:  # noqa: BLE001
                import traceback

                traceback.print_exc()
                code = 99
            os._exit(code)
        current[0] = pid
        deadline = started + request["timeout"]
        code: int | None = None
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                code = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:  # the child had not called setsid() yet
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.01)
        current[0] = 0
        print(json.dumps({"code": code, "seconds": time.monotonic() - started}), flush=True)


# -- the run --------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Baseline:
    """What the unmutated copy's tests execute, per test function (parametrized cases merged)."""

    tests: dict[str, float] = field(default_factory=dict)  # "file::function" -> seconds (traced)
    lines: dict[str, dict[str, set[int]]] = field(default_factory=dict)  # test -> file -> lines
    collection: dict[str, set[int]] = field(default_factory=dict)  # file -> lines run at import
    failing: list[str] = field(default_factory=list)


def run_baseline(copy_dir: Path, files: list[str], examples: int) -> Baseline:
    """All selected tests on the unmutated copy, traced; the copy must pass."""
    trace_out = copy_dir / "baseline.json"
    env = child_env(copy_dir, examples)
    env.pop("PYTHONDONTWRITEBYTECODE")  # let this run cache the compiled package and rewritten tests
    env["CXPULSE_MUTANTS_TRACE_OUT"] = str(trace_out)
    env["CXPULSE_MUTANTS_TRACE_DIRS"] = os.pathsep.join(str(copy_dir / d) for d in TARGET_DIRS)
    env["CXPULSE_MUTANTS_TRACE_ROOT"] = str(copy_dir)
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--hypothesis-seed=0",
            "-p", "mutants_plugin", *files]
    proc = subprocess.run(args, cwd=copy_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not trace_out.exists():
        raise SystemExit(f"baseline: pytest wrote no trace (exit {proc.returncode}):\n{proc.stdout[-4000:]}")
    data = json.loads(trace_out.read_text(encoding="utf-8"))
    base = Baseline()
    for nodeid, entry in data["tests"].items():
        func = nodeid.split("[", 1)[0]
        base.tests[func] = base.tests.get(func, 0.0) + entry["seconds"]
        if entry["failed"] and func not in base.failing:
            base.failing.append(func)
        per_file = base.lines.setdefault(func, {})
        for name, numbers in entry.get("lines", {}).items():
            per_file.setdefault(name, set()).update(numbers)
    base.collection = {name: set(numbers) for name, numbers in data["collection"].items()}
    if proc.returncode not in (0, 1):
        raise SystemExit(f"baseline: pytest exit {proc.returncode}:\n{proc.stdout[-4000:]}")
    if not any(name.startswith("cxpulse/") for per in base.lines.values() for name in per):
        raise SystemExit("baseline: no line of the copy's cxpulse ran: the tests do not import the copy")
    return base


def select_tests(base: Baseline, mutant: Mutant, module_level: bool) -> list[str]:
    """Test functions that execute the mutant's lines (all of them for module-level code), fastest first."""
    low, high = mutant.line, mutant.path[2]
    span = set(range(low, high + 1))
    usable = [t for t in base.tests if t not in base.failing]
    if module_level or span & base.collection.get(mutant.file, set()):
        chosen = usable
    else:
        chosen = [t for t in usable if span & base.lines.get(t, {}).get(mutant.file, set())]
    return sorted(chosen, key=lambda t: (base.tests[t], t))


def load_equivalent(path: Path | None) -> dict[str, str]:
    """``<mutant id> <one-line reason>`` per line; ``#`` starts a comment line."""
    if path is None or not path.exists():
        return {}
    out: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        mutant_id, _, reason = line.partition(" ")
        if not reason.strip():
            raise SystemExit(f"{path}:{number}: {mutant_id} has no reason: each equivalent mutant needs one")
        out[mutant_id] = reason.strip()
    return out


def sanity(runner: Any, copy_dir: Path, base: Baseline) -> None:
    """The runner must import the copy: unmutated it passes, broken it fails with the breakage."""
    fastest = sorted((t for t in base.tests if t not in base.failing and "test_kpi_edges" in t), key=base.tests.get)[:3]
    fastest = fastest or sorted((t for t in base.tests if t not in base.failing), key=base.tests.get)[:3]
    ok = runner.run([*PYTEST_ARGS, *fastest], 120)
    if ok.code != 0:
        raise SystemExit(f"sanity: the unmutated copy fails under the runner (exit {ok.code}):\n{ok.log[-3000:]}")
    # every module under test imports one of these packages: breaking both breaks whatever the tests import
    inits = [copy_dir / d / "__init__.py" for d in TARGET_DIRS]
    originals = [p.read_text(encoding="utf-8") for p in inits]
    try:
        for path, original in zip(inits, originals):
            # appended, not prepended: a ``from __future__`` import must stay the module's first statement
            path.write_text(original + f"\nraise RuntimeError({SANITY_MARK!r})\n", encoding="utf-8")
            _drop_pyc(path)
        broken = runner.run([*PYTEST_ARGS, *fastest], 120)
    finally:
        for path, original in zip(inits, originals):
            path.write_text(original, encoding="utf-8")
            _drop_pyc(path)
    if broken.code in (0, None) or SANITY_MARK not in broken.log:
        raise SystemExit(f"sanity: a broken copy did not fail with its breakage (exit {broken.code}): "
                         f"the tests import another cxpulse\n{broken.log[-3000:]}")


def _drop_pyc(path: Path) -> None:
    for pyc in (path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"):
        pyc.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1, help="parallel workers, each with its own copy (default 1)")
    parser.add_argument("--only", action="append", default=[], help="mutate only this file (repeatable)")
    parser.add_argument("--equivalent", type=Path, help="file of mutant ids argued equivalent, one per line with a reason")
    parser.add_argument("--report", type=Path, default=ROOT / "out" / "mutants-report.txt", help="where the survivors go")
    parser.add_argument("--examples", type=int, default=60, help="CXPULSE_PROPERTY_EXAMPLES for the property tests")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per mutant on top of 0.3 x its tests' traced baseline time")
    parser.add_argument("--no-fork", action="store_true", help="a fresh python -m pytest per mutant (slower)")
    parser.add_argument("--id", action="append", default=[], dest="ids",
                        help="run only this mutant, or with no #n every mutant whose id starts with it (repeatable): "
                             "check that a new test kills it")
    parser.add_argument("--check-equivalent", action="store_true",
                        help="also run the mutants argued equivalent (by default they are not run: they cost a full "
                             "run of their tests each and, if the argument holds, cannot be killed)")
    parser.add_argument("--tests", action="append", default=[],
                        help="use only these test files (repeatable; default: the unit tests listed in TEST_FILES)")
    parser.add_argument("--rev", help="take cxpulse/ from this git revision (e.g. HEAD) instead of the working tree")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return 0

    started = time.monotonic()

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM stops a run like Ctrl-C: runs killed, copies removed

    signal.signal(signal.SIGTERM, interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="cxpulse-mutants-"))
    try:
        return _run(args, tmp, started)
    finally:
        if args.keep:
            print(f"copies kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _run(args: argparse.Namespace, tmp: Path, started: float) -> int:
    first = tmp / "w0"
    make_copy(first, ROOT, args.rev)  # one snapshot: the working tree may change under a run, the copy does not
    targets = sorted(p.relative_to(first).as_posix() for d in TARGET_DIRS for p in (first / d).glob("*.py"))
    if args.only:
        wanted = {Path(o).as_posix().removeprefix("./") for o in args.only}
        targets = [t for t in targets if t in wanted or Path(t).name in wanted or t.removeprefix("cxpulse/") in wanted]
        if not targets:
            raise SystemExit(f"--only {args.only}: no such file under {', '.join(TARGET_DIRS)}")
    sources = {t: (first / t).read_text(encoding="utf-8") for t in targets}
    mutants: list[Mutant] = []
    module_level: set[str] = set()
    for rel in targets:
        found = mutants_of(rel, sources[rel])
        tree = ast.parse(sources[rel])
        if ast.dump(ast.parse(ast.unparse(tree))) != ast.dump(tree):
            raise SystemExit(f"{rel}: ast.unparse does not round-trip this file; its mutants would be wrong")
        module_level.update(m.id for m in found if "<stmt>" in m.id.split("::")[1])
        mutants += found
    if args.ids:
        # an id with a site index (``#n``) names one mutant; without, it is a prefix (a file, a function)
        mutants = [m for m in mutants if any(m.id == i or ("#" not in i and m.id.startswith(i)) for i in args.ids)]
        if not mutants:
            raise SystemExit(f"--id {args.ids}: no such mutant (--list shows them)")
    if args.list:
        for m in mutants:
            print(f"{m.id}  {m.file}:{m.line}  {m.change}  | {m.source_line}")
        print(f"{len(mutants)} mutants")
        return 0
    equivalent = load_equivalent(args.equivalent)

    files = [f for f in TEST_FILES if (first / f).exists()]
    files += sorted(p.relative_to(first).as_posix() for p in (first / "tests/unit").glob("test_kpi_*.py")
                    if p.relative_to(first).as_posix() not in files)
    # and the unit test file named after each mutated module (test_wire.py, test_definitions.py, ...)
    files += [f"tests/unit/test_{Path(t).stem}.py" for t in targets
              if (first / f"tests/unit/test_{Path(t).stem}.py").exists() and f"tests/unit/test_{Path(t).stem}.py" not in files]
    if args.tests:
        files = [Path(t).as_posix().removeprefix("./") for t in args.tests]
        missing = [f for f in files if not (first / f).exists()]
        if missing:
            raise SystemExit(f"--tests: no such file {missing}")
    print(f"mutants: {len(mutants)} in {len(targets)} files; tests: {', '.join(Path(f).name for f in files)}", flush=True)
    base = run_baseline(first, files, args.examples)
    if base.failing:
        print(f"WARNING: {len(base.failing)} test(s) fail on the unmutated code and are left out: "
              f"{', '.join(base.failing)}", flush=True)
    print(f"baseline: {len(base.tests)} test functions, {sum(base.tests.values()):.1f} s traced "
          f"({time.monotonic() - started:.0f} s so far)", flush=True)

    copies = [first]
    for index in range(1, max(1, args.jobs)):
        dest = tmp / f"w{index}"
        shutil.copytree(first, dest)
        copies.append(dest)
    make_runner = SubprocessRunner if args.no_fork else ForkRunner
    runners = [make_runner(c, args.examples) for c in copies]
    try:
        sanity(runners[0], first, base)
        print("sanity: the unmutated copy passes, a broken copy fails with its breakage", flush=True)
        todo: queue.Queue[Mutant] = queue.Queue()
        for m in mutants:
            if m.id in equivalent and not args.check_equivalent:
                m.status = "equivalent"
            else:
                todo.put(m)
        done_count = [0]
        slack = [1.0]  # RETRY_SLACK while timed-out mutants run again
        lock = threading.Lock()
        stopping = threading.Event()

        def work(runner: Any, copy_dir: Path) -> None:
            while True:
                try:
                    mutant = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    _one(mutant, runner, copy_dir, sources[mutant.file], base, mutant.id in module_level, args.timeout,
                         slack=slack[0])
                except Exception as exc:  # noqa: BLE001 - a runner gone (interrupted) or broken: stop this worker
                    if stopping.is_set():
                        return
                    mutant.status, mutant.detail = "error", f"{type(exc).__name__}: {exc}"
                with lock:
                    done_count[0] += 1
                    if mutant.status in ("survived", "uncovered", "error") and mutant.id not in equivalent:
                        print(f"  {mutant.status}: {mutant.file}:{mutant.line} {mutant.change}  [{mutant.id}]", flush=True)
                    if done_count[0] % 50 == 0:
                        print(f"[{done_count[0]}/{len(mutants)}] {time.monotonic() - started:.0f} s", flush=True)

        def run_all() -> None:
            threads = [threading.Thread(target=work, args=(r, c), daemon=True) for r, c in zip(runners, copies)]
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(timeout=0.5)

        try:
            run_all()
            # a mutant that merely ran slowly (a module-level one runs every selected test; a loaded machine) is
            # not detected: each timed-out one runs again, on every worker, with RETRY_SLACK times the time; one
            # that loops for ever still times out
            slow = [m for m in mutants if m.status == "timeout"]
            if slow:
                print(f"re-running {len(slow)} timed-out mutant(s) with {RETRY_SLACK:g}x the time", flush=True)
                slack[0] = RETRY_SLACK
                done_count[0] = 0
                for mutant in slow:
                    todo.put(mutant)
                run_all()
        except KeyboardInterrupt:
            print("interrupted: stopping the runs", flush=True)
            stopping.set()
            for r in runners:
                r.close()
            return 130
    finally:
        for r in runners:
            r.close()
    return _summary(args, mutants, equivalent, base, started)


def _one(mutant: Mutant, runner: Any, copy_dir: Path, source: str, base: Baseline, module_level: bool, timeout: float,
         slack: float = 1.0) -> None:
    tests = select_tests(base, mutant, module_level)
    mutant.tests = len(tests)
    if not tests:
        mutant.status = "uncovered"
        return
    target = copy_dir / mutant.file
    try:
        target.write_text(mutated_source(source, mutant), encoding="utf-8")
        _drop_pyc(target)
        # traced times are 5-20 times the real ones: a third of them is still generous, and a mutant that loops
        # forever (a `-=` in a while loop) does not cost minutes
        budget = slack * (timeout + 0.3 * sum(base.tests[t] for t in tests))
        result = runner.run([*PYTEST_ARGS, *tests], budget)
    finally:
        target.write_text(source, encoding="utf-8")
        _drop_pyc(target)
    mutant.seconds = result.seconds
    if result.code is None:
        mutant.status = "timeout"
    elif result.code == 0:
        mutant.status = "survived"
    elif result.code in (1, 2) or (result.code == 4 and "found no collectors" in result.log):
        # tests failed, or the mutated module does not import (pytest says 4 when the named tests' module
        # fails to collect; the same names collected in the baseline)
        mutant.status = "killed"
    else:
        mutant.status = "error"
        mutant.detail = f"pytest exit {result.code}: {result.log[-500:]}"


def _summary(args: argparse.Namespace, mutants: list[Mutant], equivalent: dict[str, str], base: Baseline, started: float) -> int:
    seconds = time.monotonic() - started
    count = {s: sum(1 for m in mutants if m.status == s) for s in ("killed", "survived", "uncovered", "timeout", "error")}
    alive = [m for m in mutants if m.status in ("survived", "uncovered", "error", "equivalent")]
    not_run = sum(1 for m in mutants if m.status == "equivalent")
    argued = [m for m in alive if m.id in equivalent]
    open_ = [m for m in alive if m.id not in equivalent]
    ids = {m.id for m in mutants}
    stale = [i for i in equivalent if i not in ids and not args.ids
             and (not args.only or any(i.startswith(o.removeprefix("cxpulse/")) for o in args.only))]
    lines = [
        f"mutants: {len(mutants)} generated, {count['killed']} killed, {count['timeout']} timed out, "
        f"{len(alive)} survived ({count['uncovered']} on lines no test runs, {count['error']} errors), "
        f"{len(argued)} of them argued equivalent ({not_run} of those not run); {seconds:.0f} s",
    ]
    if open_:
        lines.append(f"{len(open_)} surviving non-equivalent mutant(s):")
        lines += [f"  {m.file}:{m.line}  {m.change}  [{m.id}] ({m.status})  | {m.source_line}" for m in open_]
    else:
        lines.append("no surviving non-equivalent mutant")
    if argued:
        lines.append("equivalent (docs/mutation-equivalent.txt):")
        lines += [f"  {m.file}:{m.line}  {m.change}  [{m.id}]  | {m.source_line}\n      why: {equivalent[m.id]}" for m in argued]
    if stale:
        lines.append("stale equivalence entries (no such mutant any more: the code changed, argue again or remove):")
        lines += [f"  {i}" for i in stale]
    if base.failing:
        lines.append(f"tests failing on the unmutated code, left out: {', '.join(base.failing)}")
    timeouts = [m for m in mutants if m.status == "timeout"]
    wrongly = [m for m in mutants if m.id in equivalent and m.status in ("killed", "timeout")]
    if wrongly:
        lines.append("argued equivalent but killed (remove them from the equivalence list):")
        lines += [f"  {m.file}:{m.line}  {m.change}  [{m.id}]" for m in wrongly]
    if timeouts:
        lines.append("timed out (counted as detected):")
        lines += [f"  {m.file}:{m.line}  {m.change}  [{m.id}]" for m in timeouts]
    text = "\n".join(lines)
    print(text)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text + "\n", encoding="utf-8")
    args.report.with_suffix(".json").write_text(json.dumps(
        [{"id": m.id, "file": m.file, "line": m.line, "change": m.change, "status": m.status,
          "seconds": round(m.seconds, 2), "tests": m.tests} for m in mutants], indent=0), encoding="utf-8")
    print(f"report: {args.report}")
    return 1 if open_ else 0


if __name__ == "__main__":
    sys.exit(main())
