"""The learning rate over a trial's steps, the range test's LR as its peak.

A range test's suggestion is not meant as a constant rate: Smith's cyclical learning
rates (arXiv 1506.01186), super-convergence (1708.07120) and fastai's
``lr_find`` → ``fit_one_cycle`` take it as the *peak* of an annealed schedule. A
trial's schedule runs per optimizer step (per batch) over ``max_epochs`` epochs, in the
fused loop and in plain ``fit`` alike (both count ``optimizer.iterations``), and it does
not depend on the patience: one fit still gives every patience's result exactly.

- ``constant``: the peak throughout (the rate as the range test found it).
- ``cosine``: cosine annealing from the peak down to ``peak / END_DIVISOR`` at the last
  step of ``max_epochs`` (Loshchilov & Hutter, SGDR, without restarts).
- ``one_cycle``: a linear warm-up from ``peak / START_DIVISOR`` to the peak over the first
  ``WARMUP_FRACTION`` of the steps, then cosine annealing to ``peak / END_DIVISOR``
  (fastai's ``fit_one_cycle`` defaults: ``div=25``, ``pct_start=0.25``,
  ``div_final=1e5``; its warm-up is a cosine, ours Keras's linear one, and the
  optimizer's momentum is not cycled).

Both annealed schedules are Keras's own `CosineDecay`, so an exported model's optimizer
saves and loads without custom objects. A fit that early stopping ends before its last
epoch ends before its rate has annealed.
"""

from __future__ import annotations

from typing import Any

from nighttune.tasks.core.records import LRSchedule

START_DIVISOR = 25.0
END_DIVISOR = 1e5
WARMUP_FRACTION = 0.25


def peak_schedule(kind: LRSchedule, *, peak: float, total_steps: int) -> Any:
    """What a trial's optimizer takes as its learning rate: the number ``peak`` for
    ``constant``, else a Keras `LearningRateSchedule` over ``total_steps`` steps that
    reaches ``peak`` (see the module's docstring for each kind)."""
    if kind == "constant":
        return peak
    import keras

    total = max(int(total_steps), 1)
    alpha = 1.0 / END_DIVISOR
    if kind == "cosine":
        return keras.optimizers.schedules.CosineDecay(peak, decay_steps=total, alpha=alpha)
    warmup = max(int(round(total * WARMUP_FRACTION)), 1)
    return keras.optimizers.schedules.CosineDecay(
        peak / START_DIVISOR,
        decay_steps=max(total - warmup, 1),
        alpha=alpha,
        warmup_target=peak,
        warmup_steps=warmup,
    )
