"""The 3x3 grid (batch size x patience), three ways, timed side by side in one run.

(a) nighttune: one fit per batch size, every patience read off it (`train_trial`);
(b) naive: one fit per cell with Keras `EarlyStopping(restore_best_weights=True)`;
(c) KerasTuner `GridSearch` over the same two hyperparameters.
Same data (digits, or real Fashion-MNIST with --dataset fashion_mnist: prepared from
Debian's files into a temporary data_dir), model (MLP 128), fixed LR, seed and max
epochs. (b) and (c) fit
with Keras's own fast settings (`steps_per_execution=16`, XLA), (a) with its epoch loop
(`tasks.tuning.epoch_loop`), so the ratios measure the grid mechanics and the loop together.
Prints (a)/(c), (a)/(b) and each one's best validation accuracy. KerasTuner is needed
only here: `pip install keras-tuner`.

    .venv/bin/python bench/grid.py [--max-epochs 30] [--lr 0.01] [--dataset fashion_mnist]
        [--skip-naive]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402

from nighttune.tasks.core.config import DatasetSpec, TuneConfig  # noqa: E402
from nighttune.tasks.data.datasets import CachedDataset, load_dataset  # noqa: E402
from nighttune.tasks.tuning.context import trial_context  # noqa: E402
from nighttune.tasks.tuning.evaluation import EVAL_BATCH  # noqa: E402
from nighttune.tasks.tuning.models import build_model  # noqa: E402
from nighttune.tasks.tuning.training import train_trial  # noqa: E402

BATCHES, PATIENCES = (32, 64, 128), (3, 6, 10)


def model_for(cached: CachedDataset, lr: float, seed: int) -> keras.Model:
    return build_model(
        TuneConfig().model,
        cached.input_shape,
        len(cached.class_names),
        learning_rate=lr,
        seed=seed,
        steps_per_execution=16,
        jit_compile=True,
    )


def ours(cached: CachedDataset, lr: float, *, epochs: int, seed: int, cache: str) -> float:
    config = TuneConfig(patiences=PATIENCES, max_epochs=epochs, seed=seed, cache_dir=cache)
    rows = [
        row
        for b in BATCHES
        for row in train_trial(cached, trial_context(config, cached), b, lr=lr, lr_method="minimum")
    ]
    return max(r.val_accuracy for r in rows if r.status == "ok")


def naive(cached: CachedDataset, lr: float, *, epochs: int, seed: int) -> float:
    best = 0.0
    for batch_size in BATCHES:
        for patience in PATIENCES:
            model = model_for(cached, lr, seed)
            stopper = keras.callbacks.EarlyStopping(
                "val_accuracy", patience=patience, mode="max", restore_best_weights=True
            )
            model.fit(
                cached.batches("train", batch_size, shuffle=True, seed=seed),
                validation_data=cached.batches("validation", EVAL_BATCH),
                epochs=epochs,
                callbacks=[stopper],
                verbose=0,
                shuffle=False,
            )
            scores = model.evaluate(
                cached.batches("validation", EVAL_BATCH), verbose=0, return_dict=True
            )
            best = max(best, scores["accuracy"])
    return best


def kerastuner(cached: CachedDataset, lr: float, *, epochs: int, seed: int, folder: str) -> float:
    import keras_tuner as kt

    class GridModel(kt.HyperModel):
        def build(self, hp):
            hp.Choice("batch_size", list(BATCHES))
            hp.Choice("patience", list(PATIENCES))
            return model_for(cached, lr, seed)

        def fit(self, hp, model, *args, **kwargs):
            stopper = keras.callbacks.EarlyStopping(
                "val_accuracy", patience=hp["patience"], mode="max", restore_best_weights=True
            )
            kwargs["callbacks"] = [*kwargs.get("callbacks", []), stopper]
            return model.fit(
                cached.batches("train", hp["batch_size"], shuffle=True, seed=seed),
                validation_data=cached.batches("validation", EVAL_BATCH),
                epochs=epochs,
                verbose=0,
                shuffle=False,
                **{k: v for k, v in kwargs.items() if k != "verbose"},
            )

    tuner = kt.GridSearch(
        GridModel(),
        objective="val_accuracy",
        directory=folder,
        project_name="grid",
        overwrite=True,
        seed=seed,
    )
    tuner.search(verbose=0)
    best = tuner.oracle.get_best_trials(1)[0]
    return float(best.score)


def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", choices=("digits", "fashion_mnist"), default="digits")
    parser.add_argument("--skip-naive", action="store_true", help="leave out (b)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cached = dataset(args.dataset, Path(tmp))
        model_for(cached, args.lr, args.seed)  # import and trace costs paid before timing
        runs = {}
        for name, fn in (
            (
                "(a) nighttune shared fit",
                lambda: ours(
                    cached, args.lr, epochs=args.max_epochs, seed=args.seed, cache=f"{tmp}/store"
                ),
            ),
            (
                "(b) naive fit per cell",
                lambda: naive(cached, args.lr, epochs=args.max_epochs, seed=args.seed),
            ),
            (
                "(c) KerasTuner GridSearch",
                lambda: kerastuner(
                    cached, args.lr, epochs=args.max_epochs, seed=args.seed, folder=f"{tmp}/kt"
                ),
            ),
        ):
            if args.skip_naive and name.startswith("(b)"):
                continue
            start = time.perf_counter()
            accuracy = fn()
            runs[name] = (time.perf_counter() - start, accuracy)
    print(
        f"{args.dataset} ({sum(cached.num_examples.values()):,} examples), MLP 128, "
        f"lr {args.lr:g}, 3x3 grid {BATCHES} x {PATIENCES}, max {args.max_epochs} epochs"
    )
    print(f"{'approach':<28} {'seconds':>8} {'best val acc':>12}")
    for name, (seconds, accuracy) in runs.items():
        print(f"{name:<28} {seconds:>8.1f} {accuracy:>12.4f}")
    seconds = {name.split()[0]: s for name, (s, _) in runs.items()}
    accuracy = {name.split()[0]: acc for name, (_, acc) in runs.items()}
    a, c = seconds["(a)"], seconds["(c)"]
    rows = [
        (
            f"3x3 grid on {args.dataset}: nighttune / KerasTuner GridSearch",
            f"{a / c:.2f} (best val acc {accuracy['(a)']:.4f} vs {accuracy['(c)']:.4f})",
            "<= 0.4, same acc +-0.5 pt",
        )
    ]
    if "(b)" in seconds:
        rows.append(("3x3 grid: nighttune / naive fit per cell", f"{a / seconds['(b)']:.2f}", "-"))
    print("   ".join(f"{name} = {value}" for name, value, _ in rows))
    return rows


def dataset(name: str, tmp: Path) -> CachedDataset:
    """digits, or Fashion-MNIST prepared from Debian's files (`nighttune data prepare`)."""
    if name == "digits":
        return load_dataset(DatasetSpec())
    from nighttune.tasks.data.prepare import prepare_catalog

    folder = "/usr/share/datasets/fashion-mnist"  # make bench installs it (root + apt)
    prepare_catalog(name, folder, str(tmp / "tfds"))
    return load_dataset(DatasetSpec(name=name, data_dir=str(tmp / "tfds")), tmp / "cache")


if __name__ == "__main__":
    main()
