"""Epoch time of a trial's fit vs the seed's plain `fit`, MNIST-shaped, side by side.

MLP 784-128-10 at batch 128 on 60,000 random 28x28 images (the shape of MNIST; the
numbers do not matter for speed). Variants, each timed over the same epochs in this
one process: the seed's plain fit on a shuffled, batched tf.data pipeline; our fit
with the split cached in memory and prefetched, `steps_per_execution`, and XLA.

    .venv/bin/python bench/epoch.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tasks.config import ModelSpec  # noqa: E402
from tasks.models import build_model  # noqa: E402

N, BATCH = 60_000, 128


def dataset() -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    images = rng.random((N, 28, 28, 1), dtype=np.float32)
    labels = rng.integers(0, 10, N)
    return tf.data.Dataset.from_tensor_slices((images, labels))


# Forward 2*(784*128 + 128*10) multiply-adds per example, plus biases; training is
# about 3x the forward pass (backward to weights and to inputs).
EPOCH_FLOPS = 3 * 2 * (784 * 128 + 128 + 128 * 10 + 10) * N


def matmul_flops_per_s(n: int = 1024, repeats: int = 20) -> float:
    """This machine's float32 GEMM rate through TF, best of several timed batches."""
    a = tf.random.uniform((n, n))
    b = tf.random.uniform((n, n))
    run = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    run().numpy()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            run().numpy()
        best = min(best, (time.perf_counter() - start) / repeats)
    return 2 * n**3 / best


def interleaved_epoch_seconds(
    variants: dict[str, tuple[tf.data.Dataset, dict]], rounds: int
) -> dict[str, float]:
    """Median epoch time per variant, the variants' epochs taken in turn, round after round,
    so that the machine's drifting load falls on all of them alike."""
    models = {}
    for name, (ds, kw) in variants.items():
        models[name] = build_model(ModelSpec(), (28, 28, 1), 10, 1e-3, 0, **kw)
        models[name].fit(ds, epochs=1, verbose=0, shuffle=False)  # trace and warm up
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (ds, _kw) in variants.items():
            start = time.perf_counter()
            models[name].fit(ds, epochs=1, verbose=0, shuffle=False)
            samples[name].append(time.perf_counter() - start)
    return {name: float(np.median(times)) for name, times in samples.items()}


def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="epochs timed per variant")
    args = parser.parse_args(argv)
    source = dataset()
    seed_style = source.shuffle(N).batch(BATCH).prefetch(tf.data.AUTOTUNE)
    ours = source.cache().shuffle(N, seed=0).batch(BATCH).prefetch(tf.data.AUTOTUNE)
    variants = {
        "seed: plain fit": (seed_style, {}),
        "cached input, steps_per_execution=16": (ours, {"steps_per_execution": 16}),
        "... + XLA jit_compile": (ours, {"steps_per_execution": 16, "jit_compile": True}),
        "cached input, steps_per_execution=64": (ours, {"steps_per_execution": 64}),
        "... + XLA jit_compile ": (ours, {"steps_per_execution": 64, "jit_compile": True}),
    }
    times = interleaved_epoch_seconds(variants, args.rounds)
    base = times["seed: plain fit"]
    print(f"MLP 784-128-10, batch {BATCH}, {N:,} examples, median of {args.rounds} epochs each")
    print(f"{'variant':<40} {'s/epoch':>8} {'/ plain fit':>11}")
    for name, seconds in times.items():
        print(f"{name:<40} {seconds:>8.3f} {seconds / base:>11.2f}")
    ours = times["... + XLA jit_compile"]  # the trial's settings
    rate = matmul_flops_per_s()
    limit = EPOCH_FLOPS / rate
    print(
        f"float32 GEMM through TF: {rate / 1e9:.0f} GFLOP/s; MLP epoch = "
        f"{EPOCH_FLOPS / 1e9:.1f} GFLOP -> FLOP-bound limit {limit:.3f} s"
    )
    return [
        (
            "trial epoch / FLOP-bound limit (MLP 784-128-10, batch 128)",
            f"{ours / limit:.2f} ({ours:.3f} s vs {limit:.3f} s)",
            "<= 1.6",
        ),
        ("trial epoch / seed-style plain fit", f"{ours / base:.2f}", "<= 0.5"),
    ]


if __name__ == "__main__":
    main()
