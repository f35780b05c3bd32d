"""What a run optimizes: the monitored metric, which way is better, the column ranked.

`Objective` is plain data. Its direction is not guessed from the metric's name: it
comes from the compiled Keras metric (`tasks.tuning.objective.resolve_objective`
reads the metric object's own direction, as KerasTuner does) or from
``monitor_mode`` when the config sets it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Direction = Literal["max", "min"]


def selection_column(monitor: str) -> str:
    """The row column selection ranks on: the validation form of the monitored metric."""
    return "val_" + monitor.removeprefix("val_")


class Objective(BaseModel):
    """``monitor`` as `fit` logs it (early stopping watches it), and its direction."""

    model_config = ConfigDict(frozen=True)

    monitor: str
    direction: Direction

    @property
    def column(self) -> str:
        return selection_column(self.monitor)
