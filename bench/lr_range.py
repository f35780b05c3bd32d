"""LR range test quality and cost: each suggestion vs the grid-best LR, measured in one run.

For each batch size: train a fresh model for a few epochs at 9 log-spaced LRs to find
the grid-best validation accuracy; run one range test; train at each method's
suggestion; print suggested LR / grid-best LR (goal: default method within 3x), the
validation accuracy each reaches, and the sweep's cost in epochs (goal <= 1).

    .venv/bin/python bench/lr_range.py [--dataset digits] [--data-dir DIR] [--epochs 12]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from nighttune.tasks.core.config import DatasetSpec, LRRangeSpec, ModelSpec  # noqa: E402
from nighttune.tasks.data.datasets import CachedDataset, load_dataset  # noqa: E402
from nighttune.tasks.tuning.lr_range import lr_range_test  # noqa: E402
from nighttune.tasks.tuning.models import build_model  # noqa: E402


def val_accuracy(
    cached: CachedDataset, batch_size: int, lr: float, *, epochs: int, seed: int
) -> float:
    """Best validation accuracy over ``epochs`` epochs at a fixed LR (what early stopping keeps)."""
    model = build_model(
        ModelSpec(),
        cached.input_shape,
        len(cached.class_names),
        learning_rate=lr,
        seed=seed,
        steps_per_execution=8,
    )
    history = model.fit(
        cached.batches("train", batch_size, shuffle=True, seed=seed),
        validation_data=cached.batches("validation", 512),
        epochs=epochs,
        verbose=0,
    )
    accuracies = [a for a in history.history["val_accuracy"] if math.isfinite(a)]
    return max(accuracies, default=0.0)


def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--batch-sizes", default="32,128")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args(argv)

    cached = load_dataset(DatasetSpec(name=args.dataset, data_dir=args.data_dir))
    grid = np.logspace(-4, 0, 9)
    print(f"dataset {args.dataset}, MLP 128, {args.epochs} epochs per training")
    print(
        f"{'seed':>4} {'batch':>5} {'method':<9} {'lr':>9} {'lr/grid-best':>12} {'val acc':>8} "
        f"{'grid-best acc':>13} {'sweep epochs':>12}"
    )
    summary: dict[str, list[tuple[float, float | None]]] = {}  # (lr / grid-best, acc gap)
    costs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            scores = [
                val_accuracy(cached, batch_size, lr, epochs=args.epochs, seed=seed) for lr in grid
            ]
            best = int(np.argmax(scores))
            sweep = lr_range_test(cached, ModelSpec(), batch_size, spec=LRRangeSpec(), seed=seed)
            cost = sweep.steps / math.ceil(cached.num_examples["train"] / batch_size)
            costs.append(cost)
            row = f"{seed:>4} {batch_size:>5}"
            print(f"{row} {'grid':<9} {grid[best]:>9.2e} {1.0:>12.2f} {scores[best]:>8.4f}")
            for method, lr in sweep.suggestions.items():
                if lr is None:
                    print(f"{row} {method:<9} {'none':>9}  ({sweep.notes[method]})")
                    summary.setdefault(method, []).append((math.inf, None))
                    continue
                accuracy = val_accuracy(cached, batch_size, lr, epochs=args.epochs, seed=seed)
                ratio = lr / grid[best]
                summary.setdefault(method, []).append((ratio, accuracy - scores[best]))
                print(
                    f"{row} {method:<9} {lr:>9.2e} {ratio:>12.2f} {accuracy:>8.4f} "
                    f"{scores[best]:>13.4f} {cost:>12.2f}"
                )
    print()
    print(
        f"{'method':<9} {'within 3x':>9} {'median lr/best':>14} {'mean acc - best':>15} "
        f"{'no suggestion':>13}"
    )
    for method, rows in summary.items():
        ratios = np.array([r for r, _ in rows])
        within = np.mean(np.abs(np.log(ratios)) <= math.log(3))
        gaps = [g for _, g in rows if g is not None]
        gap = f"{100 * np.mean(gaps):>+14.2f}pt" if gaps else f"{'-':>16}"
        print(
            f"{method:<9} {within:>9.0%} {np.median(ratios):>14.2f} {gap} "
            f"{len(rows) - len(gaps):>13}"
        )
    print(f"sweep cost: {min(costs):.2f}-{max(costs):.2f} epochs")
    ratios = np.array([r for r, _ in summary["minimum"]])
    within = np.mean(np.abs(np.log(ratios)) <= math.log(3))
    return [
        (
            "LR sweep cost in epochs (digits: an epoch is 10-40 batches)",
            f"{min(costs):.2f}-{max(costs):.2f}",
            "<= 1",
        ),
        (
            "LR suggestion (minimum) / grid-best LR, median; share within 3x",
            f"{np.median(ratios):.2f}; {within:.0%}",
            "within 3x",
        ),
    ]


if __name__ == "__main__":
    main()
