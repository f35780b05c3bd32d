"""Resolving a config's `Objective` against the model it trains.

A model built from the config's model spec is compiled and evaluated once on a dummy
batch (what `fit` would log); each logged metric's direction is read off the metric
object (Keras 3 metrics carry ``_direction``: "up" for accuracy, AUC, precision...),
losses go down. The answer is kept per model spec and input for the process (0.3 s a
build). A user's builder is asked with the dataset's real input shape and classes, so
its model is checked once the dataset is cached (`preflight` checks built-in models).
"""

from __future__ import annotations

import functools
from typing import Literal

from nighttune.tasks.core.config import ModelSpec
from nighttune.tasks.core.errors import BuilderError, ConfigError, clean_tf_message, first_line
from nighttune.tasks.core.objective import Direction, Objective
from nighttune.tasks.data.datasets import CachedDataset


def metric_directions(
    model_spec: ModelSpec,
    input_shape: tuple[int, ...] = (8, 8, 1),
    num_classes: int | None = 2,
    *,
    label_shape: tuple[int, ...] = (),
) -> dict[str, Direction | None]:
    """Every name `fit` logs for models of ``model_spec`` (validation forms included), and
    whether it improves up (max) or down (min); None where the metric does not say."""
    spec = model_spec.model_dump_json()
    return dict(_directions(spec, tuple(input_shape), num_classes, label_shape=tuple(label_shape)))


@functools.lru_cache(maxsize=8)
def _directions(
    spec_json: str,
    input_shape: tuple[int, ...],
    num_classes: int | None,
    *,
    label_shape: tuple[int, ...],
) -> tuple[tuple[str, Direction | None], ...]:
    import numpy as np

    from nighttune.tasks.tuning.evaluation import flat_metrics
    from nighttune.tasks.tuning.models import build_model

    spec = ModelSpec.model_validate_json(spec_json)
    x = np.zeros((1, *input_shape), "float32")
    floats = label_shape or num_classes is None  # one-hot rows or regression targets
    y = np.zeros((1, *label_shape), "float32" if floats else "int64")
    try:
        model = build_model(spec, input_shape, num_classes)
        logged = model.evaluate(x, y, verbose=0, return_dict=True)
    except BuilderError:
        raise
    except Exception as exc:  # a model that does not fit the data: one line, no traceback
        raise BuilderError(
            f"model {spec.label!r} does not fit the data (inputs {list(input_shape)}, "
            f"labels {list(label_shape) or 'integer classes'} of {num_classes or 'values'}): "
            f"{clean_tf_message(first_line(exc))[:300]}"
        ) from None
    found: dict[str, str | None] = {}
    for metric in flat_metrics(list(model.metrics)):
        found.setdefault(metric.name, getattr(metric, "_direction", None))
    said: dict[str, Direction] = {"up": "max", "down": "min"}
    directions: dict[str, Direction | None] = {}
    for name in logged:
        directions[name] = "min" if name.endswith("loss") else said.get(found.get(name) or "")
    both = directions | {f"val_{name}": d for name, d in directions.items()}
    return tuple(both.items())


def resolve_objective(
    model: ModelSpec,
    *,
    monitor: str,
    monitor_mode: Literal["auto", "max", "min"] = "auto",
    cached: CachedDataset | None = None,
) -> Objective:
    """The objective of ``monitor`` for ``model``, or a one-line `ConfigError` before any
    training: a monitor the model does not log (Keras only warns), or one whose direction
    nobody states (``monitor_mode`` auto). ``cached``: the dataset (its shapes are needed
    for a user's builder or data)."""
    if cached is None:
        directions = metric_directions(model)
    else:
        directions = metric_directions(
            model,
            cached.input_shape,
            cached.num_classes,
            label_shape=cached.label_shape,
        )
    if monitor not in directions:
        raise ConfigError(
            f"monitor '{monitor}' is not a metric the model logs; "
            f"use one of: {', '.join(directions)}"
        )
    direction = directions[monitor] if monitor_mode == "auto" else monitor_mode
    if direction is None:
        raise ConfigError(
            f"monitor '{monitor}': its metric does not say whether higher is better; "
            "set monitor_mode: max or min"
        )
    return Objective(monitor=monitor, direction=direction)
