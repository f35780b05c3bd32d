"""The storage `Target` contract: the same cases against a folder and a real moto_server.

Every case runs twice (the ``target`` fixture's two params), so a behaviour one kind of
target has and the other lacks fails here, not at a call site.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest

from nighttune.tasks.core.errors import ConfigError, IntegrityError, UserError
from nighttune.tasks.storage.files import verify_digests
from nighttune.tasks.storage.target import Conflict, LocalTarget, S3Target, Target, make_target

SEAL_NAME = "seal.json"


class DigestSeal:
    """A seal like the store's: ``{"files": {rel: {"size", "sha256"}}}``, written last."""

    name = SEAL_NAME
    max_bytes = 2**16

    def files(self, text: str, where: str) -> list[str]:
        return list(json.loads(text)["files"])

    def verify(self, folder: Path) -> None:
        if not (folder / SEAL_NAME).is_file():
            raise IntegrityError(f"{folder}: no {SEAL_NAME}")
        files = json.loads((folder / SEAL_NAME).read_text())["files"]
        problem = verify_digests(folder, files)
        if problem:
            raise IntegrityError(f"{folder}: {problem}")


SEAL = DigestSeal()


def sealed_folder(root: Path, contents: dict[str, bytes]) -> Path:
    """A folder with ``contents`` and a seal listing each file's size and sha256."""
    root.mkdir(parents=True)
    for rel, data in contents.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    files = {
        rel: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for rel, data in contents.items()
    }
    (root / SEAL_NAME).write_text(json.dumps({"files": files}))
    return root


CONTENTS = {"model.bin": b"\x00weights" * 1000, "nested/report.md": "é ünïcode\n".encode()}


@pytest.fixture(params=["local", "s3"])
def target(request, tmp_path) -> Target:
    """A fresh, empty target: a folder under tmp_path, or a prefix in a new bucket."""
    cache = tmp_path / "cache"
    if request.param == "local":
        return make_target(str(tmp_path / "exports"), cache_dir=cache)
    server = request.getfixturevalue("s3_server")
    bucket = f"target-{uuid.uuid4().hex[:8]}"
    server.client().create_bucket(Bucket=bucket)
    return make_target(f"s3://{bucket}/nightly runs/é", server.url, cache_dir=cache)


def test_make_target_picks_the_kind_from_the_uri(tmp_path) -> None:
    assert isinstance(make_target(str(tmp_path)), LocalTarget)
    assert isinstance(make_target("s3://bucket/prefix", "http://127.0.0.1:9"), S3Target)
    with pytest.raises(ConfigError, match="give a local folder"):
        make_target("S3://bucket/prefix")


def test_a_missing_text_reads_none(target) -> None:
    target.check()
    assert target.read_text("latest.json", max_bytes=100) is None
    assert target.read_versioned("nothing/here.json", max_bytes=100) is None


def test_a_bounded_read_stops_one_byte_past_the_limit(target, tmp_path) -> None:
    target.check()
    assert target.read_versioned("pointer.json", max_bytes=10) is None
    target.swap("pointer.json", "x" * 1000, version=None)
    text = target.read_text("pointer.json", max_bytes=10)
    assert text == "x" * 11  # its parser sees it is too long; we never hold all of it
    assert target.read_text("pointer.json", max_bytes=5000) == "x" * 1000


def test_publish_then_fetch_round_trips_a_folder_verified(target, tmp_path) -> None:
    target.check()
    built = sealed_folder(tmp_path / "built", CONTENTS)
    target.publish(built, "run-1", seal=SEAL)
    fetched = target.fetch("run-1", seal=SEAL)
    assert fetched == target.home("run-1")
    for rel, data in CONTENTS.items():
        assert (fetched / rel).read_bytes() == data
    assert (fetched / SEAL_NAME).read_text() == (built / SEAL_NAME).read_text()
    assert [s.name for s in target.runs(seal=SEAL)] == ["run-1"]
    # A damaged copy at home is never handed out: fetched again, or refused in place.
    (fetched / "model.bin").write_bytes(b"tampered")
    if target.in_place:  # the folder is its own home: nothing to fetch it again from
        with pytest.raises(IntegrityError, match="model.bin"):
            target.fetch("run-1", seal=SEAL)
    else:
        assert (target.fetch("run-1", seal=SEAL) / "model.bin").read_bytes() == CONTENTS[
            "model.bin"
        ]


def test_fetch_of_nothing_is_none(target) -> None:
    target.check()
    assert target.fetch("never-published", seal=SEAL) is None


def test_a_publish_without_its_seal_is_not_a_run(target, tmp_path) -> None:
    target.check()
    whole = sealed_folder(tmp_path / "whole", CONTENTS)
    target.publish(whole, "run-2", seal=SEAL)
    partial = sealed_folder(tmp_path / "partial", CONTENTS)
    (partial / SEAL_NAME).unlink()  # a publish cut before its seal went up
    target.publish(partial, "run-1", seal=SEAL)
    assert [s.name for s in target.runs(seal=SEAL)] == ["run-2"]
    if target.in_place:  # the unsealed folder is there, and refused
        with pytest.raises(IntegrityError, match=f"no {SEAL_NAME}"):
            target.fetch("run-1", seal=SEAL)
    else:  # the files are up, the seal is not: nothing to fetch
        assert target.fetch("run-1", seal=SEAL) is None


def test_runs_are_listed_in_order_with_their_seals(target, tmp_path) -> None:
    target.check()
    names = ["20260103-000000-cccccc", "20260101-000000-aaaaaa", "20260102-000000-bbbbbb"]
    for name in names:
        target.publish(sealed_folder(tmp_path / name, {"f": name.encode()}), name, seal=SEAL)
    found = target.runs(seal=SEAL)
    assert [s.name for s in found] == sorted(names)
    for sealed in found:
        assert json.loads(sealed.text)["files"]["f"]["size"] == len(sealed.name)
        assert sealed.where == target.location(sealed.name, SEAL_NAME)


def test_swap_succeeds_with_the_version_read_and_conflicts_with_a_stale_one(target) -> None:
    target.check()
    target.swap("latest.json", '{"run_id": "a"}', version=None)
    with pytest.raises(Conflict):  # "only if absent", but it is there now
        target.swap("latest.json", '{"run_id": "x"}', version=None)
    first = target.read_versioned("latest.json", max_bytes=1000)
    assert first is not None and first.text == '{"run_id": "a"}'
    target.swap("latest.json", '{"run_id": "b"}', version=first.version)
    with pytest.raises(Conflict):  # another writer moved it since `first` was read
        target.swap("latest.json", '{"run_id": "c"}', version=first.version)
    assert target.read_text("latest.json", max_bytes=1000) == '{"run_id": "b"}'


def test_a_target_that_cannot_work_is_a_clear_user_error(request, tmp_path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    with pytest.raises(UserError, match="is a file, not a folder"):
        make_target(str(a_file / "exports")).check()
    server = request.getfixturevalue("s3_server")
    with pytest.raises(UserError, match=r"s3://no-such-bucket-x: cannot reach the bucket \(404\)"):
        make_target("s3://no-such-bucket-x/p", server.url).check()
    unreachable = make_target("s3://bucket/p", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(UserError, match="cannot connect to http://127.0.0.1:9"):
        unreachable.check()


def test_an_unlistable_local_target_says_so(tmp_path) -> None:
    with pytest.raises(UserError, match="does not exist; give the --export-to of tune"):
        make_target(str(tmp_path / "nothing")).runs(seal=SEAL)


def test_home_keeps_names_from_outside_inside(target) -> None:
    with pytest.raises(UserError, match="is refused"):
        target.home("../outside")


def test_the_seal_goes_up_last(target, tmp_path, monkeypatch) -> None:
    """Until its seal is there a folder is not a run: in a bucket the seal is the last
    object put (a folder target renames the whole folder in at once)."""
    from nighttune.tasks.storage import s3

    if target.in_place:
        pytest.skip("a folder target publishes by one rename: there is no order to see")
    put: list[str] = []
    real = s3.upload_verified

    def recording(client, local, *, bucket, key):
        put.append(key)
        return real(client, local, bucket=bucket, key=key)

    monkeypatch.setattr(s3, "upload_verified", recording)
    # Names that sort after the seal's, so that a plain sorted upload would put it first.
    contents = {"z-last.bin": b"z", "zz/deeper.bin": b"zz", "a.bin": b"a"}
    target.publish(sealed_folder(tmp_path / "built", contents), "run-1", seal=SEAL)
    assert len(put) == 4 and put[-1].endswith(f"/run-1/{SEAL_NAME}")
