"""Input from places others can write to: a bucket, a manifest, a folder of images.

The two critical holes are reproduced as an attacker would set them up: a crafted run
in a real S3 API (moto_server on 127.0.0.1) whose manifest names files outside the
download folder, and a ``latest.json`` whose run id is a path. `nighttune predict`
must exit 2 with one line and leave everything outside its cache as it was.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from nighttune.tasks.core.errors import UnsafePath
from nighttune.tasks.storage import s3
from nighttune.tasks.storage.target import make_target
from tests.support.harness import nighttune_cmd
from tests.support.images import class_folder

PREFIX = "team/nightly"


def cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        nighttune_cmd(*args),
        env=env,
        cwd=env["HOME"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def predict_from_s3(env: dict[str, str], ref: str, images: Path, endpoint: str):
    """`nighttune predict --model REF` over ``images``, the CSV into HOME."""
    out = str(Path(env["HOME"]) / "p.csv")
    return cli(
        env,
        "predict",
        "--model",
        ref,
        "--images",
        str(images),
        "--out",
        out,
        "--s3-endpoint-url",
        endpoint,
    )


def assert_one_line(done: subprocess.CompletedProcess, code: int, needle: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == code, output[-3000:]
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("nighttune: error:")]
    assert len(lines) == 1 and needle in lines[0], done.stderr[-3000:]
    assert "Traceback" not in output


@pytest.fixture
def bucket(s3_server) -> str:
    name = f"hostile-{uuid.uuid4().hex[:8]}"
    s3_server.client().create_bucket(Bucket=name)
    return name


def upload_run(client, bucket: str, run: Path, run_id: str, manifest: dict) -> None:
    """A real exported run's files under ``PREFIX/run_id`` with ``manifest`` as its manifest."""
    for path in run.rglob("*"):
        if path.is_file() and path.name != "manifest.json":
            key = f"{PREFIX}/{run_id}/{path.relative_to(run).as_posix()}"
            client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    client.put_object(
        Bucket=bucket, Key=f"{PREFIX}/{run_id}/manifest.json", Body=json.dumps(manifest).encode()
    )


def put_latest(client, bucket: str, run_id: str) -> None:
    body = json.dumps({"run_id": run_id, "uri": "s3://x"}).encode()
    client.put_object(Bucket=bucket, Key=f"{PREFIX}/latest.json", Body=body)


@pytest.fixture
def victim(tmp_path) -> Path:
    """A folder that must survive: what an attacker would like written to or removed."""
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious")
    return folder


def test_s3_manifest_naming_files_outside_the_copy_writes_nothing(
    exported_run, s3_server, bucket, cli_env, tmp_path, victim
) -> None:
    client = s3_server.client()
    payload = b"attacker's bytes"
    digest = hashlib.sha256(payload).hexdigest()
    manifest = json.loads((exported_run / "manifest.json").read_text())
    escapes = {
        "up": "../../../../../../../../../" + str(victim / "planted.txt").lstrip("/"),
        "absolute": str(victim / "absolute.txt"),
    }
    images = class_folder(tmp_path / "images", per_class=1)
    for name, rel in escapes.items():
        run_id = f"20260101-000000-{name}"
        crafted = dict(manifest, run_id=run_id, files=dict(manifest["files"], **{rel: digest}))
        upload_run(client, bucket, exported_run, run_id, crafted)
        client.put_object(Bucket=bucket, Key=f"{PREFIX}/{run_id}/{rel}", Body=payload)
        put_latest(client, bucket, run_id)
        done = predict_from_s3(cli_env, f"s3://{bucket}/{PREFIX}/latest", images, s3_server.url)
        assert_one_line(done, 2, "is refused")
        assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"]
        planted = [p for p in tmp_path.rglob("*") if p.is_file() and p.read_bytes() == payload]
        assert planted == []  # not in the victim, not in the cache, nowhere
        assert not (Path(cli_env["HOME"]) / "p.csv").exists()


def test_s3_latest_naming_a_path_removes_nothing(
    exported_run, s3_server, bucket, cli_env, tmp_path, victim
) -> None:
    client = s3_server.client()
    images = class_folder(tmp_path / "images", per_class=1)
    # What the old code judged a damaged local copy and removed with rmtree.
    for run_id in (str(victim), "../../../../victim", "..", "a/../../b"):
        put_latest(client, bucket, run_id)
        done = predict_from_s3(cli_env, f"s3://{bucket}/{PREFIX}/latest", images, s3_server.url)
        assert_one_line(done, 2, "is not a run folder name")
        assert (victim / "keep.txt").read_text() == "precious"
    # The same through the run id of the reference itself.
    done = predict_from_s3(cli_env, f"s3://{bucket}/{PREFIX}/..", images, s3_server.url)
    assert_one_line(done, 2, "is not a run folder name")


def test_s3_damaged_documents_and_missing_objects_are_one_line(
    exported_run, s3_server, bucket, cli_env, tmp_path
) -> None:
    client = s3_server.client()
    images = class_folder(tmp_path / "images", per_class=1)
    manifest = json.loads((exported_run / "manifest.json").read_text())
    run_id = "20260101-000000-aaaaaa"
    upload_run(client, bucket, exported_run, run_id, dict(manifest, run_id=run_id))
    client.delete_object(Bucket=bucket, Key=f"{PREFIX}/{run_id}/model.keras")
    cases = {
        b"not json": "is damaged (not JSON)",
        b'{"run_id": 7}': "is damaged (run_id: Input should be a valid string)",
        b'{"run_id": "/etc"}': "is damaged (run_id: run id '/etc' is not a run folder name",
        b"[" * 50_000: "is damaged (not JSON)",  # too deep for Python's JSON parser
        b" " * 100_000: "latest.json is over 65536 bytes",
        json.dumps({"run_id": run_id}).encode(): "model.keras, listed in its manifest, is not",
    }
    for body, needle in cases.items():
        client.put_object(Bucket=bucket, Key=f"{PREFIX}/latest.json", Body=body)
        done = predict_from_s3(cli_env, f"s3://{bucket}/{PREFIX}/latest", images, s3_server.url)
        assert_one_line(done, 2, needle)


def test_a_worker_result_naming_files_outside_is_refused(
    exported_run, s3_server, bucket, tmp_path, victim
) -> None:
    from nighttune.flows.target import export_target
    from nighttune.tasks.core.config import TuneConfig
    from nighttune.tasks.dispatch.handoff import WORK, handoff_slot, read_published

    config = TuneConfig(
        export_to=f"s3://{bucket}/{PREFIX}",
        s3_endpoint_url=s3_server.url,
        cache_dir=str(tmp_path / "cache"),
        batch_sizes=(32,),
    )
    target = export_target(config)
    entry = handoff_slot(config.trial, 32, target=target).path
    prefix = f"{PREFIX}/{WORK}/trials/{entry.name}"
    rel = "../../../../../../../../../" + str(victim / "planted.txt").lstrip("/")
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key=f"{prefix}/{rel}", Body=b"planted")
    meta = {"fingerprint": "x", "files": {rel: {"size": 7, "sha256": "0" * 64}}}
    client.put_object(Bucket=bucket, Key=f"{prefix}/meta.json", Body=json.dumps(meta).encode())
    with pytest.raises(UnsafePath, match="published file name .* is refused"):
        read_published(config.trial, 32, target=target)
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"]
    assert not entry.exists()


def test_s3_latest_never_goes_back_to_an_older_run(s3_server, bucket) -> None:
    from nighttune.tasks.runs.latest import point_latest

    client = s3_server.client()
    target = make_target(f"s3://{bucket}/{PREFIX}", s3_server.url)
    assert point_latest(target, "20260102-000000-bbbbbb", run_uri="s3://newer")
    assert not point_latest(target, "20260101-000000-aaaaaa", run_uri="s3://older")
    latest = json.loads(
        client.get_object(Bucket=bucket, Key=f"{PREFIX}/latest.json")["Body"].read()
    )
    assert latest["run_id"] == "20260102-000000-bbbbbb"
    # A writer that read before another wrote loses its conditional PUT, not the newer run.
    found = s3.get_versioned_text(client, bucket, f"{PREFIX}/latest.json")
    assert found is not None
    assert point_latest(target, "20260103-000000-cccccc", run_uri="s3://newest")
    with pytest.raises(s3.Conflict):
        s3.put_json(client, bucket, f"{PREFIX}/latest.json", text="{}", if_match=found[1])


def test_environment_endpoint_with_credentials_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://user:hunter2@127.0.0.1:9")
    with pytest.raises(s3.S3Error, match="AWS_ENDPOINT_URL_S3 must not carry") as caught:
        s3.client()
    assert "hunter2" not in str(caught.value)


@pytest.fixture
def hostile_images(tmp_path) -> Path:
    """Good images beside a FIFO, /dev/zero, a link to / and a name that is not UTF-8."""
    root = class_folder(tmp_path / "incoming", per_class=2)
    os.mkfifo(root / "cat" / "fifo.png")
    (root / "cat" / "zero.png").symlink_to("/dev/zero")
    (root / "dog" / "everything").symlink_to("/", target_is_directory=True)
    raw = (root / "dog" / "img 000.png").read_bytes()
    with open(os.fsencode(root / "fox") + b"/\xff\xfe.png", "wb") as fh:
        fh.write(raw)
    return root


def test_predict_reads_only_regular_files_and_keeps_odd_names(
    exported_run, hostile_images, cli_env, tmp_path
) -> None:
    out = tmp_path / "p.csv"
    args = ["predict", "--model", str(exported_run), "--images", str(hostile_images)]
    done = cli(cli_env, *args, "--out", str(out), timeout=180)  # a FIFO read would hang
    assert done.returncode == 0, done.stderr[-3000:]
    assert "not valid UTF-8" in done.stdout and "symlinked folder(s) not followed" in done.stdout
    with open(out, newline="", encoding="utf-8") as fh:  # valid UTF-8 throughout
        rows = {str(Path(r["path"]).relative_to(hostile_images)): r for r in csv.DictReader(fh)}
    assert len(rows) == 9  # 6 + the odd name + 2 rejected; nothing from under /
    for name in ("cat/fifo.png", "cat/zero.png"):
        assert rows[name]["error"].startswith("not a regular file"), rows[name]
    odd = rows["fox/\\xff\\xfe.png"]
    assert odd["error"] == "" and odd["label"]
    assert sum(1 for r in rows.values() if r["label"]) == 7


def test_a_training_folder_with_odd_files_caches(hostile_images, cli_env) -> None:
    done = cli(cli_env, "cache", "--dataset", str(hostile_images), timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 image name(s) not read" in done.stderr
    assert "symlinked folder(s) not followed" in done.stderr
    counts = [int(line.split()[1]) for line in done.stdout.splitlines() if "examples" in line]
    assert sum(counts) == 7  # the 6 good ones and the one with the odd name


def on_small_disk(env: dict[str, str], disk: Path, size: str, *args: str) -> tuple[int, str]:
    """``nighttune ARGS`` with ``disk`` a tmpfs of ``size`` in a mount namespace of its own
    (as root or not: ``unshare -rm``); (exit status, stderr), and no file may be left on it."""
    disk.mkdir()
    command = " ".join(f"'{part}'" for part in nighttune_cmd(*args))
    script = (
        f"mount -t tmpfs -o size={size} tmpfs '{disk}' || exit 99; "
        f"{command}; echo rc=$?; find '{disk}' -type f"
    )
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        env=env,
        cwd=env["HOME"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "rc=" in done.stdout, f"cannot mount a small file system here: {done.stderr[-500:]}"
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("rc="), f"left on the full disk: {last}"  # `find` printed nothing
    return int(last.removeprefix("rc=")), done.stderr


def assert_disk_full_line(code: int, stderr: str) -> None:
    assert code == 1, stderr[-3000:]
    lines = [ln for ln in stderr.splitlines() if ln.startswith("nighttune: error:")]
    assert len(lines) == 1 and "No space left on device" in lines[0], stderr[-3000:]
    assert "Traceback" not in stderr


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(exported_run, cli_env, tmp_path):
    """`predict --out` on a 64 KiB file system: the CSV cannot be written whole."""
    images = class_folder(tmp_path / "many", per_class=400)
    disk = tmp_path / "small-disk"
    args = ["predict", "--model", str(exported_run), "--images", str(images)]
    assert_disk_full_line(*on_small_disk(cli_env, disk, "64k", *args, "--out", f"{disk}/p.csv"))


@pytest.mark.slow
def test_a_full_export_disk_is_one_line(cli_env, tmp_path, prefect_database) -> None:
    """`tune --export-to` a 200 KiB file system: the SavedModel write fails (TensorFlow's
    ResourceExhaustedError); Prefect's failure logs and the end stay one line each."""
    from tests.support.harness import QUICK_TUNE, on_temporary_server

    on_temporary_server(cli_env, prefect_database, tmp_path / "prefect-home")
    disk = tmp_path / "exports"
    args = [*QUICK_TUNE, "--batch-sizes", "32", "--export-to", str(disk)]
    assert_disk_full_line(*on_small_disk(cli_env, disk, "200k", *args))


def test_a_dataset_that_would_not_fit_the_disk_is_refused_before_writing(cli_env, tmp_path) -> None:
    """36 gray images at 4096x4096 are 2.3 GiB of float32: refused on a 1 MiB cache disk."""
    data = class_folder(tmp_path / "pets", per_class=12)
    disk = tmp_path / "cache"
    args = ["cache", "--dataset", str(data), "--image-size", "4096,4096", "--cache-dir"]
    code, stderr = on_small_disk(cli_env, disk, "1m", *args, str(disk))
    assert code == 2, stderr[-3000:]
    lines = [ln for ln in stderr.splitlines() if ln.startswith("nighttune: error:")]
    assert (
        len(lines) == 1 and "needs about 2.3 GiB and" in lines[0] and "1.0 MiB free" in lines[0]
    ), stderr[-3000:]


def test_a_connection_cut_mid_download_is_one_line(exported_run, cli_env, tmp_path) -> None:
    """The S3 server stops answering (SIGSTOP) once the run is there: exit 1, one line."""
    import signal

    from tests.support.harness import MotoServer

    server = MotoServer(tmp_path / "moto.log")
    try:
        client = server.client()
        client.create_bucket(Bucket="frozen")
        manifest = json.loads((exported_run / "manifest.json").read_text())
        run_id = "20260101-000000-ffffff"
        bucket = "frozen"
        upload_run(client, bucket, exported_run, run_id, dict(manifest, run_id=run_id))
        put_latest(client, bucket, run_id)
        os.kill(server.proc.pid, signal.SIGSTOP)
        cli_env.update(NIGHTTUNE_S3_TIMEOUT="1", NIGHTTUNE_S3_ATTEMPTS="1")
        images = class_folder(tmp_path / "images", per_class=1)
        done = predict_from_s3(cli_env, f"s3://{bucket}/{PREFIX}/latest", images, server.url)
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
        server.stop()
    assert_one_line(done, 1, "Read timeout on endpoint URL")
