"""A user's own models, timed side by side in one run.

(1) The same user CNN (examples/your_model: a registered ConvBlock layer with
    BatchNormalization and Dropout, SGD with Nesterov momentum) on digits, trained as a
    trial on both paths: the fused epoch loop (XLA) and the plain Keras `fit` that
    trials fall back to (`training_loop: fit`). Rounds alternate the two; prints the
    median seconds per epoch of each, their ratio, and each path's stop epochs.
(2) A user's batch size x patience grid: the breast-cancer classifier of
    examples/your_model (its own data builder, AdamW, AUC) with nighttune's trials (one
    fit per batch size, every patience read off it) vs KerasTuner `GridSearch` over the
    same cells (one fit per cell with `EarlyStopping(restore_best_weights=True)`), same
    model, data, LR (the user's compiled 1e-3) and max epochs. Prints the wall-time
    ratio and the best val_auc and val_accuracy of each side by side. KerasTuner is
    needed only here (`make bench` installs it).

    .venv/bin/python bench/user_model.py [--rounds 3] [--max-epochs 40]
"""

from __future__ import annotations

import argparse
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

from tasks.core.code import load_builder  # noqa: E402
from tasks.core.config import DatasetSpec, ModelSpec, TuneConfig  # noqa: E402
from tasks.data.datasets import CachedDataset, load_dataset  # noqa: E402
from tasks.tuning.loops import EVAL_BATCH  # noqa: E402
from tasks.tuning.training import train_trial  # noqa: E402

CNN = ModelSpec(builder="your_models:fashion_cnn", code_path=(str(EXAMPLES),))
TABULAR = ModelSpec(builder="your_models:tabular_classifier", code_path=(str(EXAMPLES),))
TABLE = DatasetSpec(builder="your_data:breast_cancer", code_path=(str(EXAMPLES),))
BATCHES, PATIENCES = (16, 32, 64), (5, 10, 20)


def trial(cached: CachedDataset, loop: str, epochs: int, store: str) -> tuple[float, list]:
    """Seconds per epoch of one CNN trial on ``loop``, and its (patience, epochs run)."""
    config = TuneConfig(
        model=CNN,
        patiences=(3, 6),
        max_epochs=epochs,
        training_loop=loop,
        cache_dir=store,
    )
    rows = train_trial(cached, config, 64, 0.02, "fixed")
    longest = max(r.epochs_run for r in rows)
    seconds = max(r.train_seconds for r in rows)
    return seconds / longest, [(r.patience, r.epochs_run) for r in rows]


def paths(rounds: int, epochs: int, tmp: str) -> list[tuple[str, str, str]]:
    cached = load_dataset(DatasetSpec(), f"{tmp}/data")
    per_epoch: dict[str, list[float]] = {"fused": [], "fit": []}
    stops: dict[str, list] = {}
    for i in range(rounds):
        for loop in ("fused", "fit") if i % 2 == 0 else ("fit", "fused"):
            seconds, stops[loop] = trial(cached, loop, epochs, f"{tmp}/store-{loop}-{i}")
            per_epoch[loop].append(seconds)
    fused, fit = (statistics.median(per_epoch[k]) for k in ("fused", "fit"))
    print(f"(1) user CNN on digits, batch 64, {rounds} rounds alternating, up to {epochs} epochs")
    for loop in ("fused", "fit"):
        runs = ", ".join(f"{s * 1000:.0f}" for s in per_epoch[loop])
        median = 1000 * statistics.median(per_epoch[loop])
        print(f"    {loop:<6} ms/epoch {runs}  (median {median:.0f})")
        print(f"           (patience, epochs run): {stops[loop]}")
    print(f"    fit / fused = {fit / fused:.2f}")
    return [
        (
            "user CNN epoch: plain fit (fallback) / fused loop",
            f"{fit / fused:.2f} (stops {'equal' if stops['fit'] == stops['fused'] else 'differ'})",
            "> 1: the fused loop is the fast path",
        )
    ]


def ours(cached: CachedDataset, epochs: int, store: str) -> dict[str, float]:
    config = TuneConfig(
        dataset=TABLE,
        model=TABULAR,
        patiences=PATIENCES,
        max_epochs=epochs,
        monitor="val_auc",
        cache_dir=store,
    )
    rows = [r for b in BATCHES for r in train_trial(cached, config, b, 1e-3, "fixed")]
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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=40)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        return paths(args.rounds, min(args.max_epochs, 20), tmp) + grid(args.max_epochs, tmp)


if __name__ == "__main__":
    main()
