"""The whole `nighttune tune` on real Fashion-MNIST against KerasTuner, side by side.

(a) `nighttune tune` as a user runs it: a fresh process (start-up, the temporary Prefect
    server, the dataset cache built from the prepared TFDS data, one LR range test per
    batch size, the 3x3 grid of batch size x patience, the export); its winner's test
    accuracy read from the exported manifest.
(b) KerasTuner `GridSearch` over the same 3x3 cells (Keras `EarlyStopping` with
    `restore_best_weights`), at the seed's learning rate (Adam 1e-3).
(c) KerasTuner `Hyperband` over learning rate (1e-4..1e-1, log) x batch size: the
    search nighttune's LR range test replaces; timed to the end of its best trial.
Same data (54,000 / 6,000 / 10,000 from Debian's files, `make bench` installs them),
model (MLP 128), max epochs and seed. KerasTuner fits with Keras's own fast settings
(`steps_per_execution=16`, XLA). Prints each one's seconds and test accuracy of the model
it picks by validation accuracy, and the ratios (a)/(b) (goal <= 0.2, accuracy not
lower) and (a)/(c)'s time to its best.

    .venv/bin/python bench/tune_vs_kt.py [--max-epochs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
from grid import BATCHES, PATIENCES, dataset  # noqa: E402

from nighttune.tasks.core.config import TuneConfig  # noqa: E402
from nighttune.tasks.data.datasets import CachedDataset  # noqa: E402
from nighttune.tasks.tuning.evaluation import EVAL_BATCH  # noqa: E402
from nighttune.tasks.tuning.models import build_model  # noqa: E402

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
NIGHTTUNE = str(Path(sys.executable).with_name("nighttune"))
SEED_LR = 1e-3


def whole_tune(
    data_dir: str, tmp: str, epochs: int, *, extra: Sequence[str] = ()
) -> tuple[float, float]:
    """(seconds, winner's test accuracy) of one `nighttune tune` process; ``extra``:
    more flags."""
    command = [NIGHTTUNE, "tune", "--dataset", "fashion_mnist", "--data-dir", data_dir, *extra]
    command += ["--cache-dir", f"{tmp}/cache", "--export-to", f"{tmp}/exports"]
    command += ["--batch-sizes", ",".join(map(str, BATCHES))]
    command += ["--patiences", ",".join(map(str, PATIENCES)), "--max-epochs", str(epochs)]
    env = {**os.environ, "PREFECT_HOME": f"{tmp}/prefect"}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    seconds = time.perf_counter() - start
    return seconds, float(last_manifest(tmp)["winner"]["test_accuracy"])


def last_manifest(tmp: str) -> dict:
    """The manifest of the run `whole_tune` exported under ``tmp``."""
    run_id = json.loads(Path(tmp, "exports", "latest.json").read_text())["run_id"]
    return json.loads(Path(tmp, "exports", run_id, "manifest.json").read_text())


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


def test_accuracy(model: keras.Model, cached: CachedDataset) -> float:
    scores = model.evaluate(cached.batches("test", EVAL_BATCH), verbose=0, return_dict=True)
    return float(scores["accuracy"])


def kt_search(
    cached: CachedDataset,
    *,
    epochs: int,
    seed: int,
    folder: str,
    kind: str,
    build: Callable[[float, int], keras.Model] | None = None,
) -> tuple:
    """(seconds, seconds to the end of its best trial, best model's test accuracy).

    ``build(lr, seed)``: the model at that learning rate (default: the seed's MLP)."""
    import keras_tuner as kt

    build = build or (lambda lr, seed: model_for(cached, lr, seed))

    class Model(kt.HyperModel):
        def build(self, hp):
            hp.Choice("batch_size", list(BATCHES))
            if kind == "grid":
                hp.Choice("patience", list(PATIENCES))
                return build(SEED_LR, seed)
            return build(hp.Float("lr", 1e-4, 1e-1, sampling="log"), seed)

        def fit(self, hp, model, *args, **kwargs):
            callbacks = list(kwargs.pop("callbacks", []))
            if kind == "grid":
                callbacks.append(
                    keras.callbacks.EarlyStopping(
                        "val_accuracy",
                        patience=hp["patience"],
                        mode="max",
                        restore_best_weights=True,
                    )
                )
            kwargs.pop("verbose", None)
            return model.fit(
                cached.batches("train", hp["batch_size"], shuffle=True, seed=seed),
                validation_data=cached.batches("validation", EVAL_BATCH),
                verbose=0,
                shuffle=False,
                callbacks=callbacks,
                **{k: v for k, v in kwargs.items() if k != "epochs"},
                epochs=kwargs.get("epochs", epochs),
            )

    ended: list[tuple[float, float]] = []  # (seconds since start, trial score)
    base = kt.GridSearch if kind == "grid" else kt.Hyperband
    options = {"max_trials": None} if kind == "grid" else {"max_epochs": epochs, "factor": 3}

    class Timed(base):  # type: ignore[misc, valid-type]
        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            ended.append((time.perf_counter() - start, trial.score or 0.0))

    tuner = Timed(
        Model(),
        objective="val_accuracy",
        directory=folder,
        project_name=kind,
        overwrite=True,
        seed=seed,
        **{k: v for k, v in options.items() if v is not None},
    )
    start = time.perf_counter()
    tuner.search(epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    to_best = max(ended, key=lambda e: e[1])[0]
    return seconds, to_best, test_accuracy(tuner.get_best_models(1)[0], cached)


def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not Path(FASHION_MNIST, "train-images-idx3-ubyte.gz").is_file():
        print(f"(no Fashion-MNIST in {FASHION_MNIST}: apt-get install dataset-fashion-mnist)")
        return []
    with tempfile.TemporaryDirectory() as tmp:
        cached = dataset("fashion_mnist", Path(tmp))  # prepares tmp/tfds, caches for KT
        ours = whole_tune(f"{tmp}/tfds", f"{tmp}/ours", args.max_epochs)
        grid = kt_search(
            cached, epochs=args.max_epochs, seed=args.seed, folder=f"{tmp}/kt", kind="grid"
        )
        band = kt_search(
            cached, epochs=args.max_epochs, seed=args.seed, folder=f"{tmp}/kt", kind="hyperband"
        )
    print(
        f"Fashion-MNIST 54,000/6,000/10,000, MLP 128, max {args.max_epochs} epochs, "
        f"grid {BATCHES} x {PATIENCES}"
    )
    print(f"{'approach':<46} {'seconds':>8} {'to best':>8} {'test acc':>9}")
    name = "(a) nighttune tune (whole run, LR sweeps incl.)"
    print(f"{name:<46} {ours[0]:>8.1f} {'':>8} {ours[1]:>9.4f}")
    for name, (seconds, to_best, accuracy) in (
        ("(b) KerasTuner GridSearch, lr 1e-3", grid),
        ("(c) KerasTuner Hyperband, lr x batch size", band),
    ):
        print(f"{name:<46} {seconds:>8.1f} {to_best:>8.1f} {accuracy:>9.4f}")
    return [
        (
            "whole tune on Fashion-MNIST (3x3 grid, sweeps incl.) / KerasTuner GridSearch",
            f"{ours[0] / grid[0]:.2f} ({ours[0]:.0f} s vs {grid[0]:.0f} s; "
            f"test acc {ours[1]:.4f} vs {grid[2]:.4f})",
            "<= 0.2, acc not lower",
        ),
        (
            "whole tune on Fashion-MNIST / KerasTuner Hyperband (lr x batch) to its best",
            f"{ours[0] / band[1]:.2f} ({ours[0]:.0f} s vs {band[1]:.0f} s of {band[0]:.0f} s; "
            f"test acc {ours[1]:.4f} vs {band[2]:.4f})",
            "-",
        ),
    ]


if __name__ == "__main__":
    main()
