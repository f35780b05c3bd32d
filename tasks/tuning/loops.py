"""The two ways a trial's one fit trains: the fused epoch loop, or plain Keras ``fit``.

The fused loop (`tasks.tuning.epoch_loop`; under XLA where
`tasks.tuning.context.use_xla` measured it faster) is the fast path. Some models cannot
run there: XLA refuses one of their ops (a ``tf.numpy_function``, an op with no XLA
kernel), their ``train_step`` does not trace inside a ``tf.while_loop``, or the whole
train split does not fit on the device at once. With ``training_loop: auto`` such a
model trains with plain ``fit`` (no XLA) over `batch_inputs`: the same batches in the
same order, so the same early stopping. A failure before the first epoch ends is the
loop's; one after it is the model's, and is not retried. One log line says which path
a trial takes and why.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

import keras

from nighttune.tasks.core.errors import first_line
from nighttune.tasks.core.logs import get_logger
from nighttune.tasks.data.datasets import CachedDataset
from nighttune.tasks.tuning.context import TrialContext
from nighttune.tasks.tuning.epoch_loop import (
    batch_inputs,
    batches_per_epoch,
    epoch_inputs,
    fuse_epochs,
)
from nighttune.tasks.tuning.evaluation import eval_batch
from nighttune.tasks.tuning.fit_callbacks import TrialCallbacks
from nighttune.tasks.tuning.schedules import peak_schedule

# stream: the fused loop over windows read from disk; stream-fit: plain fit over batches
# read from disk (past the memory budget).
Loop = Literal["fused", "fit", "stream", "stream-fit"]


def trial_model(
    cached: CachedDataset, run: TrialContext, batch_size: int, *, lr: float, fused: bool = True
) -> Any:
    """The compiled model a trial fits: the spec's model with the fused epoch loop
    installed (XLA as the run resolved it, where the model supports it), or as built for
    plain ``fit``. Its learning rate runs on the spec's ``lr_schedule`` over ``max_epochs``
    epochs of full batches, ``lr`` its peak. Streamed from disk, an epoch takes a few
    batches fewer (each window drops its last partial batch) or one more (plain fit
    keeps the last partial batch): the rate ends a little short of its last value, or
    holds it for the last steps."""
    from nighttune.tasks.tuning.models import build_model

    spec = run.spec
    steps = batches_per_epoch(cached.num_examples["train"], batch_size) * spec.max_epochs
    model = build_model(
        spec.model,
        cached.input_shape,
        cached.num_classes,
        learning_rate=peak_schedule(spec.lr_schedule, peak=lr, total_steps=steps),
        seed=spec.seed,
        jit_compile=fused and run.xla,
    )
    return fuse_epochs(model, batch_size, cached.to_model) if fused else model


def fit_trial(model: Any, batch_size: int, data: Any, **kwargs: Any) -> Any:
    """`model.fit` of the trial at ``batch_size``; a named seam where tests count fits
    and inject faults."""
    return model.fit(data, **kwargs)


def fit_in_a_loop(
    cached: CachedDataset,
    run: TrialContext,
    batch_size: int,
    *,
    lr: float,
    callbacks: Callable[[], TrialCallbacks],
    label: str | None = None,
) -> tuple[Any, TrialCallbacks, Loop]:
    """Fit once with a fresh set of ``callbacks()`` (and Keras's `TerminateOnNaN`); return
    the fitted model, those callbacks and the loop it trained in. ``label`` names the
    fit in its log lines (``trial b32``)."""
    label = label or f"trial b{batch_size}"
    log = get_logger()
    spec = run.spec
    common: dict[str, Any] = dict(epochs=spec.max_epochs, verbose=0, shuffle=False)
    inputs = _TrainInputs(cached, run, batch_size)
    common["validation_data"] = cached.batches(
        "validation", eval_batch(cached, inputs.budget), budget=inputs.budget
    )
    rate = f"lr {lr:.3g} ({spec.lr_schedule})"
    start = f"{label}: {rate}, up to {spec.max_epochs} epochs{inputs.where}"
    if spec.training_loop != "fit":
        model = trial_model(cached, run, batch_size, lr=lr)
        fitted = callbacks()
        why = run.xla_why
        if run.xla and not model.jit_compile:
            why = "a layer or op determinism rules it out"
        xla = "XLA" if model.jit_compile else "no XLA"
        log.info("%s, fused epoch loop (%s: %s)", start, xla, why)
        fused_data, fused_steps = inputs.fused()
        try:
            fit_trial(
                model,
                batch_size,
                fused_data,
                steps_per_epoch=fused_steps,
                callbacks=[keras.callbacks.TerminateOnNaN(), *fitted.in_order()],
                **common,
            )
            return model, fitted, "fused" if inputs.held else "stream"
        except Exception as exc:
            if spec.training_loop == "fused" or fitted.record.history:
                raise  # asked for, or it trained an epoch: not the loop's failure
            log.warning(
                "%s: the fused epoch loop cannot run this model (%s); "
                "training with plain Keras fit instead",
                label,
                loop_failure(exc),
            )
            del model  # what the failed loop held, before the second model is built
    else:
        log.info("%s, plain Keras fit (training_loop: fit)", start)
    model = trial_model(cached, run, batch_size, lr=lr, fused=False)
    fitted = callbacks()
    data, steps = inputs.per_batch()
    fit_trial(
        model,
        batch_size,
        data,
        steps_per_epoch=steps,
        callbacks=[keras.callbacks.TerminateOnNaN(), *fitted.in_order()],
        **common,
    )
    return model, fitted, "fit" if inputs.held else "stream-fit"


class _TrainInputs:
    """A trial's train split as each loop takes it: held in memory when it fits the
    memory budget as float32, else streamed from the cache on disk (said in one line)."""

    def __init__(self, cached: CachedDataset, run: TrialContext, batch_size: int) -> None:
        self.cached = cached
        self.batch_size = batch_size
        self.seed = run.spec.seed
        self.budget = run.memory_budget
        self.held = cached.held("train", self.budget)
        self.where = ""
        if not self.held:
            self.where = ", streamed from the cache on disk"
            get_logger().info(
                "trial b%d: the train split takes %.0f MB (%s), over the memory budget of "
                "%.0f MB: streamed from the cache on disk, shuffled a window of a quarter "
                "of the budget at a time",
                batch_size,
                cached.nbytes("train") / 2**20,
                cached.stored,
                self.budget / 2**20,
            )

    def fused(self) -> tuple[Any, int]:
        """The fused loop's input and its steps an epoch: one step the whole split, or
        one step a window of it."""
        if not self.held:
            return self.cached.windows("train", self.seed, self.budget, batch_size=self.batch_size)
        x, y = self.cached.stored_arrays("train")
        return epoch_inputs(x, y, seed=self.seed), 1

    def per_batch(self) -> tuple[Any, int | None]:
        """Plain ``fit``'s input: the fused loop's batches in the same order (in memory),
        or batches read from disk (streamed); and its steps an epoch."""
        if not self.held:
            batches = self.cached.batches(
                "train", self.batch_size, shuffle=True, seed=self.seed, budget=self.budget
            )
            return batches, None
        x, y = self.cached.stored_arrays("train")
        steps = batches_per_epoch(int(x.shape[0]), self.batch_size)
        batches = batch_inputs(x, y, self.batch_size, seed=self.seed, to_model=self.cached.to_model)
        return batches, steps


_XLA_REFUSAL = re.compile(r"Detected unsupported operations when trying to compile .*?: (\w+)")


def loop_failure(exc: BaseException) -> str:
    """What stopped the fused loop, in a few words: the op XLA refused, or the error."""
    if found := _XLA_REFUSAL.search(str(exc)):
        return f"XLA cannot compile its {found.group(1)} op"
    return f"{type(exc).__name__}: {first_line(exc)}"[:200]
