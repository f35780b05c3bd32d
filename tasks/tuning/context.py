"""What a run's trials share, resolved once: the config's trial part and what follows
from it.

A `TuneConfig` stops at the edge (`trial_context`). A trial gets its `TrialSpec` and the
values derived from it once a run: the objective's direction (a user's builder is built
to read it), the store's root, the memory budget in bytes, and whether the fused loop
compiles with XLA. Before, each was derived again wherever it was needed, eight calls
deep (the objective four times a run, the XLA choice three).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from nighttune.tasks.core.budget import planned_epochs
from nighttune.tasks.core.config import ModelSpec, TrialSpec, TuneConfig
from nighttune.tasks.core.logs import get_logger
from nighttune.tasks.core.objective import Objective
from nighttune.tasks.data.datasets import CachedDataset, resolve_cache_dir
from nighttune.tasks.tuning.objective import resolve_objective

JIT_COMPILE = True  # the built-in MLP's fused loop, and any on a GPU (see `use_xla`)


@dataclass(frozen=True)
class TrialContext:
    """A run's trial part and what was derived from it, for every sweep and trial."""

    spec: TrialSpec
    objective: Objective
    store: Path  # the cache folder: sweeps and trials are kept under it
    fresh: bool  # ignore what the store holds
    memory_budget: int  # bytes a train split may take and still be held in memory
    xla: bool
    xla_why: str
    planned: bool = False  # spec.max_epochs is a time budget's plan, below the config's


def trial_context(config: TuneConfig, cached: CachedDataset) -> TrialContext:
    """``config``'s trial part resolved against the cached dataset: the one place a
    `TuneConfig` becomes what trials take. A mistake is one `ConfigError` /
    `BuilderError` line here (a monitor the model does not log, a builder that does not
    fit the data) rather than in a trial."""
    spec = config.trial
    objective = resolve_objective(
        spec.model, monitor=spec.monitor, monitor_mode=spec.monitor_mode, cached=cached
    )
    xla, why = use_xla(spec.model, spec.xla)
    return TrialContext(
        spec=spec,
        objective=objective,
        store=resolve_cache_dir(config.cache_dir),
        fresh=config.fresh,
        memory_budget=memory_budget(spec.memory_budget_mb),
        xla=xla,
        xla_why=why,
    )


def within_budget(
    run: TrialContext,
    batch_size: int,
    *,
    left: float,
    epoch_s: float | None,
    trials_left: int,
    at_most: int | None = None,
) -> TrialContext:
    """``run`` with as many epochs as an annealed schedule at ``batch_size`` can finish in
    its share of the ``left`` seconds (`planned_epochs`; ``at_most``: a plan made
    before, by the parent of a child run), said in one line when fewer than
    ``max_epochs``; a constant rate needs no plan (a fit cut at an epoch boundary
    trained at the same rate)."""
    spec = run.spec
    if spec.lr_schedule == "constant" or epoch_s is None:
        return run
    cap = min(spec.max_epochs, at_most) if at_most is not None else spec.max_epochs
    epochs = planned_epochs(left, epoch_s, max_epochs=cap, trials_left=trials_left)
    if epochs >= spec.max_epochs:
        return run
    get_logger().info(
        "trial b%d: time budget: %d of %d epochs planned (%.1f s an epoch in earlier runs), "
        "so that its %s schedule anneals before the end",
        batch_size,
        epochs,
        spec.max_epochs,
        epoch_s,
        spec.lr_schedule,
    )
    planned_spec = spec.model_copy(update={"max_epochs": epochs})
    return dataclasses.replace(run, spec=planned_spec, planned=True)


def use_xla(model: ModelSpec, setting: str = "auto") -> tuple[bool, str]:
    """Whether the fused loop compiles with XLA, and why (``setting``: the config's
    ``xla``: auto, on or off).

    Measured on this project's 2-core CPU, per epoch after the first: XLA made the
    built-in MLP's loop 2.1x faster at MNIST scale (0.34 vs 0.72 s, bench/epoch.py; a
    tie on digits), and every other model slower or no faster: the built-in CNN 2.1x
    slower (119 vs 56 ms), a user CNN with BatchNormalization 8.5x (1513 vs 178 ms), a
    user tabular MLP a tie (20 vs 22 ms), each compiling 1.5-2.6x longer
    (bench/user_model.py). With a GPU it stays on (not measured here: no GPU lent).
    """
    if setting != "auto":
        return setting == "on", f"xla: {setting}"
    if model.builder is None and model.kind == "mlp":
        return JIT_COMPILE, "the built-in MLP"
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return JIT_COMPILE, "a GPU"
    return False, "on the CPU it is slower for this model"


def memory_budget(memory_budget_mb: float | None) -> int:
    """Bytes a train split may take as stored (uint8 images, else float32) and still
    train in memory: ``memory_budget_mb``, else a quarter of this machine's RAM."""
    if memory_budget_mb is not None:
        return int(memory_budget_mb * 2**20)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
