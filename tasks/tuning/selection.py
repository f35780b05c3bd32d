"""Choosing the winning trial: a pure ranking of result rows.

Failed rows are ignored. Among the rest the best ``metric`` wins; exact ties go to
the row that trained fewer epochs (cheaper, and less time to overfit), then to the
smaller batch size (it generalised as well with noisier steps), then to the smaller
patience.

`select` adds what the validation examples say about noise: a paired test of every
cell against the best one (McNemar's exact test on right / wrong per example for
accuracy, a paired bootstrap for a loss or another mean). With the rule
``cheapest_within_noise`` the winner is the cell that cost least to train among those
the test cannot tell from the best (p >= alpha, each cell tested on its own against
the best: no correction for the number of cells, which would only make more cells
count as tied). Cells without per-example values are never counted as tied. Measured
across seeds (`bench/selection.py`, docs/nightly.md), the tied-cheaper pick scored
lower on test than the best one, so ``best`` is the default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from nighttune.tasks.core.errors import TrialFailed
from nighttune.tasks.core.records import Selection, SelectRule, TrialResult
from nighttune.tasks.core.stats import paired_p


def select_best(
    rows: Sequence[TrialResult], metric: str, direction: Literal["max", "min"]
) -> TrialResult:
    """The winning row.

    Raises:
        TrialFailed: no row succeeded with a finite ``metric`` (the message lists why).
    """
    sign = -1.0 if direction == "max" else 1.0

    def rank(r: TrialResult) -> tuple[float, int, int, int]:
        return sign * (r.value(metric) or 0.0), r.epochs_run or 0, r.batch_size, r.patience

    return min(_usable(rows, metric), key=rank)


def _usable(rows: Sequence[TrialResult], metric: str) -> list[TrialResult]:
    usable = [r for r in rows if r.status == "ok" and math.isfinite(r.value(metric) or math.nan)]
    if not usable:
        reasons = sorted({r.error or f"no finite {metric}" for r in rows}) or ["no trials ran"]
        raise TrialFailed(f"every trial failed, nothing to select: {'; '.join(reasons)[:600]}")
    return usable


def _cost(row: TrialResult) -> tuple[float, int, int, int]:
    """What a cell cost to train: its seconds (to its own stop), then epochs, then the
    grid order."""
    seconds = row.train_seconds if row.train_seconds is not None else math.inf
    return seconds, row.epochs_run or 0, row.batch_size, row.patience


def select(
    rows: Sequence[TrialResult],
    metric: str,
    direction: Literal["max", "min"],
    *,
    values: Mapping[str, np.ndarray | None],
    rule: SelectRule = "best",
    alpha: float = 0.05,
) -> tuple[TrialResult, Selection]:
    """The winner under ``rule`` and the `Selection` that explains it. ``values``: each
    cell's per-example validation values (`TrialResult.cell` -> array; None or absent
    where there are none)."""
    usable = _usable(rows, metric)
    best = select_best(usable, metric, direction)
    have: dict[str, np.ndarray] = {}
    for row in usable:
        if (found := values.get(row.cell)) is not None:
            have[row.cell] = found
    p_vs_best: dict[str, float] = {}
    test = None
    if best.cell in have:
        for cell, v in have.items():
            if cell != best.cell:
                p_vs_best[cell], test = paired_p(v, have[best.cell])
    winner, reason = best, f"best {metric}"
    if rule == "cheapest_within_noise":
        missing = [r.cell for r in usable if r.cell not in have]
        tied = [r for r in usable if r is best or p_vs_best.get(r.cell, 0.0) >= alpha]
        winner = min(tied, key=_cost)
        reason = _noise_reason(best, winner, tied, alpha=alpha, test=test)
        if missing:
            reason += f"; no per-example values for {', '.join(missing)}: not counted as tied"
    selection = Selection(
        rule=rule,
        metric=metric,
        alpha=alpha,
        best=best.cell,
        winner=winner.cell,
        test=test,
        p_vs_best={k: round(v, 4) for k, v in p_vs_best.items()},
        reason=reason,
    )
    return winner, selection


def _noise_reason(
    best: TrialResult,
    winner: TrialResult,
    tied: list[TrialResult],
    *,
    alpha: float,
    test: str | None,
) -> str:
    """Why the ``winner`` won among the cells ``tied`` with the ``best`` one (p >=
    ``alpha`` under ``test``; None when there were no per-example values to test)."""
    if test is None:
        return "best score (no per-example values to test the others against it)"
    if winner is best:
        if len(tied) > 1:
            return f"best score, and the cheapest of the {len(tied)} cells within noise of it"
        return f"best score; no other cell within noise of it ({test} p < {alpha})"

    def seconds(row: TrialResult) -> str:
        return f"{row.train_seconds:.1f} s" if row.train_seconds is not None else "? s"

    return (
        f"cheapest of the {len(tied)} cells within noise of the best, {best.cell} "
        f"({test} p >= {alpha}): {seconds(winner)} of training vs {seconds(best)}"
    )
