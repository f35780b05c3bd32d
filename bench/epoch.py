"""Epoch time of a trial's fit vs the seed's plain `fit`, MNIST-shaped, side by side.

MLP 784-128-10 at batch 128 on 60,000 random 28x28 images (the shape of MNIST; the
numbers do not matter for speed), saved as a cached split. Variants, each timed over
the same epochs in this one process: the seed's plain fit on a shuffle-buffer
pipeline, and the trial's fit (`CachedDataset.batches`, `steps_per_execution`, XLA).

    .venv/bin/python bench/epoch.py [--rounds 5]
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

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tasks.config import ModelSpec  # noqa: E402
from tasks.data import CachedDataset  # noqa: E402
from tasks.models import build_model  # noqa: E402
from tasks.training import JIT_COMPILE, STEPS_PER_EXECUTION  # noqa: E402

N, BATCH = 60_000, 128


def arrays() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((N, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, N)


def cached_split(root: Path, images: np.ndarray, labels: np.ndarray) -> CachedDataset:
    """The arrays saved as a cached train split, as the dataset step would leave them."""
    tf.data.Dataset.from_tensor_slices((images, labels)).save(str(root / "train"))
    return CachedDataset(
        path=str(root),
        fingerprint="bench",
        source="random",
        class_names=[str(i) for i in range(10)],
        input_shape=(28, 28, 1),
        num_examples={"train": N},
    )


# FLOPs per example, counted per GEMM (2 per multiply-add): the forward pass, the
# gradient of every weight matrix (as much again), and the gradient of each layer's
# input except the first (the images need none). Biases, activations, the loss and the
# Adam update are elementwise and left out: the limit is what GEMMs alone would take.
LAYERS = ((784, 128), (128, 10))
FLOPS_PER_EXAMPLE = sum(4 * i * o for i, o in LAYERS) + sum(2 * i * o for i, o in LAYERS[1:])
EPOCH_FLOPS = FLOPS_PER_EXAMPLE * N


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
        models[name].fit(ds, epochs=1, verbose=0)  # trace and warm up
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (ds, _kw) in variants.items():
            start = time.perf_counter()
            models[name].fit(ds, epochs=1, verbose=0)
            samples[name].append(time.perf_counter() - start)
    return {name: float(np.median(times)) for name, times in samples.items()}


def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="epochs timed per variant")
    args = parser.parse_args(argv)
    images, labels = arrays()
    source = tf.data.Dataset.from_tensor_slices((images, labels))
    trial_settings = {"steps_per_execution": STEPS_PER_EXECUTION, "jit_compile": JIT_COMPILE}
    with tempfile.TemporaryDirectory() as tmp:
        cached = cached_split(Path(tmp), images, labels)
        variants = {
            "seed: plain fit, shuffle buffer": (
                source.shuffle(N).batch(BATCH).prefetch(tf.data.AUTOTUNE),
                {},
            ),
            "trial: batches() + trial settings": (
                cached.batches("train", BATCH, shuffle=True),
                trial_settings,
            ),
        }
        times = interleaved_epoch_seconds(variants, args.rounds)
    base = times["seed: plain fit, shuffle buffer"]
    print(f"MLP 784-128-10, batch {BATCH}, {N:,} examples, median of {args.rounds} epochs each")
    print(f"{'variant':<46} {'s/epoch':>8} {'/ plain fit':>11}")
    for name, seconds in times.items():
        print(f"{name:<46} {seconds:>8.3f} {seconds / base:>11.2f}")
    ours = times["trial: batches() + trial settings"]
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
