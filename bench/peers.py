"""The whole default `nighttune tune` against the best peers, side by side, over seeds.

On real Fashion-MNIST (54,000 / 6,000 / 10,000 from Debian's files, `make bench`
installs them), the built-in MLP, the same epoch cap and seed for every approach:

(a) `nighttune tune` as a user runs it, defaults only (a fresh process: the LR range
    test per batch size, the grid, the export); its winner's test accuracy read from
    the exported manifest;
(b) one fit, Adam cosine-annealed from 2e-3, batch 128: the floor a tuner must clear;
(c) KerasTuner `Hyperband` over learning rate (1e-4..1e-1, log) x batch size
    (32/64/128), factor 3;
(d) Optuna, its TPE sampler with its `HyperbandPruner` over the same space, ``--trials``
    trials, each reporting validation accuracy every epoch and keeping its best epoch's
    weights.
Each approach's model is the one it picks by validation accuracy, scored on the test
split. Prints each one's mean test accuracy ± standard error over the seeds and mean
seconds, and (a)'s time as a share of (c)'s and (d)'s, measured in the same run.
KerasTuner and Optuna are needed only here (the ``bench`` extra).

    .venv/bin/python bench/peers.py [--seeds 0,1,2] [--max-epochs 20] [--trials 30]
        [--variant=--no-hurdle ...]   (more tunes side by side; --trials 0: no peers)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
from grid import BATCHES, dataset  # noqa: E402
from schedules import mean_and_error, one_annealed_fit  # noqa: E402
from tune_vs_kt import FASHION_MNIST, kt_search, model_for, test_accuracy, whole_tune  # noqa: E402

from nighttune.tasks.data.datasets import CachedDataset  # noqa: E402
from nighttune.tasks.tuning.evaluation import EVAL_BATCH  # noqa: E402


class _ReportToOptuna(keras.callbacks.Callback):
    """Each epoch's validation accuracy to the trial; stops the fit when it is pruned."""

    def __init__(self, trial) -> None:
        super().__init__()
        self.trial = trial
        self.pruned = False

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.trial.report(float((logs or {})["val_accuracy"]), epoch)
        if self.trial.should_prune():
            self.pruned = True
            self.model.stop_training = True


def optuna_search(
    cached: CachedDataset,
    *,
    epochs: int,
    seed: int,
    trials: int,
    build: Callable[[float, int], keras.Model] | None = None,
) -> tuple[float, float, float]:
    """(seconds, seconds to the end of its best trial, best model's test accuracy).

    ``build(lr, seed)``: the model at that learning rate (default: the seed's MLP)."""
    import optuna

    build = build or (lambda lr, seed: model_for(cached, lr, seed))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    best: dict[str, object] = {"score": -1.0}
    start = time.perf_counter()

    def objective(trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        batch = trial.suggest_categorical("batch_size", list(BATCHES))
        model = build(lr, seed)
        report = _ReportToOptuna(trial)
        keep_best = keras.callbacks.EarlyStopping(
            "val_accuracy", patience=epochs, mode="max", restore_best_weights=True
        )
        history = model.fit(
            cached.batches("train", batch, shuffle=True, seed=seed),
            validation_data=cached.batches("validation", EVAL_BATCH),
            epochs=epochs,
            verbose=0,
            callbacks=[report, keep_best],
        )
        score = max(history.history["val_accuracy"])
        if report.pruned:
            raise optuna.TrialPruned()
        if score > best["score"]:
            best.update(score=score, model=model, ended=time.perf_counter() - start)
        return score

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=epochs, reduction_factor=3
        ),
    )
    study.optimize(objective, n_trials=trials)
    seconds = time.perf_counter() - start
    return seconds, float(best["ended"]), test_accuracy(best["model"], cached)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--trials", type=int, default=30, help="Optuna's; 0: no peers")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="also the tune with these flags, side by side (repeatable): --variant=--no-hurdle",
    )
    args = parser.parse_args(argv)
    if not Path(FASHION_MNIST, "train-images-idx3-ubyte.gz").is_file():
        raise SystemExit(f"no Fashion-MNIST in {FASHION_MNIST}: make fashion-mnist")
    names = ["(a) nighttune tune, defaults", "(b) one cosine fit, 2e-3, batch 128"]
    if args.trials > 0:
        names += ["(c) KerasTuner Hyperband, lr x batch", "(d) Optuna TPE + Hyperband pruner"]
    names += [f"(a) tune {variant}" for variant in args.variant]
    accuracy: dict[str, list[float]] = {name: [] for name in names}
    seconds: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        cached = dataset("fashion_mnist", Path(tmp))  # prepares tmp/tfds
        for seed in [int(s) for s in args.seeds.split(",")]:
            epochs = args.max_epochs
            ours = whole_tune(
                f"{tmp}/tfds", f"{tmp}/ours-{seed}", epochs, extra=["--seed", str(seed)]
            )
            results = {
                names[0]: ours,
                names[1]: one_annealed_fit(cached, epochs=epochs, seed=seed),
            }
            for variant in args.variant:
                results[f"(a) tune {variant}"] = whole_tune(
                    f"{tmp}/tfds",
                    f"{tmp}/ours-{seed}{variant}",
                    epochs,
                    extra=["--seed", str(seed), *variant.split()],
                )
            if args.trials > 0:
                band = kt_search(
                    cached, epochs=epochs, seed=seed, folder=f"{tmp}/kt", kind="hyperband"
                )
                results[names[2]] = (band[0], band[2])
                found = optuna_search(cached, epochs=epochs, seed=seed, trials=args.trials)
                results[names[3]] = (found[0], found[2])
            for name, (took, test) in results.items():
                accuracy[name].append(test)
                seconds[name].append(took)
                print(f"seed {seed} {name:<38} {took:7.1f} s  test {test:.4f}")
            keras.backend.clear_session()
    print(
        f"\nFashion-MNIST 54,000/6,000/10,000, MLP 128, max {args.max_epochs} epochs, "
        f"seeds {args.seeds}"
    )
    print(f"{'approach':<38} {'test accuracy':>16} {'seconds':>8}")
    for name in names:
        print(
            f"{name:<38} {mean_and_error(accuracy[name]):>16} "
            f"{statistics.mean(seconds[name]):>8.1f}"
        )
    ours_seconds = statistics.mean(seconds[names[0]])
    for other in names[1:]:
        ratio = ours_seconds / statistics.mean(seconds[other])
        print(f"(a)'s time / {other}'s: {ratio:.2f}")


if __name__ == "__main__":
    main()
