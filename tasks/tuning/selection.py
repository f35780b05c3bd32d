"""Choosing the winning trial: a pure ranking of result rows.

Failed rows are ignored. Among the rest the best ``metric`` wins; exact ties go to
the row that trained fewer epochs (cheaper, and less time to overfit), then to the
smaller batch size (it generalised as well with noisier steps), then to the smaller
patience.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from tasks.core.errors import TrialFailed
from tasks.core.records import TrialResult


def select_best(
    rows: Sequence[TrialResult], metric: str, direction: Literal["max", "min"]
) -> TrialResult:
    """The winning row.

    Raises:
        TrialFailed: no row succeeded with a finite ``metric`` (the message lists why).
    """
    scores = {id(r): r.value(metric) for r in rows}
    usable = [r for r in rows if r.status == "ok" and math.isfinite(scores[id(r)] or math.nan)]
    if not usable:
        reasons = sorted({r.error or f"no finite {metric}" for r in rows}) or ["no trials ran"]
        raise TrialFailed(f"every trial failed, nothing to select: {'; '.join(reasons)[:600]}")
    sign = -1.0 if direction == "max" else 1.0
    return min(
        usable,
        key=lambda r: (sign * (scores[id(r)] or 0.0), r.epochs_run or 0, r.batch_size, r.patience),
    )
