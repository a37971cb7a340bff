"""When the worker reads a checkpoint back, and when it rebuilds from the tables instead (cxpulse.streams.checkpoint).

A checkpoint is only a faster start: read back when it certainly describes the tables as they are, and never
twice. These pin each reason to refuse it, with the reason the log gives.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cxpulse.settings import Settings
from cxpulse.streams.checkpoint import CheckpointStore, fingerprint, offsets_now

OFFSETS = {0: 41, 1: None, 2: 7}


def store(tmp_path: Path, mark: str = "same") -> CheckpointStore:
    return CheckpointStore(tmp_path / "checkpoints", mark)


def test_read_back_once_when_everything_matches(tmp_path: Path) -> None:
    path = store(tmp_path).save("contacts", OFFSETS, b"state" * 1000)
    assert path.exists() and not path.with_suffix(".partial").exists()
    assert store(tmp_path).take("contacts", dict(OFFSETS)) == (b"state" * 1000, "checkpoint")
    assert not path.exists()  # the state goes on changing from here: never read twice
    assert store(tmp_path).take("contacts", dict(OFFSETS)) == (None, "no checkpoint")


@pytest.mark.parametrize(("offsets", "why"), [
    ({0: 41, 1: None, 2: 8}, "the table changed since it was written (partitions [2])"),
    ({0: 41, 1: 0, 2: 7}, "the table changed since it was written (partitions [1])"),
    ({0: 41, 1: None}, "it holds partitions [0, 1, 2], this worker owns [0, 1]"),
    ({0: 41, 1: None, 2: 7, 3: None}, "it holds partitions [0, 1, 2], this worker owns [0, 1, 2, 3]"),
])
def test_refused_when_the_table_or_the_partitions_differ(tmp_path: Path, offsets: dict[int, Any], why: str) -> None:
    path = store(tmp_path).save("customers", OFFSETS, b"x")
    assert store(tmp_path).take("customers", offsets) == (None, why)
    assert not path.exists()


def test_a_state_written_as_it_is_made_reads_back_as_the_same_bytes(tmp_path: Path) -> None:
    """The worker hands ``save`` a function that writes the state to the file (no copy of it in memory); the
    header, written again once the size is known, keeps its length, and the file is the one bytes would give."""
    state = bytes(range(256)) * 300

    def write(handle: Any) -> None:
        for at in range(0, len(state), 1000):
            handle.write(state[at:at + 1000])

    streamed = store(tmp_path / "a").save("contacts", OFFSETS, write, "era-1")
    whole = store(tmp_path / "b").save("contacts", OFFSETS, state, "era-1")
    assert streamed.read_bytes() == whole.read_bytes()
    assert store(tmp_path / "a").open("contacts", dict(OFFSETS))[0] == state
    streamed.write_bytes(streamed.read_bytes()[:-1])
    assert store(tmp_path / "a").take("contacts", OFFSETS) == (None, f"it is cut short ({len(state) - 1} of "
                                                                      f"{len(state)} bytes)")


def test_the_live_state_written_to_a_file_is_its_checkpoint(tmp_path: Path) -> None:
    """``LiveKpis.write_checkpoint`` writes exactly the bytes of ``LiveKpis.checkpoint`` (the worker's path and
    the one the tests read back)."""
    import io

    from cxpulse.core.live import LiveKpis
    from cxpulse.settings import KpiSettings
    live = LiveKpis(KpiSettings())
    live.contacts(0), live.contacts(3), live.customers(1)
    for side in ("contacts", "customers"):
        buffer = io.BytesIO()
        live.write_checkpoint(side, buffer)
        assert buffer.getvalue() == live.checkpoint(side)


def test_refused_when_the_settings_or_the_code_changed(tmp_path: Path) -> None:
    store(tmp_path, "old").save("agents", OFFSETS, b"x")
    assert store(tmp_path, "new").take("agents", OFFSETS) == (
        None, "the settings or the code changed since it was written")


def test_a_file_cut_short_or_unreadable_is_refused(tmp_path: Path) -> None:
    path = store(tmp_path).save("contacts", OFFSETS, b"0123456789")
    path.write_bytes(path.read_bytes()[:-3])
    assert store(tmp_path).take("contacts", OFFSETS) == (None, "it is cut short (7 of 10 bytes)")
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"not a pickle")
    data, why = store(tmp_path).take("contacts", OFFSETS)
    assert data is None and why.startswith("it cannot be read")
    assert not path.exists()


def test_the_fingerprint_follows_the_kpi_settings_and_the_partitions() -> None:
    base = fingerprint(Settings())
    assert fingerprint(Settings()) == base
    assert fingerprint(Settings.model_validate({"kpi": {"fcr_window": 3 * 86_400}})) != base
    assert fingerprint(Settings.model_validate({"kafka": {"partitions": 3}})) != base
    # what does not change a figure does not throw the checkpoint away
    assert fingerprint(Settings.model_validate({"worker": {"web_port": 7777}})) == base


def test_the_fingerprint_tells_the_compiled_core_from_its_sources() -> None:
    """The compiled core and its sources pickle the same state differently (classes compiled by mypyc): a
    checkpoint written by one is not read by the other. The child runs the sources (CXPULSE_PURE_PYTHON=1)."""
    import os
    import subprocess
    import sys

    from cxpulse import core

    assert core.runs() == "compiled"
    code = "from cxpulse.settings import Settings; from cxpulse.streams.checkpoint import fingerprint; " \
           "print(fingerprint(Settings()))"
    printed = {}
    for pure in ("0", "1"):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              env=os.environ | {"CXPULSE_PURE_PYTHON": pure})
        assert done.returncode == 0, done.stderr
        printed[pure] = done.stdout.strip()
    assert printed["0"] == fingerprint(Settings())
    assert printed["1"] != printed["0"] and len(printed["1"]) == 64


def test_offsets_at_the_stop_are_the_last_acknowledged_else_the_recovered() -> None:
    written = {0: 50, 2: 3}  # partition 2: acknowledged before a rebalance, since then rewritten by another worker
    writer = SimpleNamespace(persisted=written.get)
    assert offsets_now({0: 41, 1: None, 2: 7}, writer) == {0: 50, 1: None, 2: 7}
    assert offsets_now({0: None}, SimpleNamespace(persisted={0: 0}.get)) == {0: 0}
