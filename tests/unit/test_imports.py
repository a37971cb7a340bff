"""No import circle between the worker and what it feeds (issue 9, "Structure").

``sinks/redis_sink.py`` and ``streams/web.py`` once imported ``streams/app.py`` while it imported them. Now they
take what they read, so each must import with the worker's modules made unimportable; and each module of
``cxpulse.streams`` and ``cxpulse.sinks`` must import first, alone, in a fresh interpreter (a circle shows up
as a partly initialised module only when its import starts from the wrong end). The core must not reach into
``cxpulse.streams`` at all.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import cxpulse.core
import cxpulse.sinks
import cxpulse.streams

# the modules that make up the worker: what a sink or the HTTP routes must not need
WORKER_MODULES = ("cxpulse.streams.app", "cxpulse.streams.worker", "cxpulse.streams.agents",
                  "cxpulse.streams.recovery", "cxpulse.streams.timers")


def _modules(package: object) -> list[str]:
    return sorted(info.name for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."))  # type: ignore[attr-defined]


def _import_alone(module: str, blocked: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Import ``module`` first thing in a fresh interpreter, with ``blocked`` modules unimportable."""
    code = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in blocked) + f"import {module}\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("module", _modules(cxpulse.streams) + _modules(cxpulse.sinks))
def test_each_module_imports_first_and_alone(module: str) -> None:
    done = _import_alone(module)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("module", [*_modules(cxpulse.sinks), "cxpulse.streams.web"])
def test_sinks_and_routes_do_not_import_the_worker(module: str) -> None:
    done = _import_alone(module, blocked=WORKER_MODULES)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("module", _modules(cxpulse.core))
def test_the_core_does_not_import_streams(module: str) -> None:
    done = _import_alone(module, blocked=("cxpulse.streams",))
    assert done.returncode == 0, done.stderr


def test_a_blocked_module_does_fail_to_import() -> None:
    """The check above would pass vacuously if blocking did nothing."""
    done = _import_alone("cxpulse.streams.app", blocked=("cxpulse.streams.worker",))
    assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr
