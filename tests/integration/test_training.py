"""Trials on real digits: the shared fit is exact, rows are complete, failures are rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from nighttune.flows.trial import check_devices
from nighttune.tasks.core.config import TuneConfig
from nighttune.tasks.core.records import values_file
from nighttune.tasks.data.datasets import CachedDataset
from nighttune.tasks.reporting.histories import trial_histories
from nighttune.tasks.tuning.context import trial_context
from nighttune.tasks.tuning.hurdle import Hurdle
from nighttune.tasks.tuning.training import _rows, stored_values, train_trial
from tests.support.harness import ROOT


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["constant", "one_cycle"])
def test_shared_fit_equals_separate_fits_and_the_fit_path(
    digits: CachedDataset, tmp_path, schedule: str
) -> None:
    """Every patience read off one fit equals its own fit with Keras's `EarlyStopping`,
    with the rate constant or annealed (the schedule does not depend on the patience),
    in the fused loop and in plain fit."""
    # Op determinism is process-wide (and turns XLA off): run it in a process of its own.
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.separate_fits", str(tmp_path), schedule],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    shared, separate, fit = result["shared"], result["separate"], result["fit"]
    assert shared["2"]["epochs_run"] < shared["4"]["epochs_run"]  # the patiences do differ
    for patience in ("2", "4"):
        assert shared[patience].pop("training_loop") == "fused"
        assert fit[patience].pop("training_loop") == "fit"
        # The fallback path (plain fit over the same batches) stops, keeps and scores alike.
        assert shared[patience] == separate[patience] == fit[patience]


def test_rows_are_complete_and_models_saved(digits: CachedDataset, tmp_path) -> None:
    config = TuneConfig(patiences=(1, 3, 50), max_epochs=6, cache_dir=str(tmp_path))
    rows = train_trial(digits, trial_context(config, digits), 128, lr=1e-2, lr_method="steepest")
    assert [r.patience for r in rows] == [1, 3, 50]
    for r in rows:
        assert r.status == "ok" and r.error is None and r.lr_method == "steepest"
        assert 1 <= r.best_epoch <= r.epochs_run <= 6
        assert 0.0 <= r.val_accuracy <= 1.0 and 0.0 <= r.test_accuracy <= 1.0
        assert r.train_seconds > 0 and r.examples_per_s > 0
        model = keras.models.load_model(r.model_path, safe_mode=True)
        x, y = next(iter(digits.batches("test", 270)))
        accuracy = np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y.numpy())
        assert accuracy == pytest.approx(r.test_accuracy, abs=1e-6)
    assert rows[2].stopped_early is False and rows[2].epochs_run == 6
    assert rows[2].stop_epoch is None
    values = stored_values(rows)  # per-example validation values, beside each model
    for r in rows:
        assert Path(values_file(r.model_path)).is_file()
        assert len(values[r.cell]) == digits.num_examples["validation"]
        assert float(values[r.cell].mean()) == pytest.approx(r.val_accuracy, abs=1e-6)
        low, high = r.val_95ci  # Wilson's, over the 270 validation examples
        assert low < r.val_accuracy <= high  # (the top is 1.0 when every example is right)


def test_per_example_values_are_a_mean_metric_or_the_loss_or_nothing(digits: CachedDataset):
    from nighttune.tasks.tuning.evaluation import (
        evaluate_split,
        metric_interval,
        per_example_values,
    )

    model = keras.Sequential(
        [
            keras.Input(digits.input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        "adam",
        "sparse_categorical_crossentropy",
        metrics=[
            "accuracy",
            keras.metrics.SparseTopKCategoricalAccuracy(3, name="top3"),
            keras.metrics.MeanIoU(10, name="iou", sparse_y_pred=False),
        ],
    )
    model.fit(*next(iter(digits.batches("train", 512))), epochs=2, verbose=0)
    logged = evaluate_split(model, digits, "validation")
    n = digits.num_examples["validation"]
    for name in ("accuracy", "top3", "loss"):
        values = per_example_values(model, digits, "validation", name=name, logged=logged[name])
        assert values is not None and values.shape == (n,)
        assert float(values.mean()) == pytest.approx(logged[name], rel=1e-4)
    top3 = per_example_values(model, digits, "validation", name="top3", logged=logged["top3"])
    assert set(np.unique(top3)) <= {0.0, 1.0}
    # IoU is not a mean over examples; a value that does not reproduce the logged one is
    # refused rather than used.
    assert per_example_values(model, digits, "validation", name="iou", logged=logged["iou"]) is None
    low, high = metric_interval(model, digits, "validation", name="iou")  # a bootstrap instead
    assert low < logged["iou"] < high
    assert metric_interval(model, digits, "validation", name="no_such_metric") is None
    assert per_example_values(model, digits, "validation", name="accuracy", logged=0.0) is None


def test_over_the_memory_budget_a_trial_streams_with_the_same_patience_rules(
    digits_in_blocks: CachedDataset, tmp_path, caplog
) -> None:
    """A train split over ``memory_budget_mb`` streams from the cache on disk (the fused
    loop over windows of blocks): every patience still stops where the ledger says on its
    own validation history, keeps its best epoch's weights, and is scored on them."""
    from nighttune.tasks.tuning.patience import patience_stops

    digits = digits_in_blocks
    assert digits.nbytes("train") == 1257 * 64  # 80 KB: uint8 pixels
    config = TuneConfig(patiences=(1, 3), max_epochs=8, cache_dir=str(tmp_path))
    # 40 KB: windows of 10 KB, two blocks of 4 KB each: ten windows an epoch
    streamed = config.model_copy(update={"memory_budget_mb": 40 / 1024})
    with caplog.at_level("INFO"):
        rows = train_trial(
            digits, trial_context(streamed, digits), 64, lr=2e-2, lr_method="minimum"
        )
    assert any("streamed from the cache on disk" in r.getMessage() for r in caplog.records)
    assert {r.training_loop for r in rows} == {"stream"} and all(r.status == "ok" for r in rows)
    meta = json.loads((Path(rows[0].model_path).parent / "meta.json").read_text())["data"]
    values = [epoch["val_accuracy"] for epoch in meta["history"]]
    stops = patience_stops(values, (1, 3))
    for row in rows:
        stop = stops[row.patience]
        assert row.best_epoch == stop.best_epoch + 1
        assert row.val_accuracy == pytest.approx(values[stop.best_epoch], abs=1e-6)
    assert all(row.val_accuracy > 0.8 for row in rows)  # it learned from every window
    # Within the budget the same config trains in memory, stored under another key.
    in_memory = train_trial(digits, trial_context(config, digits), 64, lr=2e-2, lr_method="minimum")
    assert {r.training_loop for r in in_memory} == {"fused"}
    assert in_memory[0].model_path != rows[0].model_path
    # Plain fit (the fallback for models the fused loop cannot run) streams too.
    plain = train_trial(
        digits,
        trial_context(streamed.model_copy(update={"training_loop": "fit"}), digits),
        64,
        lr=2e-2,
        lr_method="minimum",
    )
    assert {r.training_loop for r in plain} == {"stream-fit"}
    assert all(r.status == "ok" and r.val_accuracy > 0.8 for r in plain)


def test_a_trial_that_raises_becomes_failed_rows(
    digits: CachedDataset, tmp_path, monkeypatch
) -> None:
    def out_of_memory(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    monkeypatch.setattr("nighttune.tasks.tuning.loops.fit_trial", out_of_memory)
    config = TuneConfig(patiences=(2, 3), max_epochs=3, cache_dir=str(tmp_path))
    rows = train_trial(digits, trial_context(config, digits), 32, lr=1e-3, lr_method="minimum")
    assert [r.status for r in rows] == ["failed", "failed"]
    assert all("ResourceExhaustedError" in r.error and "OOM" in r.error for r in rows)
    assert [
        p.name for p in (tmp_path / "trials").iterdir()
    ] == []  # nothing stored: a rerun retries


def test_a_bug_in_a_trial_propagates_instead_of_failed_rows(
    digits: CachedDataset, tmp_path, monkeypatch
) -> None:
    """Only the failures a grid expects become rows; a programming error is not one."""

    def bug(*args, **kwargs):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    monkeypatch.setattr("nighttune.tasks.tuning.loops.fit_trial", bug)
    config = TuneConfig(patiences=(2,), max_epochs=3, cache_dir=str(tmp_path))
    with pytest.raises(TypeError, match="unsupported operand"):
        train_trial(digits, trial_context(config, digits), 32, lr=1e-3, lr_method="minimum")


def test_nan_fails_only_the_patiences_still_running() -> None:
    data = {
        "stops": {"2": {"patience": 2, "stop_epoch": 4, "best_epoch": 2}},
        "scores": {
            "2": {"val_loss": 0.3, "val_accuracy": 0.9, "test_loss": 0.35, "test_accuracy": 0.88}
        },
        "epoch_seconds": [1.0] * 7,
        "nan_epoch": 6,
    }
    config = TuneConfig(patiences=(2, 5))
    ok, failed = _rows(
        data,
        Path("/store/e"),
        batch_size=64,
        lr=0.1,
        lr_method="minimum",
        lr_factor=1.0,
        spec=config.trial,
        trained_per_epoch=1000,
    )
    assert ok.status == "ok" and ok.epochs_run == ok.stop_epoch == 5 and ok.best_epoch == 3
    assert ok.model_path == "/store/e/model_e3.keras" and ok.train_seconds == 5.0
    assert failed.status == "failed" and failed.error == (
        "loss became NaN in epoch 7 at lr 0.1 (TerminateOnNaN stopped the fit)"
    )


def test_the_time_budget_cuts_a_fit_at_an_epoch_boundary_and_it_is_never_reused(
    digits: CachedDataset, tmp_path
) -> None:
    """With its end seconds away, a fit of a minute stops at an epoch boundary:
    patience 1 has stopped and keeps its result, patience 1500 is "not run". The cut fit
    is stored, but the next call trains it again instead of reusing it."""
    import time

    # A constant rate: one_cycle over 2000 epochs would warm up for 500, and patience 1
    # might not stop within the seconds the budget leaves on a loaded machine.
    config = TuneConfig(
        patiences=(1, 1500), max_epochs=2000, cache_dir=str(tmp_path), lr_schedule="constant"
    )
    short, cut = train_trial(
        digits,
        trial_context(config, digits),
        32,
        lr=3e-3,
        lr_method="minimum",
        stop_at=time.time() + 20.0,  # patience 1 stops in ~2 s idle; a loaded CI is slower
    )
    assert short.status == "ok" and short.stopped_early and not short.reused
    assert cut.status == "not run" and cut.error.startswith("time budget: the fit stopped")
    again = train_trial(
        digits,
        trial_context(config, digits),
        32,
        lr=3e-3,
        lr_method="minimum",
        stop_at=time.time() + 3.0,
    )
    assert not any(r.reused for r in again)  # trained again, not read from the store


def test_a_fit_behind_the_hurdle_stops_there_and_a_rerun_reuses_it(
    digits: CachedDataset, tmp_path
) -> None:
    """Against a bar no fit can reach by epoch 2 of 6, the fit stops after epoch 2, its
    patiences "not run" saying why (its curve kept for the report), and it is recorded
    for the next fit; the same bar
    again reuses it from the store. Against a bar it clears, it runs all 6 epochs."""
    config = TuneConfig(patiences=(3, 50), max_epochs=6, cache_dir=str(tmp_path))
    run = trial_context(config, digits)
    race = Hurdle("max")
    race.record(32, [1.5, 1.5])  # made up: above any accuracy
    rows = train_trial(digits, run, 128, lr=1e-2, lr_method="steepest", hurdle=race)
    assert [r.status for r in rows] == ["not run", "not run"]
    assert rows[0].error == (
        "hurdle: behind b32's val_accuracy 1.5000 by epoch 2, the fit stopped there, "
        "before this patience stopped"
    )
    assert len(race.reached[128]) == 2 and 0 < race.reached[128][1] <= 1
    # Its two epochs are still in the report's learning curves and TensorBoard logs
    (history,) = trial_histories(rows).values()
    assert [epoch["val_accuracy"] for epoch in history] == race.reached[128]
    again = train_trial(digits, run, 128, lr=1e-2, lr_method="steepest", hurdle=race_at(1.5))
    assert all(r.reused and r.status == "not run" for r in again)
    cleared = train_trial(digits, run, 128, lr=1e-2, lr_method="steepest", hurdle=race_at(0.0))
    assert all(r.status == "ok" and not r.reused for r in cleared)
    assert max(r.epochs_run for r in cleared) == 6


def race_at(value: float) -> Hurdle:
    """A hurdle whose only fit (b32) reached ``value`` by epoch 2."""
    race = Hurdle("max")
    race.record(32, [value, value])
    return race


def test_cnn_trains_on_digits(digits: CachedDataset, tmp_path) -> None:
    config = TuneConfig(
        model={"kind": "cnn", "filters": [8, 16], "hidden_units": [32], "dropout": 0.1},
        patiences=(2,),
        max_epochs=3,
        cache_dir=str(tmp_path),
    )
    (row,) = train_trial(digits, trial_context(config, digits), 64, lr=3e-3, lr_method="minimum")
    assert row.status == "ok" and row.val_accuracy > 0.3
    model = keras.models.load_model(row.model_path, safe_mode=True)
    assert [layer.name for layer in model.layers][:3] == ["image", "conv0", "pool0"]


def test_trial_flow_device_check_warns_or_refuses_without_gpu(caplog) -> None:
    # (imported at the top: Prefect configures logging on its first import, which
    # would remove caplog's handler if it happened inside the test)
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU: the no-GPU branch cannot be observed here")
    with caplog.at_level("WARNING", logger="nighttune"):
        assert check_devices(require_gpu=False) == []
    assert "no GPU visible to TensorFlow: training on the CPU" in caplog.text
    with pytest.raises(RuntimeError, match="no GPU visible"):
        check_devices(require_gpu=True)
