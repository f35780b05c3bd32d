"""The callback of a trial's one fit: every patience's stop and best weights, NaN, and
the time budget's cut.

Fed each epoch, a `PatienceLedger` (`tasks.tuning.patience`) says which patiences stop
there; the callback keeps the best weights each had at that moment (Keras's
restore-best-weights semantics), stops the fit when the largest patience has stopped,
when the loss is no longer finite, or when the next epoch would end past ``stop_at``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import keras

from nighttune.tasks.core.logs import get_logger, progress
from nighttune.tasks.tuning.patience import PatienceLedger


class SharedEarlyStopping(keras.callbacks.Callback):
    """Feeds a `PatienceLedger` each epoch; keeps each patience's best weights at its stop."""

    def __init__(
        self,
        monitor: str,
        ledger: PatienceLedger,
        label: str,
        epochs: int,
        stop_at: float | None = None,
    ) -> None:
        super().__init__()
        self.monitor, self.ledger, self.label, self.epochs = monitor, ledger, label, epochs
        self.stop_at = stop_at  # wall-clock time (time.time()) by which the fit must end
        self.cut_epoch: int | None = None  # the last epoch before the time budget cut the fit
        self.best_weights: list[Any] | None = None
        self.kept: dict[int, list[Any]] = {}  # best epoch (0-based) -> weights
        self.epoch_seconds: list[float] = []
        self.history: list[dict[str, float]] = []
        self.nan_epoch: int | None = None
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        self.epoch_seconds.append(time.perf_counter() - self._started)
        self.history.append({k: float(v) for k, v in logs.items()})
        if not math.isfinite(float(logs.get("loss", math.nan))):
            self.nan_epoch = epoch
            self.model.stop_training = True
            return
        keep, stopping = self.ledger.update(epoch, float(logs[self.monitor]))
        if keep:
            self.best_weights = self.model.get_weights()
        if stopping and self.best_weights is not None and self.ledger.best_epoch is not None:
            self.kept[self.ledger.best_epoch] = self.best_weights
        stopped = sorted(self.ledger.stops)
        note = f"{self.monitor} {logs[self.monitor]:.4f}"
        note += f", patience {', '.join(map(str, stopped))} stopped" if stopped else ""
        get_logger().info(
            "%s: epoch %d, loss %.4f, %s %.4f%s",
            self.label,
            epoch + 1,
            logs["loss"],
            self.monitor,
            logs[self.monitor],
            f" (patience {', '.join(map(str, stopping))} stops here)" if stopping else "",
            extra=progress(f"{self.label}: epoch", epoch + 1, self.epochs, note),
        )
        if self.ledger.done:
            self.model.stop_training = True
        elif self.stop_at is not None and time.time() + self.epoch_seconds[-1] > self.stop_at:
            # Another epoch would end past the budget: stop at this boundary. The
            # patiences that stopped keep their results; the rest did not finish.
            self.cut_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.cut_epoch is not None:
            return
        if self.nan_epoch is None and self.best_weights is not None:
            self.ledger.finish()
            if self.ledger.best_epoch is not None:
                self.kept[self.ledger.best_epoch] = self.best_weights
