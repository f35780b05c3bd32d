"""Training faults on real training: a loss that goes NaN, a fit that runs out of memory.

One `tune` flow over batch sizes 32, 64 and 128 on digits. The LR the sweep chose for
32 is replaced by 1e20, so its real fit diverges and Keras's `TerminateOnNaN` stops
it; the 64 fit asks TensorFlow for a 4 TiB tensor at the start of epoch 2, so
TensorFlow's own allocator raises `ResourceExhaustedError` in the middle of the fit.
Both are recorded as failed rows with their reasons, 128 finishes and wins.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import pytest
import tensorflow as tf

from tests.support.reliability import TRAINING_FAULTS

pytestmark = pytest.mark.slow

EXPECT = {fault.id: fault.expect for fault in TRAINING_FAULTS}


class AllocateTooMuch(keras.callbacks.Callback):
    """At the start of epoch 2, what an oversized batch would do to a GPU."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == 1:
            tf.zeros((1 << 40,), tf.float32)  # 4 TiB: TensorFlow's allocator refuses


@pytest.fixture
def faults(monkeypatch) -> dict[str, int]:
    import nighttune.flows.tune
    import nighttune.tasks.tuning.loops

    seen = {"nan": 0, "oom": 0}
    sweep_task, fit = nighttune.flows.tune.lr_sweep, nighttune.tasks.tuning.loops.fit_trial

    def sweep_with_a_bad_lr(cached, model, batch_size, *args, **kwargs):
        sweep = sweep_task(cached, model, batch_size, *args, **kwargs)
        if batch_size == 32:
            seen["nan"] += 1
            return sweep.model_copy(update={"chosen_lr": 1e20})
        return sweep

    def fit_that_runs_out_of_memory(model, batch_size, data, **kwargs):
        if batch_size == 64:
            seen["oom"] += 1
            kwargs["callbacks"] = [*kwargs["callbacks"], AllocateTooMuch()]
        return fit(model, batch_size, data, **kwargs)

    monkeypatch.setattr(nighttune.flows.tune, "lr_sweep", sweep_with_a_bad_lr)
    monkeypatch.setattr(nighttune.tasks.tuning.loops, "fit_trial", fit_that_runs_out_of_memory)
    return seen


def test_nan_and_oom_trials_fail_with_reasons_and_the_rest_win(
    prefect_harness, tmp_path, faults
) -> None:
    from nighttune.flows.tune import tune
    from nighttune.tasks.core.config_file import load_tune_config

    config = load_tune_config(
        None,
        {
            "batch_sizes": [32, 64, 128],
            "patiences": [2, 3],
            "max_epochs": 4,
            "lr_range.steps": 20,
            "export_to": str(tmp_path / "exports"),
            "cache_dir": str(tmp_path / "cache"),
        },
    )
    result = tune(config)
    assert faults == {"nan": 1, "oom": 1}
    by_batch: dict[int, list] = {}
    for row in result.rows:
        by_batch.setdefault(row.batch_size, []).append(row)

    for row in by_batch[32]:
        assert row.status == "failed" and row.lr == 1e20
        assert all(text in row.error for text in EXPECT["nan-loss"]), row.error
    for row in by_batch[64]:
        assert row.status == "failed"
        assert all(text in row.error for text in EXPECT["out-of-memory"]), row.error
    assert all(r.status == "ok" and r.val_accuracy > 0.5 for r in by_batch[128])
    assert result.winner.batch_size == 128

    # The failures are in the export for the morning: manifest and report.
    run = Path(result.export.path)
    manifest = json.loads((run / "manifest.json").read_text())
    errors = [t["error"] for t in manifest["trials"] if t["status"] == "failed"]
    assert len(errors) == 4 and manifest["winner"]["batch_size"] == 128
    report = (run / "report.csv").read_text()
    assert "TerminateOnNaN" in report and "ran out of memory" in report

    # The NaN fit is a result (stored, same every time); the OOM is not, so a rerun retries.
    stored = sorted(p.name.split("-")[0] for p in (tmp_path / "cache" / "trials").iterdir())
    assert stored == ["b128", "b32"]
