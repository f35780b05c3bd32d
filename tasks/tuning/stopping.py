"""The patience ledger of a trial's one fit: every patience's stop and best weights.

Fed each epoch, a `PatienceLedger` (`tasks.tuning.patience`) says which patiences stop
there; the callback keeps the best weights each had at that moment (Keras's
restore-best-weights semantics), and stops the fit when the largest patience has
stopped or when the loss is no longer finite. The fit's other callbacks (its record,
its progress lines, the time budget's cut) are in `tasks.tuning.fit_callbacks`.
"""

from __future__ import annotations

import math
from typing import Any

import keras

from nighttune.tasks.tuning.patience import PatienceLedger


class SharedEarlyStopping(keras.callbacks.Callback):
    """Feeds a `PatienceLedger` each epoch; keeps each patience's best weights at its stop."""

    def __init__(self, monitor: str, ledger: PatienceLedger) -> None:
        super().__init__()
        self.monitor = monitor
        self.ledger = ledger
        self.best_weights: list[Any] | None = None
        self.kept: dict[int, list[Any]] = {}  # best epoch (0-based) -> weights
        self.nan_epoch: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if not math.isfinite(float(logs.get("loss", math.nan))):
            self.nan_epoch = epoch
            self.model.stop_training = True
            return
        keep, stopping = self.ledger.update(epoch, float(logs[self.monitor]))
        if keep:
            self.best_weights = self.model.get_weights()
        if stopping and self.best_weights is not None and self.ledger.best_epoch is not None:
            self.kept[self.ledger.best_epoch] = self.best_weights
        if self.ledger.done:
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        # Only a fit that ran every epoch ran its pending patiences to the end. One that
        # stopped early was stopped here (every patience had stopped: none pending; or
        # NaN: the pending ones failed) or by the time budget (they did not finish).
        if self.model.stop_training or self.best_weights is None:
            return
        self.ledger.finish()
        if self.ledger.best_epoch is not None:
            self.kept[self.ledger.best_epoch] = self.best_weights
