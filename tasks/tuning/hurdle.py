"""The hurdle: epochs go to the batch sizes that are ahead.

Every batch size's fit runs the same annealed schedule over ``max_epochs``, so at the
same epoch two fits are at the same point of their schedules. A local grid runs its
fits one after another; once one has run, each later fit meets a hurdle at a third of
its epochs (`hurdle_epoch`): if its best monitored value so far is behind the best value
an earlier fit of this run had reached by the same epoch, it stops there, and the
epochs it would have spent are saved (the median stopping rule of Google Vizier,
Golovin et al. 2017, against the leader instead of the median). The patiences that had
stopped by then keep their results; the rest are "not run", the rows say why.

`Hurdle` is pure (no TensorFlow): the run's record of what each fit reached by each
epoch, fed after every fit, and the bar it sets for the next one. The callback that
applies the bar is `tasks.tuning.fit_callbacks.HurdleCut`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

HURDLE_FRACTION = 1 / 3  # of max_epochs: where successive halving's first rung (eta 3) ends
STOPPED = "hurdle:"  # how the rows of a fit the hurdle stopped begin their error


def stopped_by_hurdle(error: str | None) -> bool:
    """Whether a "not run" row's error says the hurdle stopped its fit."""
    return (error or "").startswith(STOPPED)


def hurdle_epoch(max_epochs: int) -> int:
    """The epoch (counted from 1) after which a fit meets the hurdle."""
    return max(1, math.ceil(max_epochs * HURDLE_FRACTION))


@dataclass(frozen=True)
class Bar:
    """What a fit must reach by ``epoch`` (counted from 1): ``value``, as batch size
    ``batch_size`` did."""

    epoch: int
    value: float
    batch_size: int

    def behind(self, best: float, *, mode: Literal["max", "min"], min_delta: float) -> bool:
        """Whether ``best`` (a fit's best value by ``epoch``) falls short of the bar by more
        than ``min_delta``."""
        if mode == "max":
            return best + min_delta < self.value
        return best - min_delta > self.value


@dataclass
class Hurdle:
    """The run's fits so far: each batch size's best monitored value by each epoch."""

    mode: Literal["max", "min"]
    reached: dict[int, list[float]] = field(default_factory=dict)

    def record(self, batch_size: int, values: Sequence[float]) -> None:
        """One finished fit's monitored value each epoch (NaN epochs never count)."""
        best = -math.inf if self.mode == "max" else math.inf
        running = []
        for value in values:
            if math.isfinite(value):
                best = max(best, value) if self.mode == "max" else min(best, value)
            running.append(best)
        self.reached[batch_size] = running

    def bar(self, max_epochs: int) -> Bar | None:
        """The bar for the next fit: the best value any recorded fit had reached by
        `hurdle_epoch` (a fit that ended sooner counts with what it reached); None
        before any fit or when none reached a finite value."""
        epoch = hurdle_epoch(max_epochs)
        found: list[tuple[float, int]] = []
        for batch_size, running in self.reached.items():
            if running and math.isfinite(value := running[min(epoch, len(running)) - 1]):
                found.append((value, batch_size))
        if not found:
            return None
        pick = max if self.mode == "max" else min
        value, batch_size = pick(found, key=lambda pair: pair[0])
        return Bar(epoch=epoch, value=value, batch_size=batch_size)
