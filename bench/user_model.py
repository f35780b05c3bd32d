"""A user's own models, timed side by side in one run.

(1) Per model — the built-in MLP and CNN on digits, the user CNN of examples/your_model
    (a registered ConvBlock layer with BatchNormalization and Dropout, SGD with
    Nesterov momentum) on digits, the user tabular MLP on breast cancer — one trial on
    each path: the fused epoch loop with XLA, without, and the plain Keras `fit` that
    trials fall back to. Prints the median epoch after the first (and the first, which
    holds the compile) and what `xla: auto` picks (`tasks.tuning.context.use_xla`).
(2) A user's batch size x patience grid: the breast-cancer classifier of
    examples/your_model (its own data builder, AdamW, AUC) with nighttune's trials (one
    fit per batch size, every patience read off it) vs KerasTuner `GridSearch` over the
    same cells (one fit per cell with `EarlyStopping(restore_best_weights=True)`), same
    model, data, LR (the user's compiled 1e-3) and max epochs. Prints the wall-time
    ratio and the best val_auc and val_accuracy of each side by side. KerasTuner is
    needed only here (`make bench` installs it).

    .venv/bin/python bench/user_model.py [--max-epochs 40]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "your_model"
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402

from nighttune.tasks.core.code import load_builder  # noqa: E402
from nighttune.tasks.core.config import DatasetSpec, ModelSpec, TuneConfig  # noqa: E402
from nighttune.tasks.data.datasets import CachedDataset, load_dataset  # noqa: E402
from nighttune.tasks.tuning.context import trial_context, use_xla  # noqa: E402
from nighttune.tasks.tuning.evaluation import EVAL_BATCH  # noqa: E402
from nighttune.tasks.tuning.training import train_trial  # noqa: E402

CNN = ModelSpec(builder="your_models:fashion_cnn", code_path=(str(EXAMPLES),))
TABULAR = ModelSpec(builder="your_models:tabular_classifier", code_path=(str(EXAMPLES),))
TABLE = DatasetSpec(builder="your_data:breast_cancer", code_path=(str(EXAMPLES),))
BATCHES, PATIENCES = (16, 32, 64), (5, 10, 20)


MODELS = {  # name -> (model, dataset)
    "built-in MLP": (ModelSpec(), DatasetSpec()),
    "built-in CNN": (ModelSpec(kind="cnn", filters=(16, 32), hidden_units=(64,)), DatasetSpec()),
    "user CNN (BN)": (CNN, DatasetSpec()),
    "user tabular MLP": (TABULAR, TABLE),
}
VARIANTS = {  # name -> config overrides
    "fused, XLA": {"training_loop": "fused", "xla": "on"},
    "fused, no XLA": {"training_loop": "fused", "xla": "off"},
    "plain fit": {"training_loop": "fit"},
}


def epoch_times(cached: CachedDataset, model: ModelSpec, *, variant: dict, store: str) -> tuple:
    """(first epoch s, median later epoch s, (patience, epochs run)) of one trial."""
    config = TuneConfig(model=model, patiences=(3,), max_epochs=10, cache_dir=store, **variant)
    (row,) = train_trial(cached, trial_context(config, cached), 64, lr=0.01, lr_method="minimum")
    meta = json.loads((Path(row.model_path or "").parent / "meta.json").read_text())
    seconds = meta["data"]["epoch_seconds"]
    return seconds[0], statistics.median(seconds[1:]), row.epochs_run


def loops(tmp: str) -> list[tuple[str, str, str]]:
    print("(1) ms per epoch after the first (first epoch, with its compile, in brackets); batch 64")
    print(f"    {'model':<18}" + "".join(f"{v:>22}" for v in VARIANTS) + "   xla: auto picks")
    out = []
    for name, (model, data) in MODELS.items():
        cached = load_dataset(data, f"{tmp}/data")
        times = {
            v: epoch_times(cached, model, variant=over, store=f"{tmp}/{name}-{v}")
            for v, over in VARIANTS.items()
        }
        cells = "".join(f"{1000 * t[1]:>12.0f} ({1000 * t[0]:>6.0f})" for t in times.values())
        xla, _ = use_xla(model)
        print(f"    {name:<18}{cells}   {'XLA' if xla else 'no XLA'}")
        on, off, fit = (times[v][1] for v in VARIANTS)
        out.append(
            (
                f"{name}: epoch XLA / no XLA, fit / fused (auto)",
                f"{on / off:.2f}, {fit / (on if xla else off):.2f}",
                "auto picks the faster",
            )
        )
    return out


def ours(cached: CachedDataset, epochs: int, store: str) -> dict[str, float]:
    config = TuneConfig(
        dataset=TABLE,
        model=TABULAR,
        patiences=PATIENCES,
        max_epochs=epochs,
        monitor="val_auc",
        cache_dir=store,
    )
    rows = [
        row
        for b in BATCHES
        for row in train_trial(
            cached, trial_context(config, cached), b, lr=1e-3, lr_method="minimum"
        )
    ]
    best = max(rows, key=lambda r: r.value("val_auc") or 0.0)
    return {"val_auc": best.value("val_auc") or 0.0, "val_accuracy": best.val_accuracy or 0.0}


def kerastuner(cached: CachedDataset, epochs: int, folder: str) -> dict[str, float]:
    import keras_tuner as kt

    build = load_builder(TABULAR.builder or "", TABULAR.code_path)

    class Grid(kt.HyperModel):
        def build(self, hp):
            hp.Choice("batch_size", list(BATCHES))
            hp.Choice("patience", list(PATIENCES))
            keras.utils.set_random_seed(0)
            return build(cached.input_shape, cached.num_classes)

        def fit(self, hp, model, *args, **kwargs):
            stopper = keras.callbacks.EarlyStopping(
                "val_auc", patience=hp["patience"], mode="max", restore_best_weights=True
            )
            kwargs["callbacks"] = [*kwargs.get("callbacks", []), stopper]
            return model.fit(
                cached.batches("train", hp["batch_size"], shuffle=True, seed=0),
                validation_data=cached.batches("validation", EVAL_BATCH),
                epochs=epochs,
                verbose=0,
                **{k: v for k, v in kwargs.items() if k != "verbose"},
            )

    tuner = kt.GridSearch(
        Grid(),
        objective=kt.Objective("val_auc", "max"),
        directory=folder,
        project_name="grid",
        overwrite=True,
        seed=0,
    )
    tuner.search(verbose=0)
    model = tuner.get_best_models(1)[0]
    scores = model.evaluate(cached.batches("validation", EVAL_BATCH), verbose=0, return_dict=True)
    return {"val_auc": scores["auc"], "val_accuracy": scores["accuracy"]}


def grid(epochs: int, tmp: str) -> list[tuple[str, str, str]]:
    cached = load_dataset(TABLE, f"{tmp}/data")
    load_builder(TABULAR.builder or "", TABULAR.code_path)
    runs = {}
    for name, fn in (
        ("nighttune trials", lambda: ours(cached, epochs, f"{tmp}/store")),
        ("KerasTuner GridSearch", lambda: kerastuner(cached, epochs, f"{tmp}/kt")),
    ):
        start = time.perf_counter()
        scores = fn()
        runs[name] = (time.perf_counter() - start, scores)
    print(f"(2) breast-cancer classifier, grid {BATCHES} x {PATIENCES}, up to {epochs} epochs")
    print(f"    {'approach':<24} {'seconds':>8} {'best val_auc':>12} {'its val acc':>11}")
    for name, (seconds, s) in runs.items():
        print(f"    {name:<24} {seconds:>8.1f} {s['val_auc']:>12.4f} {s['val_accuracy']:>11.4f}")
    (a, sa), (b, sb) = runs.values()
    print(f"    nighttune / KerasTuner = {a / b:.2f}")
    return [
        (
            "user model grid: nighttune / KerasTuner GridSearch",
            f"{a / b:.2f} (val_auc {sa['val_auc']:.4f} vs {sb['val_auc']:.4f})",
            "< 1, same AUC +-0.01",
        )
    ]


def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-epochs", type=int, default=40)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        return loops(tmp) + grid(args.max_epochs, tmp)


if __name__ == "__main__":
    main()
