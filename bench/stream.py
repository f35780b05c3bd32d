"""A trial streamed from the cache on disk against the same trial in memory, side by side.

Real Fashion-MNIST (54,000 training images of 28x28, prepared from Debian's files with
`nighttune data prepare`; `make bench` installs them), the built-in MLP, batch 128: one
trial in memory (the fused epoch loop over the split held as uint8, `xla: auto`) and one
over `memory_budget_mb` (16 MB for a 41 MB split: the same fused loop over windows of
blocks read from disk, 4 MB each), rounds interleaved. Prints the median epoch after the
first of each and their ratio as throughput (in-memory epoch / streamed epoch: 1.0 is as
fast; goal >= 0.8), and each one's best validation accuracy.

    .venv/bin/python bench/stream.py [--epochs 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nighttune.tasks.core.config import DatasetSpec, TuneConfig  # noqa: E402
from nighttune.tasks.data.datasets import CachedDataset, load_dataset  # noqa: E402
from nighttune.tasks.tuning.context import trial_context  # noqa: E402
from nighttune.tasks.tuning.training import train_trial  # noqa: E402

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
BUDGETS = {"in memory": None, "streamed": 16.0}  # MB: the split takes 41 MB as uint8


def one_trial(cached: CachedDataset, budget: float | None, *, epochs: int, store: str) -> tuple:
    """(median epoch after the first, best val accuracy) of one fresh trial."""
    config = TuneConfig(
        patiences=(epochs,), max_epochs=epochs, cache_dir=store, memory_budget_mb=budget
    )
    (row,) = train_trial(cached, trial_context(config, cached), 128, lr=5e-3, lr_method="minimum")
    meta = Path(row.model_path).parent / "meta.json"
    seconds = json.loads(meta.read_text())["data"]["epoch_seconds"]
    return statistics.median(seconds[1:]), row.val_accuracy, row.training_loop


def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if not Path(FASHION_MNIST, "train-images-idx3-ubyte.gz").is_file():
        print(f"(no Fashion-MNIST in {FASHION_MNIST}: apt-get install dataset-fashion-mnist)")
        return []
    from nighttune.tasks.data.prepare import prepare_catalog

    with tempfile.TemporaryDirectory() as tmp:
        prepare_catalog("fashion_mnist", FASHION_MNIST, f"{tmp}/tfds")
        spec = DatasetSpec(name="fashion_mnist", data_dir=f"{tmp}/tfds")
        cached = load_dataset(spec, f"{tmp}/cache")
        runs: dict[str, list[tuple]] = {name: [] for name in BUDGETS}
        for round_ in range(args.rounds):
            for name, budget in BUDGETS.items():
                store = f"{tmp}/store-{round_}-{name.replace(' ', '-')}"
                runs[name].append(one_trial(cached, budget, epochs=args.epochs, store=store))
    print(
        f"Fashion-MNIST 54,000 x 28x28, MLP 128, batch 128, {args.epochs} epochs, "
        f"{args.rounds} interleaved rounds"
    )
    print(f"{'trial':<10} {'loop':<7} {'epoch s (median)':>17} {'best val acc':>13}")
    medians = {}
    for name, results in runs.items():
        medians[name] = statistics.median(r[0] for r in results)
        print(f"{name:<10} {results[0][2]:<7} {medians[name]:>17.3f} {results[0][1]:>13.4f}")
    ratio = medians["in memory"] / medians["streamed"]
    print(f"throughput streamed / in memory = {ratio:.2f}")
    return [
        (
            "trial epoch streamed from disk: throughput / in memory (Fashion-MNIST, b128)",
            f"{ratio:.2f} ({medians['streamed']:.2f} s vs {medians['in memory']:.2f} s)",
            ">= 0.8",
        )
    ]


if __name__ == "__main__":
    main()
