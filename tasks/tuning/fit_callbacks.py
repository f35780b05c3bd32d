"""The callbacks of a trial's one fit besides the patience ledger, and all of them in order.

- `FitRecord`: each epoch's seconds and logged values, as the trial's result keeps them.
- `EpochProgress`: each epoch's line for the logs (``--verbose``) and the screen's bar.
- `TimeBudgetCut`: stops the fit at an epoch boundary when the next epoch would end past
  the time budget (``stop_at``).
- `HurdleCut`: stops the fit at the hurdle's epoch when it is behind an earlier fit
  (`tasks.tuning.hurdle`).

`TrialCallbacks` holds one fit's set, with `SharedEarlyStopping`
(`tasks.tuning.stopping`), in the order Keras must call them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import keras

from nighttune.tasks.core.logs import get_logger, progress
from nighttune.tasks.tuning.hurdle import Bar
from nighttune.tasks.tuning.patience import PatienceLedger
from nighttune.tasks.tuning.stopping import SharedEarlyStopping


class FitRecord(keras.callbacks.Callback):
    """Each epoch's seconds and logged values (loss, metrics, their validation forms)."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch_seconds: list[float] = []
        self.history: list[dict[str, float]] = []
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_seconds.append(time.perf_counter() - self._started)
        self.history.append({k: float(v) for k, v in (logs or {}).items()})


class EpochProgress(keras.callbacks.Callback):
    """One DETAIL line an epoch (loss, the monitored value, the patiences that stop) that
    the screen shows as a progress bar (`tasks.core.logs.progress`). It reads the
    ledger's stops, so it comes after `SharedEarlyStopping`. An epoch whose loss is not
    finite has no line: the trial's failed rows say what happened."""

    def __init__(self, label: str, monitor: str, ledger: PatienceLedger, *, epochs: int) -> None:
        super().__init__()
        self.label = label
        self.monitor = monitor
        self.ledger = ledger
        self.epochs = epochs

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if not math.isfinite(float(logs.get("loss", math.nan))):
            return
        stopped = sorted(self.ledger.stops)
        stopping = [p for p in stopped if self.ledger.stops[p].stop_epoch == epoch]
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
            extra=progress(f"{self.label}: epoch", epoch + 1, self.epochs, note=note),
        )


class TimeBudgetCut(keras.callbacks.Callback):
    """Stops the fit at an epoch boundary when another epoch as long as the last one
    (``record``'s) would end past ``stop_at`` (``time.time()``); ``cut_epoch`` is the
    last epoch before the cut. The patiences that stopped keep their results; the rest
    did not finish. A fit already ending at this epoch (every patience stopped, or the
    loss went NaN) is not cut, so this comes after `SharedEarlyStopping`."""

    def __init__(self, stop_at: float, record: FitRecord) -> None:
        super().__init__()
        self.stop_at = stop_at
        self.record = record
        self.cut_epoch: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.model.stop_training:
            return
        if time.time() + self.record.epoch_seconds[-1] > self.stop_at:
            self.cut_epoch = epoch
            self.model.stop_training = True


class HurdleCut(keras.callbacks.Callback):
    """Stops the fit after the ``bar``'s epoch when the ledger's best value so far is
    behind the bar; ``cut_epoch`` is that epoch (0-based). A fit already ending there is
    not cut, so this comes after `SharedEarlyStopping`."""

    def __init__(self, bar: Bar, ledger: PatienceLedger) -> None:
        super().__init__()
        self.bar = bar
        self.ledger = ledger
        self.cut_epoch: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.model.stop_training or epoch + 1 != self.bar.epoch:
            return
        if self.bar.behind(
            self.ledger.best, mode=self.ledger.mode, min_delta=self.ledger.min_delta
        ):
            self.cut_epoch = epoch
            self.model.stop_training = True


@dataclass(frozen=True)
class TrialCallbacks:
    """One trial fit's callbacks, and what they found after it."""

    record: FitRecord
    stopping: SharedEarlyStopping
    progress: EpochProgress
    cut: TimeBudgetCut | None = None  # only under a time budget
    hurdle: HurdleCut | None = None  # only behind an earlier fit of a local grid

    def in_order(self) -> list[keras.callbacks.Callback]:
        """The callbacks as Keras must call them each epoch: the record first (it times
        the epoch), then the ledger, then what reads the ledger's decision (the progress
        line, the hurdle, the time budget's cut)."""
        readers = [c for c in (self.hurdle, self.cut) if c is not None]
        return [self.record, self.stopping, self.progress, *readers]

    @property
    def cut_epoch(self) -> int | None:
        """The last epoch before the time budget cut the fit; None when it did not."""
        return self.cut.cut_epoch if self.cut is not None else None

    @property
    def hurdle_epoch(self) -> int | None:
        """The epoch after which the hurdle stopped the fit; None when it did not."""
        return self.hurdle.cut_epoch if self.hurdle is not None else None
