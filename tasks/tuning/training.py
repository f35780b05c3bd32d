"""Trials: one fit per batch size, every patience of the grid read off it.

`train_trial` fits once (`tasks.tuning.loops`: in the fused epoch loop, or with plain
``fit``) with early stopping at the largest patience. A callback feeds a
`PatienceLedger` each epoch and keeps, for every patience, the weights of its best
epoch at the moment it would have stopped (Keras's restore-best-weights semantics);
others record the epochs, report progress and apply the time budget
(`tasks.tuning.fit_callbacks`).
Each patience's weights are then evaluated on validation and test and saved as
``model_e<best>.keras``; one `TrialResult` row per (batch size, patience).

Finished trials are kept by `tasks.storage.store`, keyed by everything they depend on, so a
rerun skips them. A trial that runs out of memory or meets a resource or numeric
error becomes failed rows (not stored, so a rerun tries again; anything else is a bug
and propagates); a loss that turns NaN fails the patiences still running at that epoch
while those that had stopped before keep their results.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import keras
import numpy as np

from nighttune.tasks.core.code import code_version, load_builder
from nighttune.tasks.core.config import DatasetSpec, TrialSpec
from nighttune.tasks.core.errors import TrialFailed, first_line
from nighttune.tasks.core.logs import get_logger
from nighttune.tasks.core.records import LRMethod, TrialResult, scored, values_file
from nighttune.tasks.core.stats import interval
from nighttune.tasks.data.datasets import CachedDataset
from nighttune.tasks.storage.store import Slot
from nighttune.tasks.tuning.context import TrialContext
from nighttune.tasks.tuning.epoch_loop import examples_per_epoch
from nighttune.tasks.tuning.evaluation import evaluate_split, metric_interval, per_example_values
from nighttune.tasks.tuning.fit_callbacks import (
    EpochProgress,
    FitRecord,
    HurdleCut,
    TimeBudgetCut,
    TrialCallbacks,
)
from nighttune.tasks.tuning.hurdle import STOPPED, Bar, Hurdle
from nighttune.tasks.tuning.loops import fit_in_a_loop
from nighttune.tasks.tuning.lr_range import SWEEP_VERSION
from nighttune.tasks.tuning.models import model_key
from nighttune.tasks.tuning.patience import PatienceLedger, Stop
from nighttune.tasks.tuning.stopping import SharedEarlyStopping

# Bump when what a trial computes changes, so stored trials are not reused.
# 2: each epoch is one compiled loop over a fresh permutation (tasks.tuning.epoch_loop).
# 3: each kept epoch's per-example validation values saved (val_e<N>.npy, for `select`).
TRIAL_VERSION = 3


def trial_key(spec: TrialSpec, batch_size: int, **resolved: Any) -> dict[str, Any]:
    """What a batch size's sweep and trial depend on: ``spec`` (an allow-list: see
    `TrialSpec`) with its model's and data builder's code, the versions of both
    computations, and what only the trainer knows (``resolved``: the LR found, the
    dataset's fingerprint, XLA, streaming). The local store keys trials with it; a
    deployment child's result is handed over under it (with nothing resolved)."""
    return {
        "versions": [SWEEP_VERSION, TRIAL_VERSION],
        **spec.model_dump(mode="json", exclude={"dataset", "model", "patiences"}),
        "dataset": _dataset_key(spec.dataset),
        "model": model_key(spec.model),
        "batch_size": batch_size,
        "patiences": sorted(spec.patiences),
        **resolved,
    }


def _dataset_key(spec: DatasetSpec) -> dict[str, Any]:
    """A dataset as a trial sees it: not where its files or code were found, nor whether
    the cache was rebuilt; a data builder's module by its sha256."""
    key = spec.model_dump(mode="json", exclude={"code_path", "data_dir", "cache"})
    if spec.builder:
        load_builder(spec.builder, spec.code_path)
        key["code"] = code_version(spec.builder)
    return key


def local_trial_key(
    cached: CachedDataset, run: TrialContext, batch_size: int, *, lr: float, bar: Bar | None = None
) -> dict[str, Any]:
    """`trial_key` with what this machine resolved: a trial's key in the local store
    (a bracket's rung adds its own mark: `tasks.tuning.halving`); a fit that meets a
    hurdle (``bar``) may end there, so the bar is part of its key."""
    return trial_key(
        run.spec,
        batch_size,
        fingerprint=cached.fingerprint,
        lr=lr,
        jit_compile=run.xla,
        # Streamed from disk (over the memory budget): other batches, another result.
        streamed=not cached.held("train", run.memory_budget),
        **({"hurdle": [bar.epoch, bar.value]} if bar is not None else {}),
    )


def _fit_and_evaluate(
    cached: CachedDataset,
    run: TrialContext,
    batch_size: int,
    *,
    lr: float,
    out: Path,
    stop_at: float | None = None,
    bar: Bar | None = None,
) -> dict[str, Any]:
    """The one fit, then every kept best epoch evaluated and saved; JSON-able result."""
    spec = run.spec

    def callbacks() -> TrialCallbacks:
        ledger = PatienceLedger(spec.patiences, run.objective.direction, spec.min_delta)
        record = FitRecord()
        label = f"trial b{batch_size}"
        return TrialCallbacks(
            record=record,
            stopping=SharedEarlyStopping(spec.monitor, ledger),
            progress=EpochProgress(label, spec.monitor, ledger, epochs=spec.max_epochs),
            cut=TimeBudgetCut(stop_at, record) if stop_at is not None else None,
            hurdle=HurdleCut(bar, ledger) if bar is not None else None,
        )

    model, fitted, loop = fit_in_a_loop(cached, run, batch_size, lr=lr, callbacks=callbacks)
    evaluated: dict[int, dict[str, float]] = {}
    intervals: dict[str, tuple[float, float] | None] = {}
    watched = spec.monitor.removeprefix("val_")
    for best_epoch, weights in sorted(fitted.stopping.kept.items()):
        model.set_weights(weights)
        scores: dict[str, float] = {}
        for split, prefix in (("validation", "val"), ("test", "test")):
            found = evaluate_split(model, cached, split, budget=run.memory_budget)
            scores |= {f"{prefix}_{name}": value for name, value in found.items()}
        saved = out / f"model_e{best_epoch + 1}.keras"
        model.save(saved)
        if (logged := scores.get(f"val_{watched}")) is not None:
            intervals[str(best_epoch)] = _noise(
                model, cached, watched, logged=logged, saved=saved, budget=run.memory_budget
            )
        evaluated[best_epoch] = scores
    return {
        "stops": {str(p): vars(s) for p, s in fitted.stopping.ledger.stops.items()},
        "scores": {str(k): v for k, v in evaluated.items()},
        "intervals": intervals,
        "epoch_seconds": fitted.record.epoch_seconds,
        "history": fitted.record.history,
        "nan_epoch": fitted.stopping.nan_epoch,
        "cut_epoch": fitted.cut_epoch,
        "hurdle": vars(bar) if bar is not None else None,
        "hurdle_epoch": fitted.hurdle_epoch,
        "loop": loop,
    }


def _noise(
    model: Any, cached: CachedDataset, name: str, *, logged: float, saved: Path, budget: int
) -> tuple[float, float] | None:
    """The monitored metric's 95% interval on validation; for a mean over examples its
    per-example values are saved beside the model too (`select`'s paired test)."""
    values = per_example_values(
        model, cached, "validation", name=name, logged=logged, budget=budget
    )
    if values is None:  # AUC, F1...: not a mean over examples
        return metric_interval(model, cached, "validation", name=name, budget=budget)
    np.save(values_file(str(saved)), values)
    return interval(values)


def _pair(stored: list[float] | None) -> tuple[float, float] | None:
    """An interval read back from the store's JSON (a list) as the row's tuple
    (`model_copy` does not validate)."""
    return (stored[0], stored[1]) if stored else None


def _rows(
    data: dict[str, Any],
    entry: Path,
    *,
    batch_size: int,
    lr: float,
    lr_method: LRMethod,
    lr_factor: float,
    spec: TrialSpec,
    trained_per_epoch: int,
) -> list[TrialResult]:
    seconds = data["epoch_seconds"]
    rows = []
    for patience in sorted(spec.patiences):
        base = TrialResult(
            batch_size=batch_size,
            patience=patience,
            lr=lr,
            lr_method=lr_method,
            lr_factor=lr_factor,
            lr_schedule=spec.lr_schedule,
            fit_path=str(entry),
        )
        raw = data["stops"].get(str(patience))
        if raw is None and (why := _cut_reason(data, spec.monitor)):
            rows.append(
                base.model_copy(
                    update={"status": "not run", "error": why + ", before this patience stopped"}
                )
            )
            continue
        if raw is None:
            nan_epoch = data["nan_epoch"]
            epoch = str(nan_epoch + 1) if nan_epoch is not None else "?"
            rows.append(
                base.model_copy(
                    update={
                        "status": "failed",
                        "error": f"loss became NaN in epoch {epoch} at lr {lr:.3g} "
                        "(TerminateOnNaN stopped the fit)",
                    }
                )
            )
            continue
        stop = Stop(**raw)
        stopped_at = stop.stop_epoch + 1 if stop.stop_epoch is not None else None
        epochs = stopped_at or len(seconds)
        train_seconds = sum(seconds[:epochs])
        rows.append(
            base.model_copy(
                update={
                    "epochs_run": epochs,
                    "stop_epoch": stopped_at,
                    "best_epoch": stop.best_epoch + 1,
                    "stopped_early": stopped_at is not None,
                    **scored(data["scores"][str(stop.best_epoch)]),
                    "val_95ci": _pair(data.get("intervals", {}).get(str(stop.best_epoch))),
                    "train_seconds": round(train_seconds, 3),
                    "examples_per_s": round(trained_per_epoch * epochs / train_seconds, 1)
                    if train_seconds
                    else None,
                    "training_loop": data.get("loop", "fused"),
                    "model_path": str(entry / f"model_e{stop.best_epoch + 1}.keras"),
                }
            )
        )
    return rows


def _cut_reason(data: dict[str, Any], monitor: str) -> str | None:
    """Why the fit stopped before its patiences did (the time budget, or the hurdle);
    None when neither stopped it."""
    if data.get("cut_epoch") is not None:
        return f"time budget: the fit stopped after epoch {data['cut_epoch'] + 1}"
    if data.get("hurdle_epoch") is not None:
        bar = Bar(**data["hurdle"])
        return (
            f"{STOPPED} behind b{bar.batch_size}'s {monitor} {bar.value:.4f} by epoch "
            f"{bar.epoch}, the fit stopped there"
        )
    return None


def expected_failure(exc: BaseException) -> bool:
    """Whether a trial's exception is one a grid expects and records as failed rows: out
    of memory, a device or resource error, numbers that went NaN/Inf (TensorFlow's
    numeric checks). Anything else (a `TypeError`, a bad shape) is a bug: it propagates,
    and the run fails with its traceback instead of a grid of "failed" rows."""
    import tensorflow as tf

    if out_of_memory(exc) or isinstance(exc, tf.errors.InternalError | tf.errors.UnavailableError):
        return True
    text = str(exc)
    return isinstance(exc, tf.errors.InvalidArgumentError) and ("NaN" in text or "Inf" in text)


def out_of_memory(exc: BaseException) -> bool:
    """True for TensorFlow's allocation failures (GPU or CPU) and Python's MemoryError."""
    import tensorflow as tf

    return isinstance(exc, MemoryError | tf.errors.ResourceExhaustedError)


def failure_reason(batch_size: int, exc: BaseException) -> str:
    """One line for a trial's row: what broke and, for memory, what to try."""
    detail = f"{type(exc).__name__}: {first_line(exc)}"[:300]
    if out_of_memory(exc):
        return (
            f"trial b{batch_size} ran out of memory ({detail}); "
            "a smaller batch size or model may fit"
        )
    return f"trial b{batch_size} failed: {detail}"


def train_trial(
    cached: CachedDataset,
    run: TrialContext,
    batch_size: int,
    *,
    lr: float,
    lr_method: LRMethod,
    lr_factor: float = 1.0,
    stop_at: float | None = None,
    hurdle: Hurdle | None = None,
) -> list[TrialResult]:
    """Rows for every patience at ``batch_size`` and ``lr`` (``lr_factor`` times
    ``lr_method``'s suggestion: the bracket's survivor); reused if already stored.
    ``stop_at`` (``time.time()``): the time budget's end for training (see
    `TimeBudgetCut`). A fit the budget cut is never reused: it is trained again.
    ``hurdle``: the run's earlier fits; this one meets their bar
    (`tasks.tuning.hurdle`), then is recorded for the next."""
    spec = run.spec
    bar = hurdle.bar(spec.max_epochs) if hurdle is not None else None
    key = local_trial_key(cached, run, batch_size, lr=lr, bar=bar)
    slot = Slot(run.store, "trials", f"b{batch_size}", key)

    def build(out: Path) -> dict[str, Any]:
        return _fit_and_evaluate(cached, run, batch_size, lr=lr, out=out, stop_at=stop_at, bar=bar)

    try:
        entry = slot.get_or_build(build, run.fresh)
        if entry.hit and entry.data.get("cut_epoch") is not None:
            entry = slot.get_or_build(build, True)
    except Exception as exc:  # the grid goes on; not stored, so a rerun tries again
        if not expected_failure(exc):
            raise
        failure = TrialFailed(failure_reason(batch_size, exc))
        get_logger().error("%s", failure)
        keras.backend.clear_session()  # give back what the failed fit held (GPU memory)
        return [
            TrialResult(
                batch_size=batch_size,
                patience=p,
                lr=lr,
                lr_method=lr_method,
                lr_factor=lr_factor,
                lr_schedule=spec.lr_schedule,
                status="failed",
                error=str(failure)[:500],
            )
            for p in sorted(spec.patiences)
        ]
    if entry.hit:
        get_logger().info("trial b%d: finished before, reusing %s", batch_size, entry.path)
    trained = examples_per_epoch(cached.num_examples["train"], batch_size)
    rows = _rows(
        entry.data,
        entry.path,
        batch_size=batch_size,
        lr=lr,
        lr_method=lr_method,
        lr_factor=lr_factor,
        spec=spec,
        trained_per_epoch=trained,
    )
    planned = spec.max_epochs if run.planned else None  # a time budget's plan
    rows = [row.model_copy(update={"reused": entry.hit, "planned_epochs": planned}) for row in rows]
    if hurdle is not None:
        values = [epoch.get(spec.monitor, math.nan) for epoch in entry.data["history"]]
        hurdle.record(batch_size, values)
    unfinished = ", ".join(str(r.patience) for r in rows if r.status == "not run")
    if (cut := entry.data.get("cut_epoch")) is not None:
        get_logger().warning(
            "trial b%d: stopped by the time budget after epoch %d; patience %s did not finish",
            batch_size,
            cut + 1,
            unfinished,
        )
    elif hurdle is not None and bar is not None and entry.data.get("hurdle_epoch") is not None:
        get_logger().info(
            "trial b%d: %s %.4f by epoch %d, behind b%d's %.4f: stopped there (the hurdle); "
            "patience %s did not finish",
            batch_size,
            spec.monitor,
            hurdle.reached[batch_size][bar.epoch - 1],
            bar.epoch,
            bar.batch_size,
            bar.value,
            unfinished,
        )
    if not entry.hit and (done := [r for r in rows if r.status == "ok"]):
        last = max(done, key=lambda r: r.epochs_run or 0)
        get_logger().info(
            "trial b%d: %d epochs in %.1f s; best %s %.4f (epoch %s)",
            batch_size,
            last.epochs_run,
            last.train_seconds or 0.0,
            spec.monitor,
            last.value(spec.monitor) or float("nan"),
            last.best_epoch,
        )
    return rows


# Prefect task: `train_trial`. Finished trials are kept in the store, not in Prefect.


def stored_values(rows: list[TrialResult]) -> dict[str, np.ndarray | None]:
    """Each finished cell's per-example validation values (`TrialResult.cell` -> array),
    None where its trial saved none (a metric that is not a mean over examples)."""
    found: dict[str, np.ndarray | None] = {}
    for row in rows:
        if row.status == "ok" and row.model_path:
            path = Path(values_file(row.model_path))
            found[row.cell] = np.load(path) if path.is_file() else None
    return found
