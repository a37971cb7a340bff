"""The replay's store on disk for settled contacts and customers (``cxpulse/spill.py``): a real RocksDB, behaving
as the dict it replaces, and gone when the replay ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxpulse.spill import SpillStore


def test_a_spill_map_behaves_as_a_dict_of_str_to_bytes(tmp_path: Path) -> None:
    """The same operations on a dict and on a SpillMap give the same answers: set, overwrite, get, pop (present
    and absent), del, membership, len, iteration; many keys (past the 16 MiB memtable, so read back from files)."""
    with SpillStore(tmp_path) as store:
        spilled = store.map("contacts")
        plain: dict[str, bytes] = {}
        for target in (spilled, plain):
            for i in range(40_000):
                target[f"contact-{i}"] = i.to_bytes(8, "big") + b"x" * 500
            target["contact-7"] = b"again"  # overwrite: one key still
            target["ünïcode-id"] = b""
        assert len(spilled) == len(plain) == 40_001
        assert spilled["contact-7"] == b"again" and spilled["ünïcode-id"] == b""
        assert spilled["contact-39999"] == plain["contact-39999"]
        assert spilled.pop("contact-3") == plain.pop("contact-3")
        assert spilled.pop("contact-3", None) is None and "contact-3" not in spilled
        assert spilled.pop("never", b"d") == b"d" and spilled.get("never") is None
        del spilled["contact-4"], plain["contact-4"]
        with pytest.raises(KeyError):
            del spilled["contact-4"]
        with pytest.raises(KeyError):
            spilled["contact-4"]
        assert "contact-5" in spilled and 5 not in spilled
        assert len(spilled) == len(plain) == 39_999
        assert sorted(spilled) == sorted(plain)
        assert dict(spilled.items()) == plain
        root = store.root
        assert root.parent == tmp_path and (root / "contacts").is_dir()
    assert not root.exists(), "the replay's store outlived it"
