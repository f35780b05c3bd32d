"""Noise-aware selection across seeds: does the cheapest cell within noise of the best
lose on test?

For each dataset (digits; real Fashion-MNIST where Debian's files are installed) and
seed (the split, initial weights and shuffling all follow it): one LR range test and
one trial per batch size over the default grid (32, 64, 128 x patience 3, 6, 10),
exactly as `nighttune tune` runs them; then both rules of `select` pick a winner from
the same rows. Per dataset it prints how often the picks differ, how often the
tied-cheaper pick scores lower / higher on the test split, the mean test-accuracy
difference with its standard error, and the picked cells' training seconds. Also the
cost of the per-example values a trial now saves: their pass over the validation split
against `evaluate_split`'s, side by side.

    .venv/bin/python bench/selection.py [--seeds 8] [--fmnist-seeds 4] [--max-epochs 30]
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

from nighttune.tasks.core.config import DatasetSpec, TuneConfig  # noqa: E402
from nighttune.tasks.data.datasets import CachedDataset, load_dataset  # noqa: E402
from nighttune.tasks.data.prepare import prepare_catalog  # noqa: E402
from nighttune.tasks.tuning.context import trial_context  # noqa: E402
from nighttune.tasks.tuning.evaluation import (  # noqa: E402
    evaluate_split,
    metric_interval,
    per_example_values,
)
from nighttune.tasks.tuning.lr_range import stored_lr_range_test  # noqa: E402
from nighttune.tasks.tuning.selection import select  # noqa: E402
from nighttune.tasks.tuning.training import stored_values, train_trial  # noqa: E402

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def night(cached: CachedDataset, config: TuneConfig) -> tuple[dict, str]:
    """Both rules' picks on one seed, rule -> (test accuracy, train seconds, cell), and
    the best pick's model file."""
    rows = []
    for batch_size in config.batch_sizes:
        sweep = stored_lr_range_test(
            cached,
            config.model,
            batch_size,
            spec=config.lr_range,
            seed=config.seed,
            cache_dir=config.cache_dir,
        )
        rows += train_trial(
            cached,
            trial_context(config, cached),
            batch_size,
            lr=sweep.chosen_lr,
            lr_method=sweep.method,
        )
    values = stored_values(rows)
    picks, model_path = {}, None
    for rule in ("best", "cheapest_within_noise"):
        winner, _ = select(rows, "val_accuracy", "max", values=values, rule=rule)
        picks[rule] = (winner.test_accuracy or 0.0, winner.train_seconds or 0.0, winner.cell)
        model_path = model_path if rule != "best" else winner.model_path
    return picks, str(model_path)


def values_cost(cached: CachedDataset, model_path: str, rounds: int = 3) -> tuple[float, ...]:
    """Seconds of `evaluate_split`, of `per_example_values` and of `metric_interval`
    (the bootstrap that metrics like AUC get, here run on accuracy) on validation
    (medians)."""
    model = keras.models.load_model(model_path)
    logged = evaluate_split(model, cached, "validation")["accuracy"]
    times: dict[str, list[float]] = {"evaluate": [], "values": [], "metric": []}
    for _ in range(rounds):
        for name, call in (
            ("evaluate", lambda: evaluate_split(model, cached, "validation")),
            (
                "values",
                lambda: per_example_values(
                    model, cached, "validation", name="accuracy", logged=logged
                ),
            ),
            ("metric", lambda: metric_interval(model, cached, "validation", name="accuracy")),
        ):
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return tuple(statistics.median(times[name]) for name in ("evaluate", "values", "metric"))


def across_seeds(name: str, seeds: int, *, epochs: int, tmp: Path) -> tuple[list, tuple]:
    data_dir = None
    if name == "fashion_mnist":
        data_dir = str(tmp / "tfds")
        prepare_catalog(name, FASHION_MNIST, data_dir)
    nights: list[dict] = []
    cost: tuple[float, ...] = ()
    for seed in range(seeds):
        spec = DatasetSpec(name=name, data_dir=data_dir, seed=seed)
        cached = load_dataset(spec, tmp / "cache")
        cache = str(tmp / "cache")
        config = TuneConfig(dataset=spec, max_epochs=epochs, seed=seed, cache_dir=cache)
        start = time.perf_counter()
        picks, model_path = night(cached, config)
        nights.append(picks)
        print(f"  {name} seed {seed}: {time.perf_counter() - start:.0f} s  {picks}", flush=True)
        if seed == 0:
            cost = values_cost(cached, model_path)
    return nights, cost


def summary(name: str, nights: list[dict], cost: tuple[float, ...]) -> list[tuple]:
    diffs = [n["cheapest_within_noise"][0] - n["best"][0] for n in nights]
    differ = sum(n["cheapest_within_noise"][2] != n["best"][2] for n in nights)
    lower, higher = sum(d < 0 for d in diffs), sum(d > 0 for d in diffs)
    mean = statistics.mean(diffs)
    se = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else 0.0
    best_s = statistics.mean(n["best"][1] for n in nights)
    cheap_s = statistics.mean(n["cheapest_within_noise"][1] for n in nights)
    acc = {rule: statistics.mean(n[rule][0] for n in nights) for rule in nights[0]}
    print(
        f"{name}: {len(nights)} seeds; picks differ in {differ}; tied-cheaper lower on test "
        f"in {lower}, higher in {higher}; test accuracy best {acc['best']:.4f} vs "
        f"tied-cheaper {acc['cheapest_within_noise']:.4f} (mean difference {mean:+.4f} "
        f"+- {se:.4f} s.e.); picked cell's training {cheap_s:.1f} s vs {best_s:.1f} s; "
        f"per-example values {cost[1]:.3f} s, a Keras metric's bootstrap {cost[2]:.2f} s, "
        f"vs evaluate {cost[0]:.3f} s"
    )
    return [
        (
            f"select cheapest_within_noise vs best, {name} ({len(nights)} seeds)",
            f"differ {differ}, lower on test {lower}, higher {higher}; "
            f"test acc {mean:+.4f} +- {se:.4f}; training {cheap_s / best_s:.2f}x",
            "not lower on test",
        ),
        (
            f"per-example validation values; a Keras metric's bootstrap / evaluate_split, {name}",
            f"{cost[1] / cost[0]:.2f}; {cost[2] / cost[0]:.1f} ({cost[1]:.3f} s; {cost[2]:.2f} s "
            f"vs {cost[0]:.3f} s)",
            "-",
        ),
    ]


def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="digits seeds")
    parser.add_argument("--fmnist-seeds", type=int, default=4)
    parser.add_argument("--max-epochs", type=int, default=30)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        datasets = [("digits", args.seeds)]
        if Path(FASHION_MNIST, "train-images-idx3-ubyte.gz").is_file():
            datasets += [("fashion_mnist", args.fmnist_seeds)] if args.fmnist_seeds else []
        else:
            print(f"(no Fashion-MNIST in {FASHION_MNIST}: apt-get install dataset-fashion-mnist)")
        for name, seeds in datasets:
            nights, cost = across_seeds(name, seeds, epochs=args.max_epochs, tmp=Path(tmp) / name)
            rows += summary(name, nights, cost)
    return rows


if __name__ == "__main__":
    main()
