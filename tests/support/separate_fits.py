"""Run as ``python -m tests.support.separate_fits CACHE [SCHEDULE]``: the shared fit vs one
fit per patience, the learning rate on ``SCHEDULE`` (``lr_schedule``; default constant).

Prints one JSON line: each patience's epochs, best epoch and metrics, from our shared
fit in the fused epoch loop, from the same shared fit with plain Keras ``fit``
(``training_loop: fit``, the fallback path), and from separate fits (the fused loop)
with Keras's `EarlyStopping(restore_best_weights=True)`, with op determinism on. A
process of its own, because determinism cannot be switched off.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from nighttune.tasks.core.config import DatasetSpec, TuneConfig  # noqa: E402
from nighttune.tasks.data.datasets import load_dataset  # noqa: E402
from nighttune.tasks.tuning.context import trial_context  # noqa: E402
from nighttune.tasks.tuning.epoch_loop import epoch_inputs  # noqa: E402
from nighttune.tasks.tuning.evaluation import EVAL_BATCH  # noqa: E402
from nighttune.tasks.tuning.loops import trial_model  # noqa: E402
from nighttune.tasks.tuning.training import train_trial  # noqa: E402

BATCH, LR = 64, 3e-3
KEYS = ("epochs_run", "best_epoch", "val_loss", "val_accuracy", "test_loss", "test_accuracy")


def separate(cached, config: TuneConfig, patience: int) -> dict:
    model = trial_model(cached, trial_context(config, cached), BATCH, lr=LR)
    stopper = keras.callbacks.EarlyStopping(
        config.monitor, patience=patience, mode="max", restore_best_weights=True
    )
    history = model.fit(
        epoch_inputs(*cached.stored_arrays("train"), seed=config.seed),
        steps_per_epoch=1,
        validation_data=cached.batches("validation", EVAL_BATCH),
        epochs=config.max_epochs,
        callbacks=[stopper],
        verbose=0,
        shuffle=False,
    )
    out = {"epochs_run": len(history.history["loss"]), "best_epoch": stopper.best_epoch + 1}
    for prefix, split in (("val", "validation"), ("test", "test")):
        scores = model.evaluate(cached.batches(split, EVAL_BATCH), verbose=0, return_dict=True)
        out |= {f"{prefix}_loss": scores["loss"], f"{prefix}_accuracy": scores["accuracy"]}
    return out


def main() -> None:
    tf.config.experimental.enable_op_determinism()
    cache = sys.argv[1]
    schedule = sys.argv[2] if len(sys.argv) > 2 else "constant"
    config = TuneConfig(patiences=(2, 4), max_epochs=25, cache_dir=cache, lr_schedule=schedule)
    cached = load_dataset(DatasetSpec(), cache)
    apart = {str(p): separate(cached, config, p) for p in config.patiences}
    print(
        json.dumps(
            {
                "shared": shared(cached, config),
                "separate": apart,
                "fit": shared(cached, config.model_copy(update={"training_loop": "fit"})),
            }
        )
    )


def shared(cached, config: TuneConfig) -> dict:
    rows = train_trial(cached, trial_context(config, cached), BATCH, lr=LR, lr_method="minimum")
    return {str(r.patience): {k: getattr(r, k) for k in (*KEYS, "training_loop")} for r in rows}


if __name__ == "__main__":
    main()
