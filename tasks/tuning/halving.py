"""A batch size's bracket, fitted: every rung of `tasks.tuning.rungs`'s plan.

`run_bracket` takes a batch size's range test, fits each candidate LR of each rung (a
whole schedule over the rung's epochs, in the same loops as a trial: fused, plain
``fit`` or streamed), promotes the best, and returns the sweep with its rungs; the
full trial then trains the last one standing (`LRSweep.trial_lr`). A rung's fit is
kept in the store like a trial, keyed by what it depends on, so a rerun reuses it.
A rung stops nothing early: its value is the best of the monitored metric over its
epochs; patiences are read off the full trial alone.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from nighttune.tasks.core.logs import get_logger
from nighttune.tasks.core.records import LRSweep, RungResult
from nighttune.tasks.data.datasets import CachedDataset
from nighttune.tasks.storage.store import Slot
from nighttune.tasks.tuning.context import TrialContext
from nighttune.tasks.tuning.fit_callbacks import (
    EpochProgress,
    FitRecord,
    TimeBudgetCut,
    TrialCallbacks,
)
from nighttune.tasks.tuning.loops import fit_in_a_loop
from nighttune.tasks.tuning.patience import PatienceLedger
from nighttune.tasks.tuning.rungs import Candidate, bracket, halving_plan, promote
from nighttune.tasks.tuning.stopping import SharedEarlyStopping
from nighttune.tasks.tuning.training import local_trial_key


def run_bracket(
    cached: CachedDataset,
    run: TrialContext,
    sweep: LRSweep,
    *,
    stop_at: float | None = None,
) -> LRSweep:
    """``sweep`` with its bracket's rungs fitted and promoted (none for a bracket of
    one); ``stop_at``: the time budget's end (a rung it cuts is ranked on the epochs it
    ran, and trained again by a rerun)."""
    settings = run.spec.lr_bracket
    candidates = bracket(
        sweep.chosen_lr,
        sweep.method,
        width=settings.width,
        factor=settings.factor,
        center=settings.center_factor,
    )
    plan = halving_plan(
        len(candidates),
        eta=settings.eta,
        first_rung=settings.first_rung,
        max_epochs=run.spec.max_epochs,
    )
    results: list[RungResult] = []
    alive = candidates
    for number, rung in enumerate(plan):
        found = [
            fit_rung(
                cached,
                run,
                sweep.batch_size,
                candidate=c,
                rung=number,
                epochs=rung.epochs,
                stop_at=stop_at,
            )
            for c in alive
        ]
        marked = promote(found, keep=rung.keep, direction=run.objective.direction)
        results += marked
        alive = [c for c, result in zip(alive, marked, strict=True) if result.promoted]
    swept = sweep.model_copy(update={"rungs": results})
    if results:
        lr, factor = swept.trial_lr()
        last = next(r for r in reversed(results) if r.promoted)
        get_logger().info(
            "bracket b%d: %d candidates, %s; the full trial takes peak lr %.3g (%s): %s",
            sweep.batch_size,
            len(candidates),
            "1 rung" if len(plan) == 1 else f"{len(plan)} rungs",
            lr,
            last.label,
            last.why,
        )
    return swept


def fit_rung(
    cached: CachedDataset,
    run: TrialContext,
    batch_size: int,
    *,
    candidate: Candidate,
    rung: int,
    epochs: int,
    stop_at: float | None = None,
) -> RungResult:
    """One candidate's fit in one rung: its schedule over ``epochs`` epochs; reused from
    the store when it ran before (and was not cut by a time budget)."""
    short = dataclasses.replace(
        run, spec=run.spec.model_copy(update={"max_epochs": epochs, "patiences": (epochs,)})
    )
    key = local_trial_key(cached, short, batch_size, lr=candidate.lr) | {"rung": True}
    slot = Slot(run.store, "rungs", f"b{batch_size}-e{epochs}", key)

    def build(out: Path) -> dict[str, Any]:
        return _fit(cached, short, batch_size, candidate=candidate, stop_at=stop_at)

    entry = slot.get_or_build(build, run.fresh)
    if entry.hit and entry.data.get("cut_epoch") is not None:
        entry = slot.get_or_build(build, True)
    data = entry.data
    return RungResult(
        batch_size=batch_size,
        rung=rung,
        epochs=epochs,
        lr=candidate.lr,
        lr_method=candidate.method,
        lr_factor=candidate.factor,
        value=data["value"],
        epochs_run=data["epochs_run"],
        seconds=data["seconds"],
        reused=entry.hit,
    )


def _fit(
    cached: CachedDataset,
    short: TrialContext,
    batch_size: int,
    *,
    candidate: Candidate,
    stop_at: float | None,
) -> dict[str, Any]:
    """The rung's fit (``short``: the run with the rung's epochs as its length and its
    only patience, so nothing stops early); its best monitored value, JSON-able."""
    spec = short.spec
    label = f"rung b{batch_size} {candidate.label}"

    def callbacks() -> TrialCallbacks:
        ledger = PatienceLedger(spec.patiences, short.objective.direction, spec.min_delta)
        record = FitRecord()
        return TrialCallbacks(
            record=record,
            stopping=SharedEarlyStopping(spec.monitor, ledger),
            progress=EpochProgress(label, spec.monitor, ledger, epochs=spec.max_epochs),
            cut=TimeBudgetCut(stop_at, record) if stop_at is not None else None,
        )

    _, fitted, _ = fit_in_a_loop(
        cached, short, batch_size, lr=candidate.lr, callbacks=callbacks, label=label
    )
    values = [
        epoch[spec.monitor]
        for epoch in fitted.record.history
        if math.isfinite(epoch.get("loss", math.nan)) and spec.monitor in epoch
    ]
    best = None  # a fit whose loss went NaN failed, whatever it reached before
    if values and fitted.stopping.nan_epoch is None:
        best = max(values) if short.objective.direction == "max" else min(values)
    return {
        "value": best,
        "epochs_run": len(fitted.record.history),
        "seconds": round(sum(fitted.record.epoch_seconds), 3),
        "cut_epoch": fitted.cut_epoch,
    }
