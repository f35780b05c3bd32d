"""Early stopping for many patiences at once, read off one sequence of epochs.

Early stopping with patience p stops at the first epoch that has seen p epochs
without improvement; until then training does not depend on p. So one fit at the
largest patience shows where every smaller one would have stopped, and which epoch
was best at that moment. `PatienceLedger` follows Keras 3's `EarlyStopping` rule
exactly (same improvement test, ``min_delta``, the first epoch counted as best,
no stop at epoch 0), without TensorFlow, so it is tested on made-up numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Stop:
    """Where one patience ended: ``stop_epoch`` None if it never ran out (0-based epochs)."""

    patience: int
    stop_epoch: int | None
    best_epoch: int


@dataclass
class PatienceLedger:
    """Feed it one monitored value per epoch; it says when each patience stops."""

    patiences: Sequence[int]
    mode: Literal["max", "min"] = "max"
    min_delta: float = 0.0
    best: float = field(init=False)
    best_epoch: int | None = field(init=False, default=None)
    wait: int = field(init=False, default=0)
    stops: dict[int, Stop] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.best = -math.inf if self.mode == "max" else math.inf

    def improves(self, value: float) -> bool:
        """Keras's test: better than the best by more than ``min_delta`` (NaN never is)."""
        if self.mode == "max":
            return value - self.min_delta > self.best
        return value + self.min_delta < self.best

    @property
    def pending(self) -> list[int]:
        """Patiences that have not stopped yet, smallest first."""
        return sorted(p for p in set(self.patiences) if p not in self.stops)

    @property
    def done(self) -> bool:
        """True once every patience has stopped: the fit can end."""
        return not self.pending

    def update(self, epoch: int, value: float) -> tuple[bool, list[int]]:
        """Record one epoch; return (keep these weights as the best, patiences stopping now)."""
        first = self.best_epoch is None
        if first:
            self.best_epoch = epoch  # Keras: with no best yet, the current weights are best
        self.wait += 1
        if self.improves(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return True, []
        assert self.best_epoch is not None
        stopping = [p for p in self.pending if self.wait >= p and epoch > 0]
        for p in stopping:
            self.stops[p] = Stop(p, epoch, self.best_epoch)
        return first, stopping

    def finish(self) -> dict[int, Stop]:
        """End of training: patiences still pending ran to the end with the best so far."""
        if self.best_epoch is not None:
            for p in self.pending:
                self.stops[p] = Stop(p, None, self.best_epoch)
        return dict(self.stops)


def patience_stops(
    values: Iterable[float],
    patiences: Sequence[int],
    mode: Literal["max", "min"] = "max",
    *,
    min_delta: float = 0.0,
) -> dict[int, Stop]:
    """Every patience's stop over a whole history of monitored values."""
    ledger = PatienceLedger(patiences, mode, min_delta)
    for epoch, value in enumerate(values):
        ledger.update(epoch, value)
        if ledger.done:
            break
    return ledger.finish()
