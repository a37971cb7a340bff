"""The wheel a user installs: built from the sources, installed into a fresh virtual environment with only
what its metadata asks for, and run.

Issue 14, "Packaging": dependencies exactly what is imported, and a wheel that installs and runs in a clean
venv. The build uses the dev venv's setuptools (``--no-build-isolation``, declared in the dev extra), the
install takes the runtime dependencies from ``.local/wheelhouse`` (``make wheelhouse``: ``pip download`` of
``[project] dependencies``) with ``--no-index``, so the test is offline and fast after the first download.
A dependency the metadata forgets is not in the fresh venv, so importing every module there fails on it.
The wheel carries the KPI core compiled with mypyc (``setup.py``, with the dev venv's mypy), and the installed
cxpulse must run it.
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = ROOT / ".local" / "wheelhouse"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
VERSION = PYPROJECT["project"]["version"]
# the files a wheel must carry besides Python modules: the wallboard page, the topics' schemas, the default
# simulated centre (each named as in the source tree, so a file added there is checked too)
DATA = ("cxpulse/wallboard/static/*", "cxpulse/models/schemas/*.json", "cxpulse/simulator/centres/*.yaml")

IMPORT_ALL = """
import importlib, pkgutil, sys
import cxpulse
for info in pkgutil.walk_packages(cxpulse.__path__, "cxpulse."):
    importlib.import_module(info.name)
print(cxpulse.__file__)
"""


def run(argv: list[str], timeout: float = 180, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,  # type: ignore[call-overload]
                          **kwargs)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of what the sdist would hold (so nothing of the working tree's build/ or
    egg-info leaks in, and nothing is written into the shared tree)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "setup.py"):
        shutil.copy2(ROOT / name, src / name)
    # without what the working tree's own build left there: the compiled core and its record of sources
    shutil.copytree(ROOT / "cxpulse", src / "cxpulse",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "compiled.json"))
    done = run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "--no-index",
                "-q", "-w", str(tmp / "dist")], timeout=900)  # mypyc compiles the core: a minute or two
    assert done.returncode == 0, done.stdout + done.stderr
    [built] = (tmp / "dist").glob("cxpulse-*.whl")
    return built


def test_the_wheel_carries_the_page_the_schemas_and_the_default_centre(wheel: Path) -> None:
    # a platform wheel: it carries the compiled core (cpython 3.x on this machine's platform)
    assert re.fullmatch(rf"cxpulse-{VERSION}-cp3\d+-cp3\d+-linux_\w+\.whl", wheel.name), wheel.name
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    compiled = [n for n in names if n.endswith(".so")]
    assert any(n.startswith("cxpulse_core__mypyc.") for n in compiled), sorted(compiled)
    # every module the build recorded (setup.py's COMPILED: tests/unit/test_compiled_core.py) is in it, compiled
    recorded = json.loads(archive.read("cxpulse/core/compiled.json"))["sources"]
    assert "cxpulse.core.processors" in recorded
    assert {"cxpulse.core." + n.split("/")[-1].split(".")[0] for n in compiled if n.startswith("cxpulse/core/")} \
        == set(recorded)
    for pattern in DATA:
        files = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob(pattern) if p.is_file())
        assert files, pattern
        missing = [f for f in files if f not in names]
        assert not missing, f"not in the wheel: {missing}"
    for required in ("cxpulse/wallboard/static/index.html", "cxpulse/simulator/centres/default.yaml",
                     "cxpulse/models/schemas/contact-events.schema.json"):
        assert required in names
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "cxpulse").rglob("*.py")}
    assert modules <= names, sorted(modules - names)
    assert not [n for n in names if n.startswith(("tests/", "deploy/", "bench/")) or n.endswith(".pyc")]


def test_the_wheel_metadata_declares_exactly_the_projects_dependencies(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        [meta] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        message = email.parser.Parser().parsestr(archive.read(meta).decode())
        entry_points = archive.read(meta.replace("METADATA", "entry_points.txt")).decode()
    runtime = [r for r in message.get_all("Requires-Dist") if "extra ==" not in r]
    normal = lambda r: str(Requirement(r))  # noqa: E731 (one spelling: names and specifiers sorted)
    assert sorted(map(normal, runtime)) == sorted(map(normal, PYPROJECT["project"]["dependencies"]))
    assert message["Version"] == VERSION and message["Requires-Python"] == ">=3.11"
    assert re.search(r"^cxpulse = cxpulse\.cli:main$", entry_points, re.MULTILINE), entry_points


def test_the_wheel_installs_and_runs_in_a_clean_venv(wheel: Path, tmp_path: Path) -> None:
    assert (WHEELHOUSE / ".complete").is_file(), "no .local/wheelhouse: `make wheelhouse` downloads the dependencies"
    venv = tmp_path / "venv"
    done = run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert done.returncode == 0, done.stderr
    python, cxpulse = venv / "bin" / "python", venv / "bin" / "cxpulse"
    done = run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-compile", "--no-index",
                "--find-links", str(WHEELHOUSE), str(wheel)])
    assert done.returncode == 0, done.stdout + done.stderr
    # outside the source tree, with no CXPULSE_* or PYTHONPATH of this process: only the venv counts
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CXPULSE_", "PYTHON", "VIRTUAL_ENV"))}
    here = {"cwd": tmp_path, "env": env}

    version = run([str(cxpulse), "--version"], **here)
    assert (version.returncode, version.stdout.strip()) == (0, f"cxpulse {VERSION}"), version.stderr
    helped = run([str(cxpulse), "--help"], **here)
    assert helped.returncode == 0, helped.stderr
    for command in ("worker", "wallboard", "simulate", "produce", "replay", "schema"):
        assert re.search(rf"│ {command}\b", helped.stdout), (command, helped.stdout)

    imported = run([str(python), "-c", IMPORT_ALL], **here)
    assert imported.returncode == 0, imported.stderr  # a missing dependency fails here
    core = run([str(python), "-c", "import cxpulse.core as core; print(core.runs())"], **here)
    assert (core.returncode, core.stdout.strip()) == (0, "compiled"), core.stdout + core.stderr
    assert Path(imported.stdout.strip()).is_relative_to(venv), imported.stdout
    installed = Path(imported.stdout.strip()).parent
    for pattern in DATA:
        assert {p.name for p in (ROOT / "cxpulse").glob(pattern.removeprefix("cxpulse/"))} == \
               {p.name for p in installed.glob(pattern.removeprefix("cxpulse/"))}, pattern

    # the default centre, read from the installed package, drives the simulator
    out = tmp_path / "events.jsonl"
    simulated = run([str(cxpulse), "simulate", "--fast", "--seed", "3", "--duration", "10m", "--out", str(out)], **here)
    assert simulated.returncode == 0, simulated.stdout + simulated.stderr
    assert len(out.read_text(encoding="utf-8").splitlines()) > 20
