"""The store: one folder per key, built once, verified on every read, rebuilt when damaged."""

from __future__ import annotations

from pathlib import Path

from nighttune.tasks.storage.store import Slot


def _builder(calls: list[int]):
    def build(staging: Path) -> dict:
        calls.append(1)
        (staging / "weights.bin").write_bytes(b"w" * 100)
        return {"epochs": 3}

    return build


def test_built_once_then_found(tmp_path) -> None:
    calls: list[int] = []
    slot = Slot(tmp_path, "trials", "b32", {"lr": 0.01})
    assert slot.read() is None
    first = slot.get_or_build(_builder(calls))
    again = slot.get_or_build(_builder(calls))
    assert (first.hit, again.hit, len(calls)) == (False, True, 1)
    assert first.path == again.path == slot.path and again.data == {"epochs": 3}
    assert set(again.files) == {"weights.bin"}


def test_another_key_is_another_folder(tmp_path) -> None:
    one = Slot(tmp_path, "trials", "b32", {"lr": 0.01}).path
    other = Slot(tmp_path, "trials", "b32", {"lr": 0.02}).path
    assert one != other and one.parent == other.parent == tmp_path / "trials"
    assert Slot(tmp_path, "trials", "../../x", {}).path.parent == tmp_path / "trials"


def test_a_damaged_entry_is_not_read_and_is_rebuilt(tmp_path) -> None:
    calls: list[int] = []
    slot = Slot(tmp_path, "sweeps", "b64", {"steps": 10})
    entry = slot.get_or_build(_builder(calls))
    (entry.path / "weights.bin").write_bytes(b"short")
    assert slot.read() is None
    rebuilt = slot.get_or_build(_builder(calls))
    assert not rebuilt.hit and len(calls) == 2
    assert (rebuilt.path / "weights.bin").read_bytes() == b"w" * 100
