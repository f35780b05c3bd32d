"""The tune flow end to end on digits: export, reuse on rerun, failures as rows."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from nighttune.tasks.data.datasets import load_dataset
from nighttune.tasks.storage.files import sha256_file
from tests.support.harness import small_config
from tests.support.webhook import Webhook

pytestmark = pytest.mark.slow


@pytest.fixture
def fits(monkeypatch) -> list[int]:
    """Counts real fits (the trial's one `model.fit` call)."""
    import nighttune.tasks.tuning.loops

    calls: list[int] = []
    original = nighttune.tasks.tuning.loops.fit_trial

    def counting(model, *args, **kwargs):
        calls.append(1)
        return original(model, *args, **kwargs)

    monkeypatch.setattr(nighttune.tasks.tuning.loops, "fit_trial", counting)
    return calls


def test_tune_exports_a_verified_run_and_reuses_trials(prefect_harness, tmp_path, fits) -> None:
    from nighttune.flows.tune import tune

    # Without the warm start: the rerun below follows an exported run, a night whose
    # winning multiple would centre tonight's bracket (tests/integration/test_warm_start.py);
    # without the hurdle, so every cell finishes (tests/integration/test_training.py)
    config = small_config(tmp_path, warm_start=False, hurdle=False, **{"lr_bracket.width": 3})
    first = tune(config)
    # per batch size: a 2-epoch rung for each of the bracket's 3 candidates, then one
    # trial fit for every patience
    assert len(fits) == 2 * (3 + 1)
    assert len(first.rows) == 4 and all(r.status == "ok" for r in first.rows)
    assert set(first.seconds) == {"data", "sweeps", "rungs", "trials", "export"}

    run = Path(first.export.path)
    latest = json.loads((run.parent / "latest.json").read_text())
    assert latest == {"run_id": first.run_id, "uri": run.as_uri()}
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["class_names"] == [str(d) for d in range(10)]
    assert manifest["input_shape"] == [8, 8, 1]
    assert manifest["winner"]["batch_size"] == first.winner.batch_size
    assert len(manifest["trials"]) == 4 and "tensorflow-cpu" in manifest["versions"]
    for row in first.rows:  # each trial trained its bracket's survivor
        rungs = manifest["lr_sweeps"][str(row.batch_size)]["rungs"]
        assert [r["epochs"] for r in rungs] == [2, 2, 2]
        survivor = next(r for r in rungs if r["promoted"])
        assert (row.lr, row.lr_factor) == (survivor["lr"], survivor["lr_factor"])
        assert survivor["value"] == max(r["value"] for r in rungs)
    for rel, digest in manifest["files"].items():
        assert sha256_file(run / rel) == digest, rel
    assert {
        "model.keras",
        "report.csv",
        "report.md",
        "rungs.csv",
        "lr_sweeps/lr_sweep_b32.png",
        "saved_model/saved_model.pb",
    } <= set(manifest["files"])

    # The exported model, in both formats, computes what the winning trial's model does.
    cached = load_dataset(config.dataset, config.cache_dir)
    x, _ = next(iter(cached.batches("test", 64)))
    trained = keras.models.load_model(first.winner.model_path)
    exported = keras.models.load_model(run / "model.keras", safe_mode=True)
    serving = tf.saved_model.load(str(run / "saved_model"))
    expected = trained.predict(x, verbose=0)
    np.testing.assert_allclose(exported.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(serving.serve(x).numpy(), expected, rtol=1e-5, atol=1e-5)

    report = (run / "report.csv").read_text().splitlines()
    assert report[0].startswith("batch_size,patience,lr,") and len(report) == 5

    assert "## Bracket rungs" in (run / "report.md").read_text()
    assert "Bracket: candidate learning rates" in (run / "report.html").read_text()

    second = tune(config)
    assert len(fits) == 8  # nothing trained again: sweeps, rungs, trials from the store
    assert second.run_id != first.run_id
    assert [r.model_dump() | {"reused": True} for r in first.rows] == [
        r.model_dump() for r in second.rows
    ]
    assert not any(r.reused for r in first.rows) and second.sweeps_reused == 2
    latest = json.loads((run.parent / "latest.json").read_text())
    assert latest["run_id"] == second.run_id
    assert sorted(p.name for p in run.parent.iterdir() if not p.name.startswith(".")) == sorted(
        [first.run_id, second.run_id, "latest.json"]
    )

    # fresh: the dataset rebuilt, every sweep and trial run again, and the same results.
    stored = list((tmp_path / "cache").glob("*/*/meta.json"))
    assert {p.parts[-3] for p in stored} == {"datasets", "sweeps", "rungs", "trials"}
    before = {p: p.stat().st_mtime_ns for p in stored}
    third = tune(config.model_copy(update={"fresh": True}))
    assert len(fits) == 16
    assert all(p.stat().st_mtime_ns > when for p, when in before.items())
    same = ("batch_size", "patience", "epochs_run", "best_epoch")
    assert [r.model_dump(include=set(same)) for r in third.rows] == [
        r.model_dump(include=set(same)) for r in first.rows
    ]


def test_the_flow_checks_its_own_input_before_any_sweep_or_trial(prefect_harness, tmp_path) -> None:
    """What a scheduled or `prefect deployment run` run does with an unreachable bucket:
    the flow, called directly (no CLI), fails in its first step with the CLI's line."""
    from nighttune.flows.tune import tune
    from nighttune.tasks.storage.s3 import S3Error

    config = small_config(tmp_path, export_to="s3://models/nightly")
    with Webhook() as hook:
        config = config.model_copy(
            update={"s3_endpoint_url": "http://127.0.0.1:9", "notify_url": hook.url}
        )
        with pytest.raises(S3Error, match="s3://models: cannot connect to http://127.0.0.1:9"):
            tune(config)
    # Whoever watches the nights is told, with the same line.
    [body] = hook.bodies
    assert body["status"] == "failed" and body["events"] == ["failed"]
    assert "S3Error: s3://models: cannot connect to http://127.0.0.1:9" in body["error"]
    assert body["text"].startswith(f"nighttune {body['run_id']}: failed")
    cache = tmp_path / "cache"
    assert not (cache / "sweeps").exists() and not (cache / "trials").exists()
    assert not (cache / "datasets").exists()  # the target is checked before the dataset


def test_under_a_time_budget_an_annealed_trial_is_planned_to_finish(
    prefect_harness, digits, tmp_path
) -> None:
    """With earlier runs' seconds an epoch, a one-cycle trial gets as many epochs as its
    share of the time left holds, so its schedule ends annealed instead of being cut at
    its peak: some 650 s for one trial at 100 s an epoch (a made-up history) is 6 epochs,
    although patience 50 could never stop in them."""
    import logging
    import time

    from nighttune.flows.tune import _local_grid
    from nighttune.tasks.core.budget import RunClock
    from nighttune.tasks.core.config import TuneConfig
    from nighttune.tasks.tuning.context import trial_context

    config = TuneConfig(batch_sizes=(64,), patiences=(50,), max_epochs=40, cache_dir=str(tmp_path))
    run = trial_context(config, digits)
    clock = RunClock(ends_at=time.time() + 650.0, export_reserve=0.0)
    said: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    ours = logging.getLogger("nighttune")
    level = ours.level
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    try:
        sweeps, rows = _local_grid(
            run,
            digits,
            batch_sizes=(64,),
            lap=lambda _: None,
            clock=clock,
            epoch_s={64: 100.0},
            hurdle=True,  # off under a time budget: no bar however many batch sizes
        )
    finally:
        ours.removeHandler(handler)
        ours.setLevel(level)
    assert any("trial b64: time budget: 6 of 40 epochs planned" in line for line in said), said
    (row,) = rows
    assert row.status == "ok" and row.epochs_run == 6 and row.stop_epoch is None
    assert row.planned_epochs == 6  # the row says so (a child's result is then not reused)
    optimizer = keras.models.load_model(row.model_path).optimizer
    assert float(optimizer.learning_rate) < sweeps[0].chosen_lr * 1e-3  # annealed
