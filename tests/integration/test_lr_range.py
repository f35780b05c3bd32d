"""The range test on real training: steps, stops, exact restore, files written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nighttune.tasks.core.config import LRRangeSpec, ModelSpec
from nighttune.tasks.core.records import LRSweep
from nighttune.tasks.data.datasets import CachedDataset
from nighttune.tasks.tuning.lr_range import default_steps, lr_range_test, run_range_test, save_sweep
from nighttune.tasks.tuning.models import build_model


def model_for(digits: CachedDataset, **spec):
    return build_model(ModelSpec(**spec), digits.input_shape, len(digits.class_names), seed=1)


def test_default_steps_is_an_epoch_clamped() -> None:
    assert default_steps(60_000, 128) == 200
    assert default_steps(10_000, 100) == 100
    assert default_steps(1257, 128) == 50  # a curve needs its points, even if it repeats data
    assert default_steps(1257, 16) == 79
    assert default_steps(100, 32) == 50


def test_ramp_runs_the_asked_steps_repeating_short_data(digits: CachedDataset) -> None:
    model = model_for(digits)
    three_batches = digits.batches("train", 32).take(3)
    lrs, losses, stop = run_range_test(
        model, three_batches, start_lr=1e-5, end_lr=1e-3, num_steps=30
    )
    assert stop == "completed"
    assert len(lrs) == len(losses) == 30
    assert lrs[0] == pytest.approx(1e-5) and lrs[-1] == pytest.approx(1e-3)
    ratios = np.diff(np.log(lrs))
    assert np.allclose(ratios, ratios[0])  # exponential ramp
    assert all(math.isfinite(v) for v in losses)


def test_losses_are_per_batch_not_a_running_mean(digits: CachedDataset) -> None:
    model = model_for(digits)
    batches = digits.batches("train", 64).take(4)
    _, losses, _ = run_range_test(model, batches, start_lr=1e-6, end_lr=2e-6, num_steps=8)
    # At a tiny LR the weights barely move, so a batch's loss repeats one epoch later
    # (same batches, same order): a running mean would not.
    assert losses[4:] == pytest.approx(losses[:4], rel=1e-3)
    assert np.std(losses[:4]) > 1e-3


def test_sweep_restores_weights_and_optimizer_bit_for_bit(digits: CachedDataset) -> None:
    model = model_for(digits, dropout=0.3)
    model.fit(
        digits.batches("train", 64).take(5), epochs=1, verbose=0, shuffle=False
    )  # non-trivial state
    before_model = [v.numpy().copy() for v in model.variables]
    before_opt = [v.numpy().copy() for v in model.optimizer.variables]
    assert int(model.optimizer.iterations.numpy()) == 5
    run_range_test(model, digits.batches("train", 64), start_lr=1e-4, end_lr=10.0, num_steps=40)
    for before, var in zip(before_model, model.variables, strict=True):
        assert np.array_equal(before, var.numpy()), var.path
    for before, var in zip(before_opt, model.optimizer.variables, strict=True):
        assert np.array_equal(before, var.numpy()), var.path


def test_divergence_stops_the_sweep(digits: CachedDataset) -> None:
    model = model_for(digits)
    lrs, losses, stop = run_range_test(
        model,
        digits.batches("train", 32),
        start_lr=1e-3,
        end_lr=1e4,
        num_steps=100,
        diverge_factor=1.5,
    )
    assert stop.startswith("diverged at lr") or stop.startswith("loss became")
    assert len(lrs) < 100


def test_sweep_on_digits_suggests_a_finite_lr_in_range(digits: CachedDataset, tmp_path) -> None:
    spec = LRRangeSpec(start_lr=1e-6, end_lr=1.0)
    sweep = lr_range_test(digits, ModelSpec(), 64, spec=spec, seed=0)
    assert sweep.method in ("valley", "steepest", "minimum")
    assert math.isfinite(sweep.chosen_lr) and spec.start_lr <= sweep.chosen_lr <= spec.end_lr
    assert sweep.steps == default_steps(digits.num_examples["train"], 64) == len(sweep.lrs)

    json_path, png_path = save_sweep(sweep, tmp_path)
    saved = json.loads(json_path.read_text())
    for key in (
        "lrs",
        "losses",
        "smoothed",
        "suggestions",
        "chosen_lr",
        "method",
        "steps",
        "stop_reason",
    ):
        assert key in saved
    assert LRSweep.model_validate(saved) == sweep
    with Image.open(png_path) as image:
        image.verify()
        assert image.format == "PNG" and image.size[0] > 400


def test_lr_sweep_task_is_stored_and_reused(
    prefect_harness, digits: CachedDataset, tmp_path, monkeypatch
) -> None:
    from prefect import flow

    from nighttune.flows.steps import lr_sweep

    @flow
    def sweeps(cache: str) -> list[LRSweep]:
        return [
            lr_sweep(digits, ModelSpec(), b, spec=LRRangeSpec(steps=30), seed=0, cache_dir=cache)
            for b in (32, 128)
        ]

    first = sweeps(str(tmp_path))
    assert [s.batch_size for s in first] == [32, 128]
    for sweep in first:
        stem = f"lr_sweep_b{sweep.batch_size}"
        assert sorted(p.name for p in Path(sweep.path).iterdir()) == [
            f"{stem}.json",
            f"{stem}.png",
            "meta.json",
        ]
    assert lr_sweep.tags == {"gpu"}

    runs: list[int] = []
    monkeypatch.setattr(
        "nighttune.tasks.tuning.lr_range.run_range_test", lambda *a, **k: runs.append(1)
    )
    again = sweeps(str(tmp_path))  # stored: not run again
    assert runs == [] and not any(s.reused for s in first)
    assert again == [s.model_copy(update={"reused": True}) for s in first]


def test_a_stored_sweep_of_another_default_length_is_not_reused(
    digits: CachedDataset, tmp_path, monkeypatch
) -> None:
    from nighttune.tasks.tuning.lr_range import stored_lr_range_test

    def sweep() -> LRSweep:
        return stored_lr_range_test(
            digits, ModelSpec(), 128, spec=LRRangeSpec(), seed=0, cache_dir=str(tmp_path)
        )

    assert sweep().steps == 50  # digits at 128: five passes
    monkeypatch.setattr(
        "nighttune.tasks.tuning.lr_range.MIN_STEPS", 60
    )  # a later version's default
    assert sweep().steps == 60


def test_over_the_memory_budget_the_sweep_streams_and_is_stored_apart(
    digits: CachedDataset, tmp_path
) -> None:
    """Over the budget the sweep reads the train split from disk (a bounded shuffle
    buffer: other batches), so it is kept under its own key; within it, as before."""
    from nighttune.tasks.tuning.lr_range import stored_lr_range_test

    spec = LRRangeSpec(steps=20)
    held = stored_lr_range_test(digits, ModelSpec(), 64, spec=spec, seed=0, cache_dir=str(tmp_path))
    streamed = stored_lr_range_test(
        digits, ModelSpec(), 64, spec=spec, seed=0, cache_dir=str(tmp_path), budget=50_000
    )
    within = stored_lr_range_test(
        digits, ModelSpec(), 64, spec=spec, seed=0, cache_dir=str(tmp_path), budget=10**9
    )
    assert streamed.path != held.path and len(streamed.lrs) == 20 and not streamed.reused
    assert within.path == held.path and within.reused  # fits: the same sweep
