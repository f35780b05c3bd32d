"""Which schedule, and which range-test rule reads its peak: whole `nighttune tune` runs
on real Fashion-MNIST, side by side, over seeds.

Every (``lr_schedule`` x ``lr_range.method``) cell runs the whole default tune as a
user runs it (a fresh process: the LR range test per batch size, the 3x3 grid of batch
size x patience, the export), on the same data (54,000 / 6,000 / 10,000 from Debian's
files, `make bench` installs them), model (the built-in MLP), epoch cap and seed; its
winner's test accuracy is read from the exported manifest. Beside them, the floor a
tuner must clear: one fit of the same model, Adam cosine-annealed from 2e-3, batch 128,
the same epoch cap. Prints each cell's mean test accuracy ± standard error over the
seeds and its mean seconds, and the seconds as a ratio of the constant/minimum cell
(the default before schedules) measured in the same run.

    .venv/bin/python bench/schedules.py [--seeds 0,1,2] [--max-epochs 20]
        [--schedules constant,cosine,one_cycle] [--methods minimum,steepest,valley]
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
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
from grid import dataset  # noqa: E402
from tune_vs_kt import FASHION_MNIST, model_for, test_accuracy, whole_tune  # noqa: E402

from nighttune.tasks.data.datasets import CachedDataset  # noqa: E402
from nighttune.tasks.tuning.evaluation import EVAL_BATCH  # noqa: E402
from nighttune.tasks.tuning.schedules import peak_schedule  # noqa: E402

REFERENCE_LR, REFERENCE_BATCH = 2e-3, 128


def one_annealed_fit(cached: CachedDataset, *, epochs: int, seed: int) -> tuple[float, float]:
    """(seconds, test accuracy) of one cosine-annealed fit at the reference LR and batch."""
    start = time.perf_counter()
    steps = cached.num_examples["train"] // REFERENCE_BATCH * epochs
    model = model_for(cached, REFERENCE_LR, seed)
    model.optimizer.learning_rate = peak_schedule("cosine", peak=REFERENCE_LR, total_steps=steps)
    model.fit(
        cached.batches("train", REFERENCE_BATCH, shuffle=True, seed=seed),
        validation_data=cached.batches("validation", EVAL_BATCH),
        epochs=epochs,
        verbose=0,
    )
    return time.perf_counter() - start, test_accuracy(model, cached)


def mean_and_error(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.4f}"
    error = statistics.stdev(values) / len(values) ** 0.5
    return f"{statistics.mean(values):.4f} ± {error:.4f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--schedules", default="constant,cosine,one_cycle")
    parser.add_argument("--methods", default="minimum,steepest,valley")
    args = parser.parse_args(argv)
    if not Path(FASHION_MNIST, "train-images-idx3-ubyte.gz").is_file():
        raise SystemExit(f"no Fashion-MNIST in {FASHION_MNIST}: make fashion-mnist")
    seeds = [int(s) for s in args.seeds.split(",")]
    cells = [(s, m) for s in args.schedules.split(",") for m in args.methods.split(",")]
    accuracy: dict[tuple[str, str], list[float]] = {cell: [] for cell in cells}
    seconds: dict[tuple[str, str], list[float]] = {cell: [] for cell in cells}
    with tempfile.TemporaryDirectory() as tmp:
        cached = dataset("fashion_mnist", Path(tmp))  # prepares tmp/tfds
        for seed in seeds:
            reference = one_annealed_fit(cached, epochs=args.max_epochs, seed=seed)
            accuracy.setdefault(("one fit", "cosine 2e-3"), []).append(reference[1])
            seconds.setdefault(("one fit", "cosine 2e-3"), []).append(reference[0])
            keras.backend.clear_session()
            for schedule, method in cells:
                extra = ["--lr-schedule", schedule, "--lr-method", method, "--seed", str(seed)]
                took, test = whole_tune(
                    f"{tmp}/tfds", f"{tmp}/{schedule}-{method}-{seed}", args.max_epochs, extra=extra
                )
                accuracy[(schedule, method)].append(test)
                seconds[(schedule, method)].append(took)
                print(f"seed {seed} {schedule:<10} {method:<9} {took:6.1f} s  test {test:.4f}")
    base = statistics.mean(seconds.get(("constant", "minimum"), [float("nan")]))
    print(
        f"\nFashion-MNIST 54,000/6,000/10,000, MLP 128, max {args.max_epochs} epochs, "
        f"seeds {args.seeds}; whole default tune (3x3 grid, sweeps incl.) per cell"
    )
    print(f"{'schedule':<10} {'rule':<12} {'test accuracy':>16} {'seconds':>8} {'time ratio':>10}")
    for (schedule, method), values in accuracy.items():
        took = statistics.mean(seconds[(schedule, method)])
        print(
            f"{schedule:<10} {method:<12} {mean_and_error(values):>16} {took:>8.1f} "
            f"{took / base:>10.2f}"
        )


if __name__ == "__main__":
    main()
