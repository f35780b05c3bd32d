"""The learning rate a trial trains with: the range test's LR the peak of its schedule,
per step, in both loops, for built-in and user models."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from nighttune.tasks.core.config import ModelSpec, TuneConfig
from nighttune.tasks.data.datasets import CachedDataset
from nighttune.tasks.tuning.context import trial_context
from nighttune.tasks.tuning.epoch_loop import batch_inputs, batches_per_epoch, epoch_inputs
from nighttune.tasks.tuning.loops import trial_model
from nighttune.tasks.tuning.models import build_model
from nighttune.tasks.tuning.schedules import (
    END_DIVISOR,
    START_DIVISOR,
    WARMUP_FRACTION,
    peak_schedule,
)
from tests.support.harness import ROOT

PEAK, TOTAL = 0.02, 400


def rate(kind: str, step: int) -> float:
    schedule = peak_schedule(kind, peak=PEAK, total_steps=TOTAL)
    return float(schedule(step)) if callable(schedule) else float(schedule)


def test_constant_is_the_peak_throughout() -> None:
    assert peak_schedule("constant", peak=PEAK, total_steps=TOTAL) == PEAK


def test_cosine_anneals_from_the_peak_to_near_zero_at_the_last_step() -> None:
    assert rate("cosine", 0) == pytest.approx(PEAK)
    assert rate("cosine", TOTAL // 2) == pytest.approx(PEAK / 2, rel=1e-3)
    assert rate("cosine", TOTAL) == pytest.approx(PEAK / END_DIVISOR, rel=1e-3)
    assert rate("cosine", 10 * TOTAL) == pytest.approx(PEAK / END_DIVISOR, rel=1e-3)
    steps = [rate("cosine", s) for s in range(0, TOTAL + 1, 20)]
    assert all(a > b for a, b in zip(steps, steps[1:], strict=False))


def test_one_cycle_warms_up_over_a_quarter_then_anneals() -> None:
    warmup = int(TOTAL * WARMUP_FRACTION)
    assert rate("one_cycle", 0) == pytest.approx(PEAK / START_DIVISOR)
    assert rate("one_cycle", warmup // 2) == pytest.approx(
        (PEAK / START_DIVISOR + PEAK) / 2, rel=1e-3
    )
    assert rate("one_cycle", warmup) == pytest.approx(PEAK)
    assert rate("one_cycle", TOTAL) == pytest.approx(PEAK / END_DIVISOR, rel=1e-3)
    up = [rate("one_cycle", s) for s in range(0, warmup + 1, 10)]
    down = [rate("one_cycle", s) for s in range(warmup, TOTAL + 1, 10)]
    assert all(a < b for a, b in zip(up, up[1:], strict=False))
    assert all(a > b for a, b in zip(down, down[1:], strict=False))


class _RateAtEpochEnd(keras.callbacks.Callback):
    """(optimizer steps so far, the rate the next step takes) at each epoch's end."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, float]] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        optimizer = self.model.optimizer
        self.seen.append((int(optimizer.iterations), float(optimizer.learning_rate)))


@pytest.mark.parametrize("kind", ["cosine", "one_cycle"])
@pytest.mark.parametrize("fused", [True, False])
def test_each_loop_steps_the_schedule_once_a_batch_over_max_epochs(
    digits: CachedDataset, kind: str, fused: bool
) -> None:
    """The fused loop (an epoch in one call) and plain fit count the same optimizer
    steps, so the rate at each epoch's end is the schedule's at epoch x batches, and the
    last epoch ends annealed."""
    batch, epochs = 64, 3
    config = TuneConfig(max_epochs=epochs, lr_schedule=kind)
    model = trial_model(digits, trial_context(config, digits), batch, lr=PEAK, fused=fused)
    x, y = digits.stored_arrays("train")
    steps = batches_per_epoch(int(x.shape[0]), batch)
    if fused:
        data, per_epoch = epoch_inputs(x, y, seed=0), 1
    else:
        data, per_epoch = batch_inputs(x, y, batch, seed=0, to_model=digits.to_model), steps
    seen = _RateAtEpochEnd()
    model.fit(
        data,
        steps_per_epoch=per_epoch,
        epochs=epochs,
        callbacks=[seen],
        verbose=0,
        shuffle=False,
    )
    expected = peak_schedule(kind, peak=PEAK, total_steps=steps * epochs)
    assert [s for s, _ in seen.seen] == [steps * e for e in (1, 2, 3)]
    for step, got in seen.seen:
        assert got == pytest.approx(float(expected(step)), rel=1e-5)
    assert seen.seen[-1][1] == pytest.approx(PEAK / END_DIVISOR, rel=1e-3)


@pytest.mark.parametrize("loop", ["fused", "fit"])
def test_a_streamed_trial_anneals_too(digits_in_blocks: CachedDataset, tmp_path, loop: str) -> None:
    """Past the memory budget the split arrives in windows (fused) or batches read from
    disk (fit): the optimizer still counts every batch, and the saved model's optimizer
    ends the fit annealed. The count is the plan's within a few batches: each window
    drops its last partial batch, plain fit keeps an epoch's last partial one."""
    from nighttune.tasks.tuning.context import trial_context
    from nighttune.tasks.tuning.training import train_trial

    epochs, batch = 4, 64
    config = TuneConfig(
        patiences=(50,),
        max_epochs=epochs,
        cache_dir=str(tmp_path),
        memory_budget_mb=40 / 1024,  # windows of 10 KB: ten an epoch
        lr_schedule="cosine",
        training_loop=loop,
    )
    rows = train_trial(
        digits_in_blocks,
        trial_context(config, digits_in_blocks),
        batch,
        lr=PEAK,
        lr_method="minimum",
    )
    assert rows[0].training_loop == {"fused": "stream", "fit": "stream-fit"}[loop]
    assert rows[0].lr_schedule == "cosine" and rows[0].epochs_run == epochs
    optimizer = keras.models.load_model(rows[0].model_path).optimizer
    planned = batches_per_epoch(digits_in_blocks.num_examples["train"], batch) * epochs
    assert abs(int(optimizer.iterations) - planned) <= planned * 0.2
    assert float(optimizer.learning_rate) < PEAK * 0.01


def test_a_compiled_user_optimizer_keeps_its_settings_under_a_schedule() -> None:
    project = ROOT / "tests" / "support" / "user_project"
    spec = ModelSpec(builder="my_models:build", kwargs={"width": 8}, code_path=(str(project),))
    schedule = peak_schedule("one_cycle", peak=PEAK, total_steps=TOTAL)
    model = build_model(spec, (8, 8, 1), 10, learning_rate=schedule)
    optimizer = model.optimizer
    assert type(optimizer).__name__ == "SGD"
    assert (optimizer.momentum, optimizer.clipnorm) == (0.9, 1.0)
    assert float(optimizer.learning_rate) == pytest.approx(PEAK / START_DIVISOR)
    x = np.zeros((4, 8, 8, 1), np.float32)
    model.fit(x, np.zeros(4), batch_size=2, epochs=1, verbose=0)  # two steps of the warm-up
    assert float(optimizer.learning_rate) == pytest.approx(float(schedule(2)))
