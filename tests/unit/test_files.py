from __future__ import annotations

import json
import os

import pytest

from nighttune.tasks.storage.files import (
    file_digests,
    staged_dir,
    verify_digests,
    write_text_atomic,
)


def test_staged_dir_publishes_only_on_success(tmp_path) -> None:
    final = tmp_path / "entry"
    with staged_dir(final) as staging:
        (staging / "a.txt").write_text("hello")
        assert not final.exists()
    assert (final / "a.txt").read_text() == "hello"
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]


def test_staged_dir_leaves_nothing_on_error(tmp_path) -> None:
    final = tmp_path / "entry"
    with pytest.raises(RuntimeError), staged_dir(final) as staging:
        (staging / "half.txt").write_text("half")
        raise RuntimeError("crash while writing")
    assert list(tmp_path.iterdir()) == []


def test_staged_dir_keeps_the_winner_of_a_race(tmp_path) -> None:
    final = tmp_path / "entry"
    with staged_dir(final) as staging:
        (staging / "mine.txt").write_text("mine")
        final.mkdir()
        (final / "theirs.txt").write_text("theirs")
    assert sorted(p.name for p in final.iterdir()) == ["theirs.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]


def test_verify_digests_catches_truncation_and_loss(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "data.bin").write_bytes(b"x" * 1000)
    (tmp_path / "b.txt").write_text("same size")
    digests = file_digests(tmp_path)
    assert verify_digests(tmp_path, digests) is None

    (tmp_path / "b.txt").write_text("SAME SIZE")  # same length, other bytes
    assert "sha256" in verify_digests(tmp_path, digests)
    (tmp_path / "b.txt").write_text("same size")
    with open(tmp_path / "sub" / "data.bin", "r+b") as fh:
        fh.truncate(10)
    assert "10 bytes, expected 1000" in verify_digests(tmp_path, digests)
    (tmp_path / "sub" / "data.bin").unlink()
    assert "missing" in verify_digests(tmp_path, digests)


def test_write_text_atomic_replaces_whole(tmp_path) -> None:
    target = tmp_path / "latest.json"
    write_text_atomic(target, json.dumps({"run_id": "a"}))
    write_text_atomic(target, json.dumps({"run_id": "b"}))
    assert json.loads(target.read_text()) == {"run_id": "b"}
    assert [p.name for p in tmp_path.iterdir()] == ["latest.json"]


def test_remove_orphans_only_takes_what_dead_processes_of_this_host_left(tmp_path) -> None:
    import subprocess

    from nighttune.tasks.storage.files import _HOST, remove_orphans, staged_dir

    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = tmp_path / f"run.tmp-{_HOST}-{dead.pid}-0123abcd"
    trash = tmp_path / f"old.trash-{_HOST}-{dead.pid}-0123abcd"
    mine = tmp_path / f"run.tmp-{_HOST}-{os.getpid()}-0123abcd"  # a live writer
    elsewhere = tmp_path / f"run.tmp-otherhost-{dead.pid}-0123abcd"  # a shared folder
    for folder in (orphan, trash, mine, elsewhere):
        (folder / "part").mkdir(parents=True)
    assert sorted(remove_orphans(tmp_path)) == sorted([orphan, trash])
    assert mine.exists() and elsewhere.exists()
    with staged_dir(tmp_path / "final") as staging:  # staging sweeps its parent too
        (staging / "f").write_text("x")
    assert (tmp_path / "final" / "f").read_text() == "x"


@pytest.mark.parametrize(
    "rel",
    ["../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a/.", "", "a\\b", "a\x00b", 7, None],
)
def test_paths_from_outside_that_would_leave_their_folder_are_refused(tmp_path, rel) -> None:
    from nighttune.tasks.core.errors import UnsafePath
    from nighttune.tasks.storage.files import safe_join

    with pytest.raises(UnsafePath, match="is refused"):
        safe_join(tmp_path, rel)


def test_safe_join_follows_links_already_on_disk(tmp_path) -> None:
    from nighttune.tasks.core.errors import UnsafePath
    from nighttune.tasks.storage.files import safe_join

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "out").symlink_to("/", target_is_directory=True)
    assert safe_join(tmp_path / "run", "plots/a b.png") == tmp_path / "run" / "plots" / "a b.png"
    with pytest.raises(UnsafePath, match="leads outside"):
        safe_join(tmp_path / "run", "out/etc/passwd")


def test_temporary_files_of_killed_writers_are_removed_by_the_next_write(tmp_path) -> None:
    import subprocess

    from nighttune.tasks.storage.files import scratch_path

    dead = subprocess.Popen(["true"])
    dead.wait()
    left = scratch_path(tmp_path / ".latest.json", "tmp")
    left = left.with_name(left.name.replace(f"-{os.getpid()}-", f"-{dead.pid}-"))
    left.write_text("half")
    write_text_atomic(tmp_path / "latest.json", "{}")
    assert [p.name for p in tmp_path.iterdir()] == ["latest.json"]
