"""Exports to and runs from S3, against a real S3 API server (moto_server on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

import keras
import numpy as np
import pytest

from nighttune.flows.target import export_target
from nighttune.tasks.core.config import TuneConfig
from nighttune.tasks.core.objective import Objective
from nighttune.tasks.data.datasets import load_dataset
from nighttune.tasks.runs.export import export_run, new_run_id
from nighttune.tasks.runs.reader import RunAccess, RunUnavailable, resolve_run
from nighttune.tasks.storage import s3
from nighttune.tasks.storage.target import make_target
from nighttune.tasks.tuning.context import trial_context
from nighttune.tasks.tuning.lr_range import stored_lr_range_test
from nighttune.tasks.tuning.selection import select_best
from nighttune.tasks.tuning.training import train_trial
from tests.support.harness import QUICK_TUNE, MotoServer, nighttune_cmd, on_temporary_server

PREFIX = "nightly runs/été"  # a space and unicode in the prefix


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small real grid's results, ready to export (no flow needed)."""
    cache = str(tmp_path_factory.mktemp("s3-cache"))
    config = TuneConfig(batch_sizes=(64,), patiences=(2,), max_epochs=3, cache_dir=cache)
    cached = load_dataset(config.dataset, cache)
    sweep = stored_lr_range_test(
        cached,
        config.model,
        64,
        spec=config.lr_range.model_copy(update={"steps": 20}),
        seed=0,
        cache_dir=cache,
    )
    rows = train_trial(
        cached, trial_context(config, cached), 64, lr=sweep.chosen_lr, lr_method=sweep.method
    )
    return config, cached, [sweep], rows, select_best(rows, "val_accuracy", "max")


@pytest.fixture
def bucket(s3_server) -> str:
    name = f"models-{uuid.uuid4().hex[:8]}"
    s3_server.client().create_bucket(Bucket=name)
    return name


def export_to(trained, target: str, endpoint: str, cache: Path):
    config, cached, sweeps, rows, winner = trained
    config = config.model_copy(
        update={"export_to": target, "s3_endpoint_url": endpoint, "cache_dir": str(cache)}
    )
    return export_run(
        config,
        cached,
        target=export_target(config),
        objective=Objective(monitor=config.monitor, direction="max"),
        sweeps=sweeps,
        rows=rows,
        winner=winner,
        run_id=new_run_id(),
    )


def latest(client, bucket: str) -> dict:
    key = f"{PREFIX}/latest.json"
    return json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_export_round_trip_with_checksums(trained, s3_server, bucket, tmp_path) -> None:
    result = export_to(trained, f"s3://{bucket}/{PREFIX}", s3_server.url, tmp_path)
    client = s3_server.client()
    assert latest(client, bucket) == {
        "run_id": result.run_id,
        "uri": f"s3://{bucket}/{PREFIX}/{result.run_id}",
    }
    manifest = json.loads(
        client.get_object(Bucket=bucket, Key=f"{PREFIX}/{result.run_id}/manifest.json")[
            "Body"
        ].read()
    )
    listed = {o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    for rel, digest in manifest["files"].items():
        key = f"{PREFIX}/{result.run_id}/{rel}"
        assert key in listed
        head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        local = Path(result.path) / rel
        assert head["ContentLength"] == local.stat().st_size
        assert head["ChecksumSHA256"].split("-")[0] in s3.sha256_b64(local)
        assert s3.hashlib.sha256(local.read_bytes()).hexdigest() == digest


def test_two_runs_move_latest(trained, s3_server, bucket, tmp_path) -> None:
    first = export_to(trained, f"s3://{bucket}/{PREFIX}", s3_server.url, tmp_path)
    second = export_to(trained, f"s3://{bucket}/{PREFIX}", s3_server.url, tmp_path)
    assert second.run_id != first.run_id
    assert latest(s3_server.client(), bucket)["run_id"] == second.run_id


def test_runs_load_from_s3_latest_and_are_cached(
    trained, s3_server, bucket, tmp_path, monkeypatch
) -> None:
    result = export_to(trained, f"s3://{bucket}/{PREFIX}", s3_server.url, tmp_path / "exporter")
    downloads: list[str] = []
    real_download = s3.download

    def counting(client, bucket_name, key, *, local):
        downloads.append(key)
        return real_download(client, bucket_name, key, local=local)

    monkeypatch.setattr(s3, "download", counting)
    cache = str(tmp_path / "reader")  # another machine: nothing local yet
    access = RunAccess(cache_dir=cache, endpoint_url=s3_server.url)
    run = resolve_run(f"s3://{bucket}/{PREFIX}/latest", access)
    assert run.name == result.run_id and len(downloads) > 3
    model = keras.models.load_model(run / "model.keras", safe_mode=True)
    winner = keras.models.load_model(trained[4].model_path)
    x = np.random.default_rng(0).random((16, 8, 8, 1), dtype=np.float32)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), winner.predict(x, verbose=0), rtol=1e-6, atol=1e-6
    )
    count = len(downloads)
    assert resolve_run(f"s3://{bucket}/{PREFIX}/{result.run_id}", access) == run
    assert len(downloads) == count  # the same run id came from the local cache

    (run / "report.csv").write_text("tampered")  # a damaged local copy is fetched again
    resolve_run(f"s3://{bucket}/{PREFIX}/latest", access)
    assert len(downloads) > count


def test_server_stopped_mid_export_keeps_latest_on_the_complete_run(
    trained, s3_server, bucket, tmp_path, monkeypatch
) -> None:
    good = export_to(trained, f"s3://{bucket}/{PREFIX}", s3_server.url, tmp_path)
    monkeypatch.setenv("NIGHTTUNE_S3_TIMEOUT", "1")
    monkeypatch.setenv("NIGHTTUNE_S3_ATTEMPTS", "2")
    uploads: list[str] = []
    real_upload = s3.upload_verified

    def stop_after_two(client, local, *, bucket, key):
        if len(uploads) == 2:
            os.kill(s3_server.proc.pid, signal.SIGSTOP)  # the server hangs mid-export
        uploads.append(key)
        return real_upload(client, local, bucket=bucket, key=key)

    monkeypatch.setattr(s3, "upload_verified", stop_after_two)
    try:
        with pytest.raises(Exception, match="timeout|timed out|Read"):
            export_to(trained, f"s3://{bucket}/{PREFIX}", s3_server.url, tmp_path)
    finally:
        os.kill(s3_server.proc.pid, signal.SIGCONT)
    assert latest(s3_server.client(), bucket)["run_id"] == good.run_id
    monkeypatch.setattr(s3, "upload_verified", real_upload)
    again = export_to(trained, f"s3://{bucket}/{PREFIX}", s3_server.url, tmp_path)
    assert latest(s3_server.client(), bucket)["run_id"] == again.run_id


def test_missing_bucket_and_bad_uri_are_user_errors(s3_server) -> None:
    with pytest.raises(s3.S3Error, match=r"s3://no-such-bucket: cannot reach the bucket \(404\)"):
        s3.check_bucket(s3.S3Uri.parse("s3://no-such-bucket/x"), s3_server.url)
    with pytest.raises(s3.S3Error, match="has no bucket"):
        s3.S3Uri.parse("s3:///prefix")
    with pytest.raises(RunUnavailable, match="does not exist: nothing exported there"):
        s3_server.client().create_bucket(Bucket="empty-bucket")
        resolve_run("s3://empty-bucket/p/latest", RunAccess(endpoint_url=s3_server.url))


def test_bad_credentials_exit_2(tmp_path, cli_env) -> None:
    strict = MotoServer(tmp_path / "moto-auth.log", INITIAL_NO_AUTH_ACTION_COUNT="0")
    try:
        done = subprocess.run(
            nighttune_cmd(
                "tune", "--export-to", "s3://models/nightly", "--s3-endpoint-url", strict.url
            ),
            env=cli_env,
            cwd=cli_env["HOME"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        strict.stop()
    assert done.returncode == 2, done.stderr
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("nighttune: error:")]
    assert "s3://models: cannot reach the bucket (403)" in line and "AWS_ACCESS_KEY_ID" in line
    assert "Traceback" not in done.stderr


def test_missing_bucket_exits_2_before_training(s3_server, cli_env) -> None:
    done = subprocess.run(
        nighttune_cmd(
            "tune", "--export-to", "s3://no-such-bucket/p", "--s3-endpoint-url", s3_server.url
        ),
        env=cli_env,
        cwd=cli_env["HOME"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "no-such-bucket: cannot reach the bucket (404): the bucket does not exist" in done.stderr
    assert not (Path(cli_env["NIGHTTUNE_CACHE_DIR"]) / "trials").exists()


@pytest.mark.slow
def test_cli_tune_to_s3_never_shows_the_secret(
    s3_server, bucket, cli_env, tmp_path, prefect_database
) -> None:
    secret = "s3cr3t-" + uuid.uuid4().hex
    token = "t0ken-" + uuid.uuid4().hex
    cli_env["AWS_SECRET_ACCESS_KEY"] = secret
    cli_env["AWS_SESSION_TOKEN"] = token
    # Prefect's own database (logs, parameters, artifacts) under HOME, so it is searched too.
    on_temporary_server(cli_env, prefect_database, Path(cli_env["HOME"]) / ".prefect")
    done = subprocess.run(
        nighttune_cmd(
            *QUICK_TUNE,
            "--batch-sizes",
            "32",
            "--export-to",
            f"s3://{bucket}/{PREFIX}",
            "--s3-endpoint-url",
            s3_server.url,
        ),
        env=cli_env,
        cwd=cli_env["HOME"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"s3://{bucket}/{PREFIX}" in done.stdout
    secrets = (secret.encode(), token.encode())
    assert all(s.decode() not in done.stdout + done.stderr for s in secrets)
    client = s3_server.client()
    for obj in client.list_objects_v2(Bucket=bucket)["Contents"]:
        body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        assert all(s not in body for s in secrets), obj["Key"]
    searched = b""
    for path in Path(cli_env["HOME"]).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert all(s not in data for s in secrets), path
            if ".prefect" in path.parts:
                searched += data
    # The search saw what Prefect keeps: our log lines and the run's artifacts.
    assert b"export: " in searched and b"tune-summary" in searched


def test_predict_with_a_model_from_s3_latest(trained, s3_server, bucket, tmp_path) -> None:
    from nighttune.tasks.inference.predict import predict_to_csv
    from nighttune.tasks.runs.reader import RunAccess
    from tests.support.images import write_image

    export_to(trained, f"s3://{bucket}/{PREFIX}", s3_server.url, tmp_path / "exporter")
    for i in range(6):
        write_image(
            tmp_path / "imgs" / f"{i}.png", (np.arange(64).reshape(8, 8) * i % 255).astype(np.uint8)
        )
    out = tmp_path / "p.csv"
    summary = predict_to_csv(
        f"s3://{bucket}/{PREFIX}/latest",
        [str(tmp_path / "imgs")],
        str(out),
        access=RunAccess(cache_dir=str(tmp_path / "reader"), endpoint_url=s3_server.url),
    )
    assert (summary.files, summary.predicted, summary.errors) == (6, 6, 0)
    labels = [line.split(",")[1] for line in out.read_text().splitlines()[1:]]
    assert set(labels) <= {str(d) for d in range(10)}


def test_history_of_an_s3_target(trained, s3_server, bucket, tmp_path) -> None:
    from nighttune.tasks.runs.history import run_history

    ids = [
        export_to(trained, f"s3://{bucket}/{PREFIX}", s3_server.url, tmp_path).run_id
        for _ in range(2)
    ]
    frame = run_history(make_target(f"s3://{bucket}/{PREFIX}", s3_server.url))
    assert list(frame["run_id"]) == ids


def test_trials_hand_over_through_s3_between_machines(trained, s3_server, bucket, tmp_path) -> None:
    from nighttune.tasks.dispatch.handoff import publish_trial, read_published

    config, _, sweeps, rows, _ = trained
    target = {
        "export_to": f"s3://{bucket}/{PREFIX}",
        "s3_endpoint_url": s3_server.url,
        "dispatch": "deployments",
    }
    worker = config.model_copy(update=dict(target, cache_dir=str(tmp_path / "gpu-machine")))
    parent = config.model_copy(update=dict(target, cache_dir=str(tmp_path / "cpu-machine")))
    assert read_published(parent.trial, 64, target=export_target(parent)) is None  # nothing yet
    publish_trial(worker.trial, 64, target=export_target(worker), sweep=sweeps[0], rows=rows)
    sweep, got = read_published(parent.trial, 64, target=export_target(parent))
    assert [r.model_dump(exclude={"model_path", "fit_path"}) for r in got] == [
        r.model_dump(exclude={"model_path", "fit_path"}) for r in rows
    ]
    for row in got:  # the models came over the wire, into the parent's own cache
        assert row.model_path.startswith(str(tmp_path / "cpu-machine"))
        assert row.fit_path == str(Path(row.model_path).parent)  # its epochs: the report's
        assert Path(row.model_path).read_bytes() == Path(rows[0].model_path).read_bytes()
    assert sweep.chosen_lr == sweeps[0].chosen_lr
    assert (Path(sweep.path) / "lr_sweep_b64.png").is_file()
