"""Resolving a config's `Objective` against the model it trains.

A model built from the config's model spec is compiled and evaluated once on a dummy
batch (what `fit` would log); each logged metric's direction is read off the metric
object (Keras 3 metrics carry ``_direction``: "up" for accuracy, AUC, precision...),
losses go down. The answer is kept per model spec for the process (0.3 s a build).
"""

from __future__ import annotations

import functools

from tasks.core.config import ModelSpec, TuneConfig
from tasks.core.errors import ConfigError
from tasks.core.objective import Direction, Objective, selection_column
from tasks.core.records import TrialResult


@functools.lru_cache(maxsize=8)
def metric_directions(model_spec: ModelSpec) -> dict[str, Direction | None]:
    """Every name `fit` logs for models of ``model_spec`` (validation forms included), and
    whether it improves up (max) or down (min); None where the metric does not say."""
    import numpy as np

    from tasks.tuning.models import build_model

    model = build_model(model_spec, (8, 8, 1), 2)
    logged = model.evaluate(np.zeros((1, 8, 8, 1)), np.zeros(1), verbose=0, return_dict=True)
    found: dict[str, str | None] = {}

    def walk(metrics: list) -> None:
        for metric in metrics:
            found.setdefault(metric.name, getattr(metric, "_direction", None))
            inner = getattr(metric, "metrics", None)
            if inner and inner is not metrics:
                walk(list(inner))

    walk(list(model.metrics))
    said: dict[str, Direction] = {"up": "max", "down": "min"}
    directions: dict[str, Direction | None] = {}
    for name in logged:
        directions[name] = "min" if name.endswith("loss") else said.get(found.get(name) or "")
    return directions | {f"val_{name}": d for name, d in directions.items()}


def resolve_objective(config: TuneConfig) -> Objective:
    """``config``'s objective, or a one-line `ConfigError` before any training: a monitor
    the model does not log (Keras only warns), one whose direction nobody states, or one
    the grid's rows do not record."""
    directions = metric_directions(config.model)
    if config.monitor not in directions:
        raise ConfigError(
            f"monitor '{config.monitor}' is not a metric the model logs; "
            f"use one of: {', '.join(directions)}"
        )
    direction = directions[config.monitor] if config.monitor_mode == "auto" else config.monitor_mode
    if direction is None:
        raise ConfigError(
            f"monitor '{config.monitor}': its metric does not say whether higher is better; "
            "set monitor_mode: max or min"
        )
    if selection_column(config.monitor) not in TrialResult.model_fields:
        raise ConfigError(
            f"monitor '{config.monitor}': the grid's rows record val_loss and val_accuracy "
            "only; monitor one of loss, accuracy (or their val_ forms)"
        )
    return Objective(monitor=config.monitor, direction=direction)
