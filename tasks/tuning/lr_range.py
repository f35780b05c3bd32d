"""The learning-rate range test: ramp the LR exponentially, record each batch's loss.

`run_range_test` trains a compiled model for ``num_steps`` batches while the LR grows
from ``start_lr`` to ``end_lr``, recording every batch's own loss (the model's own
``train_step``, its metrics reset before each batch: not Keras's epoch-running mean). It stops early
when the smoothed loss passes ``diverge_factor`` times its minimum or turns NaN/inf,
and always puts the model's variables and the optimizer's (moments, iteration count,
LR) back exactly as they were. `lr_range_test` wraps it for a cached dataset and a
batch size, and returns an `LRSweep` saved as JSON and PNG; `lr_sweep`, the Prefect
task, keeps it in the store so a rerun reuses it.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from nighttune.tasks.core.config import LRRangeSpec, ModelSpec
from nighttune.tasks.core.logs import get_logger, progress
from nighttune.tasks.core.records import LRSweep, sweep_files
from nighttune.tasks.data.datasets import CachedDataset, resolve_cache_dir
from nighttune.tasks.storage.files import write_text_atomic
from nighttune.tasks.storage.store import Slot
from nighttune.tasks.tuning.lr_suggest import choose, smooth, suggest_all
from nighttune.tasks.tuning.models import model_key

# Used only when no rule finds a descent: the rate the user's model was compiled with
# (their own recipe's; SGD's 1e-3 would leave a CNN at chance), else Adam's default.
FALLBACK_LR = 1e-3
MIN_STEPS, MAX_STEPS = 50, 200


def default_steps(num_examples: int, batch_size: int) -> int:
    """One epoch of batches, but at least 50 (passes over a small split repeat it) and
    at most 200.

    Fewer than 50 points make a coarse ramp: 10 steps from 1e-6 to 1 are x4.6 apart,
    so every rule lands on one of ten values (both batch sizes of a 178-row table
    suggested exactly 0.1), and ``steepest`` needs 21 points to say anything at all.
    """
    return min(max(math.ceil(num_examples / batch_size), MIN_STEPS), MAX_STEPS)


def run_range_test(
    model: Any,
    batches: Any,
    *,
    start_lr: float,
    end_lr: float,
    num_steps: int,
    beta: float = 0.98,
    diverge_factor: float = 4.0,
) -> tuple[list[float], list[float], str]:
    """Run the ramp on ``batches`` (repeated if shorter); return (lrs, losses, stop_reason)."""
    import tensorflow as tf

    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    saved_model = [v.numpy() for v in model.variables]
    saved_optimizer = [v.numpy() for v in optimizer.variables]

    @tf.function(reduce_retracing=True)
    def train_step(x: Any, y: Any) -> Any:
        # The model's own step (a user's `train_step` override too); its metrics reset
        # first, so the logged "loss" is this batch's, not a running mean.
        for metric in model.metrics:
            metric.reset_state()
        return model.train_step((x, y))["loss"]

    growth = (end_lr / start_lr) ** (1.0 / max(num_steps - 1, 1))
    lrs: list[float] = []
    losses: list[float] = []
    stop_reason = "completed"
    average, best = 0.0, math.inf
    report_every = max(num_steps // 10, 1)  # the screen's bar moves in tenths
    try:
        for step, (x, y) in enumerate(batches.repeat().take(num_steps)):
            lr = start_lr * growth**step
            optimizer.learning_rate = lr
            loss = float(train_step(x, y))
            lrs.append(lr)
            losses.append(loss)
            if not math.isfinite(loss):
                stop_reason = f"loss became {loss} at lr {lr:.3g}"
                break
            average = beta * average + (1.0 - beta) * loss
            smoothed = average / (1.0 - beta ** (step + 1))
            best = min(best, smoothed)
            if smoothed > diverge_factor * best:
                stop_reason = f"diverged at lr {lr:.3g} (smoothed loss > {diverge_factor:g}x min)"
                break
            if (step + 1) % report_every == 0:
                _report_step(step + 1, num_steps, lr=lr, loss=loss)
    finally:
        for variable, value in zip(model.variables, saved_model, strict=True):
            variable.assign(value)
        for variable, value in zip(optimizer.variables, saved_optimizer, strict=True):
            variable.assign(value)
    return lrs, losses, stop_reason


def _report_step(step: int, steps: int, *, lr: float, loss: float) -> None:
    """A line for the logs, and the screen's bar (`tasks.core.logs.progress`)."""
    note = f"lr {lr:.2e}, loss {loss:.4f}"
    get_logger().info(
        "lr sweep: step %d/%d, lr %.2e, loss %.4f",
        step,
        steps,
        lr,
        loss,
        extra=progress("lr sweep: step", step, steps, note=note),
    )


def sweep_from_curve(
    batch_size: int,
    lrs: list[float],
    losses: list[float],
    *,
    stop_reason: str,
    spec: LRRangeSpec,
    seconds: float,
    fallback_lr: float = FALLBACK_LR,
) -> LRSweep:
    """The `LRSweep` of one curve: every rule's suggestion, and the LR chosen for trials
    (``fallback_lr`` when no rule has one)."""
    found = suggest_all(lrs, losses, spec.beta)
    picked = choose(found, spec.method)
    chosen_lr, method = picked if picked else (fallback_lr, "fallback")
    return LRSweep(
        batch_size=batch_size,
        lrs=lrs,
        losses=[_finite(v) for v in losses],
        smoothed=[_finite(v) for v in smooth(losses, spec.beta)],
        suggestions={name: s.lr for name, s in found.items()},
        notes={name: s.note for name, s in found.items()},
        chosen_lr=chosen_lr,
        method=method,
        steps=len(lrs),
        stop_reason=stop_reason,
        seconds=round(seconds, 3),
    )


def save_sweep(sweep: LRSweep, out_dir: str | Path) -> tuple[Path, Path]:
    """Write the sweep's JSON and PNG (`sweep_files`) into out_dir; return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_name, png_name = sweep_files(sweep.batch_size)
    json_path, png_path = out / json_name, out / png_name
    write_text_atomic(json_path, json.dumps(sweep.model_dump(), indent=2))
    from nighttune.tasks.reporting.figures import plot_lr_sweep

    plot_lr_sweep(sweep, png_path)
    return json_path, png_path


def _finite(value: float) -> float | None:
    """JSON has no NaN: a non-finite loss is stored as null."""
    return float(value) if math.isfinite(value) else None


def lr_range_test(
    cached: CachedDataset,
    model_spec: ModelSpec,
    batch_size: int,
    *,
    spec: LRRangeSpec,
    seed: int = 0,
    budget: int | None = None,
) -> LRSweep:
    """Build a fresh model and sweep it on the cached train split at ``batch_size`` (held
    in memory if it fits ``budget`` bytes as float32, else read from disk). A user's
    model is built at the rate it was compiled with: the fallback when no rule finds a
    descent."""
    from nighttune.tasks.tuning.models import build_model

    model = build_model(model_spec, cached.input_shape, cached.num_classes, seed=seed)
    compiled_lr = _compiled_lr(model, model_spec)
    batches = cached.batches("train", batch_size, shuffle=True, seed=seed, budget=budget)
    steps = spec.steps or default_steps(cached.num_examples["train"], batch_size)
    get_logger().info(
        "lr sweep, batch size %d: %d steps from %.0e to %.0e",
        batch_size,
        steps,
        spec.start_lr,
        spec.end_lr,
    )
    start = time.perf_counter()
    lrs, losses, stop_reason = run_range_test(
        model,
        batches,
        start_lr=spec.start_lr,
        end_lr=spec.end_lr,
        num_steps=steps,
        beta=spec.beta,
        diverge_factor=spec.diverge_factor,
    )
    sweep = sweep_from_curve(
        batch_size,
        lrs,
        losses,
        stop_reason=stop_reason,
        spec=spec,
        seconds=time.perf_counter() - start,
        fallback_lr=compiled_lr or FALLBACK_LR,
    )
    if sweep.method == "fallback":
        get_logger().warning(
            "lr sweep, batch size %d: no method found a descent (%s); using lr %.3g (%s)",
            batch_size,
            "; ".join(dict.fromkeys(sweep.notes.values())),
            sweep.chosen_lr,
            "the rate the model was compiled with" if compiled_lr else "Adam's default",
        )
    return sweep


def _compiled_lr(model: Any, model_spec: ModelSpec) -> float | None:
    """The learning rate a user's builder compiled its model with; None for the built-in
    models and a builder that left compiling to us."""
    if not model_spec.builder:
        return None
    import keras

    rate = model.optimizer.learning_rate
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        return None
    value = float(keras.ops.convert_to_numpy(rate))
    return value if math.isfinite(value) and value > 0 else None


# Bump when what a sweep computes changes, so stored sweeps are not reused.
# 2: the sweep runs the model's own train_step (a user's override too).
# 3: a curve that falls less than `lr_suggest.MIN_FALL` gives no suggestion.
SWEEP_VERSION = 3


def stored_lr_range_test(
    cached: CachedDataset,
    model_spec: ModelSpec,
    batch_size: int,
    *,
    spec: LRRangeSpec,
    seed: int = 0,
    cache_dir: str | None = None,
    fresh: bool = False,
    budget: int | None = None,
) -> LRSweep:
    """`lr_range_test`, kept in the store with its JSON and PNG; a rerun reuses it
    (unless ``fresh``). Over ``budget`` (bytes) the train split streams from disk.

    The spec is keyed with the steps the sweep runs filled in: None means the default,
    which may change between versions.
    """
    steps = spec.steps or default_steps(cached.num_examples["train"], batch_size)
    spec = spec.model_copy(update={"steps": steps})
    key = {
        "version": SWEEP_VERSION,
        "dataset": cached.fingerprint,
        "model": model_key(model_spec),
        "batch_size": batch_size,
        "lr_range": spec.model_dump(),
        "seed": seed,
        # Streamed (over the budget): a bounded shuffle buffer, other batches.
        **({} if cached.held("train", budget) else {"streamed": True}),
    }

    def build(staging: Path) -> dict[str, Any]:
        sweep = lr_range_test(cached, model_spec, batch_size, spec=spec, seed=seed, budget=budget)
        save_sweep(sweep, staging)
        return sweep.model_dump()

    root = resolve_cache_dir(cache_dir)
    entry = Slot(root, "sweeps", f"b{batch_size}", key).get_or_build(build, fresh)
    if entry.hit:
        get_logger().info(
            "lr sweep, batch size %d: finished before, reusing %s", batch_size, entry.path
        )
    found = {"path": str(entry.path), "reused": entry.hit}
    return LRSweep.model_validate(entry.data).model_copy(update=found)
