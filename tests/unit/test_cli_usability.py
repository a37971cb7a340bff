"""What a new user trips on first: the CLI's version, its options and one-line errors, and a package whose
declared dependencies are what it imports.

Each test here failed before its fix (issue "Production fit"): ``replay --window 30m`` ended in a KeyError
traceback, ``--version`` did not exist, ``produce`` / ``simulate`` had no ``--config``, ``schema`` rewrote
files inside the installed package, numpy was declared and never imported while aiohttp was imported and
not declared.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cxpulse
from cxpulse.cli import app
from cxpulse.commands.schema import DEFAULT_DIR, DOCUMENT_SCHEMA, all_schemas

ROOT = Path(__file__).resolve().parents[2]
START = "2026-11-23T08:00:00Z"


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 simulated minutes of the shipped centre, enough for a 30-minute window to differ from 15 minutes."""
    out = tmp_path_factory.mktemp("events") / "events.jsonl"
    result = CliRunner().invoke(
        app, ["simulate", "--fast", "--duration", "40m", "--seed", "3", "--start", START, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


def _one_line_error(output: str) -> str:
    """The output of a refused command: exactly one non-empty line, no traceback."""
    lines = [line for line in output.splitlines() if line.strip()]
    assert "Traceback" not in output and "KeyError" not in output, output
    assert len(lines) == 1, output
    return lines[0]


# ------------------------------------------------------------------------------------------------ --version
def test_version_prints_the_package_version(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"cxpulse {cxpulse.__version__}\n"
    assert cxpulse.__version__ == importlib.metadata.version("cxpulse")


def test_help_lists_the_commands_in_the_order_a_user_needs_them(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    listed = re.findall(r"^│ ([a-z][a-z-]+) ", result.output, flags=re.MULTILINE)
    assert listed == [
        "worker", "wallboard", "simulate", "produce", "source", "ingest", "replay", "schema", "import-anonymous-bank",
    ]


# ------------------------------------------------------------------------------------------------ replay --window
def test_replay_computes_a_rolling_window_the_settings_do_not_list(runner: CliRunner, events: Path) -> None:
    result = runner.invoke(app, ["replay", str(events), "--window", "30m", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "KPIs, window '30m'" in result.output


def test_replay_json_document_carries_the_extra_window(runner: CliRunner, events: Path) -> None:
    wide = runner.invoke(app, ["replay", str(events), "--json", "--window", "30m"])
    assert wide.exit_code == 0, wide.output
    document = json.loads(wide.stdout)
    totals = document["totals"]["windows"]
    assert set(totals) == {"15m", "1h", "24h", "today", "30m", "all"}
    # 40 simulated minutes: 30 minutes hold more offered contacts than 15, fewer than the whole file
    assert totals["15m"]["offered"] < totals["30m"]["offered"] < totals["all"]["offered"]


@pytest.mark.parametrize(
    ("window", "reason"),
    [
        ("5m", "--window '5m': bucket_seconds=60 is more than 1/15 of the shortest window (300 s)"),
        ("30 minutes", "--window '30 minutes': not a duration like 60s, 15m, 1h, 7d: '30 minutes'"),
    ],
)
def test_replay_refuses_a_window_it_cannot_compute_in_one_line(
    runner: CliRunner, events: Path, window: str, reason: str
) -> None:
    result = runner.invoke(app, ["replay", str(events), "--window", window, "--no-progress"])
    assert result.exit_code == 2
    assert _one_line_error(result.output) == f"error: {reason} (configured: all, 15m, 1h, 24h, today)"


# ------------------------------------------------------------------------------------------------ --config
@pytest.mark.parametrize("command", ["produce", "simulate"])
def test_produce_and_simulate_read_the_settings_file_given(runner: CliRunner, events: Path, tmp_path: Path,
                                                            command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file's Kafka address is the one tried: port 1 on the loopback refuses at once. (``make test`` exports
    the local stack's address as CXPULSE_KAFKA__BOOTSTRAP_SERVERS, which outranks a file: not here.)"""
    monkeypatch.delenv("CXPULSE_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    config = tmp_path / "centre.yaml"
    config.write_text("kafka:\n  bootstrap_servers: 127.0.0.1:1\n", encoding="utf-8")
    argv = [str(events)] if command == "produce" else ["--fast", "--duration", "1m", "--seed", "1", "--start", START]
    result = runner.invoke(app, [command, *argv, "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert "error: Kafka is not reachable at 127.0.0.1:1" in result.output


@pytest.mark.parametrize("command", ["produce", "simulate"])
def test_a_missing_settings_file_is_one_line(runner: CliRunner, events: Path, tmp_path: Path, command: str) -> None:
    missing = tmp_path / "missing.yaml"
    argv = [str(events)] if command == "produce" else ["--fast", "--seed", "1", "--start", START, "--out",
                                                       str(tmp_path / "x.jsonl")]
    result = runner.invoke(app, [command, *argv, "--config", str(missing)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert _one_line_error(result.stderr) == f"invalid configuration: settings file {str(missing)!r} does not exist"


# ------------------------------------------------------------------------------------------------ schema
def test_schema_prints_and_leaves_the_installed_package_alone(runner: CliRunner) -> None:
    watched = [*sorted(Path(DEFAULT_DIR).glob("*.schema.json")), DOCUMENT_SCHEMA]
    before = {path: path.stat().st_mtime_ns for path in watched}
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    assert {path: path.stat().st_mtime_ns for path in watched} == before
    printed = json.loads(result.stdout)
    assert sorted(printed) == ["contact-events", "kpi-document", "survey-responses"]
    assert printed["kpi-document"] == json.loads(DOCUMENT_SCHEMA.read_text(encoding="utf-8"))


def test_schema_of_one_name_is_the_checked_in_file_byte_for_byte(runner: CliRunner) -> None:
    result = runner.invoke(app, ["schema", "contact-events"])
    assert result.exit_code == 0, result.output
    assert result.stdout == (Path(DEFAULT_DIR) / "contact-events.schema.json").read_text(encoding="utf-8")


def test_schema_out_writes_where_told(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "schemas"
    result = runner.invoke(app, ["schema", "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = {p.name: p.read_text(encoding="utf-8") for p in out.iterdir()}
    assert written == {f"{name}.schema.json": text for name, text in all_schemas().items()}


def test_schema_of_an_unknown_name_is_one_line(runner: CliRunner) -> None:
    result = runner.invoke(app, ["schema", "agent-events-v9"])
    assert result.exit_code == 2
    assert _one_line_error(result.output) == (
        "error: no schema named 'agent-events-v9' (one of contact-events, kpi-document, survey-responses)"
    )


# ------------------------------------------------------------------------------------------------ packaging
# Declared but never imported by name, for a reason: zoneinfo reads its IANA data from tzdata where the system
# has none (slim containers). (rocksdict is imported since the worker's RocksDB budget, streams/rocksdb_budget.py.)
DECLARED_NOT_IMPORTED = {"tzdata"}


def _imported_distributions() -> set[str]:
    """Distributions (normalised names) that provide a top-level module imported anywhere in cxpulse/."""
    modules: set[str] = set()
    for path in (ROOT / "cxpulse").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.partition(".")[0])
    third_party = {m for m in modules if m not in sys.stdlib_module_names and m != "cxpulse"}
    providers = importlib.metadata.packages_distributions()
    unknown = sorted(m for m in third_party if m not in providers)
    assert unknown == [], f"imported but installed by no distribution: {unknown}"
    return {_normalise(dist) for module in third_party for dist in providers[module]}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_dependencies_are_exactly_what_the_package_imports() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_normalise(re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0]) for spec in project["dependencies"]}
    imported = _imported_distributions()
    assert sorted(imported - declared) == [], "imported but not declared in pyproject.toml"
    assert sorted(declared - imported - DECLARED_NOT_IMPORTED) == [], "declared but never imported"
    assert "numpy" not in declared and "aiohttp" in declared
