"""Epoch time of a trial's fit vs the seed's plain `fit`, on real Fashion-MNIST, side by side.

MLP 784-128-10 at batch 128 on Fashion-MNIST's 54,000 train images (prepared from
Debian's files with `nighttune data prepare` and cached as a run would; `make bench`
installs them; without them, 54,000 random 28x28 images of the same shape). Variants,
each timed over the same epochs in this one process: the seed's plain fit on a
shuffle-buffer pipeline; Keras's own fast settings (`steps_per_execution=16`, XLA) on
the same pipeline, which trials used before; the trial's fit (`tasks.tuning.epoch_loop`:
one XLA call per epoch over the split held in memory as uint8, converted a batch at a
time inside the loop); and, for reference, an epoch of the step's GEMMs alone in one
XLA loop. The FLOP-bound limit comes from the float32 GEMM rate (1024x1024) measured in
every round.

    .venv/bin/python bench/epoch.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from nighttune.tasks.core.config import DatasetSpec, ModelSpec  # noqa: E402
from nighttune.tasks.data.blocks import block_rows, write_blocks  # noqa: E402
from nighttune.tasks.data.datasets import CachedDataset, load_dataset  # noqa: E402
from nighttune.tasks.tuning.context import JIT_COMPILE  # noqa: E402
from nighttune.tasks.tuning.epoch_loop import epoch_inputs, fuse_epochs  # noqa: E402
from nighttune.tasks.tuning.models import build_model  # noqa: E402

N, BATCH = 54_000, 128
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def train_split(root: Path) -> tuple[CachedDataset, str]:
    """Fashion-MNIST's cached train split where Debian's files are installed, else N random
    images written as a cached split; and which it is."""
    if Path(FASHION_MNIST, "train-images-idx3-ubyte.gz").is_file():
        from nighttune.tasks.data.prepare import prepare_catalog

        prepare_catalog("fashion_mnist", FASHION_MNIST, str(root / "tfds"))
        spec = DatasetSpec(name="fashion_mnist", data_dir=str(root / "tfds"))
        return load_dataset(spec, root / "cache"), "Fashion-MNIST"
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N, 28, 28, 1), dtype=np.uint8)
    rows = block_rows((28, 28, 1), np.uint8)
    pairs = tf.data.Dataset.from_tensor_slices((images, rng.integers(0, 10, N)))
    write_blocks(pairs, root / "train", rows)
    cached = CachedDataset(
        path=str(root),
        fingerprint="bench",
        source="random",
        class_names=[str(i) for i in range(10)],
        input_shape=(28, 28, 1),
        num_examples={"train": N},
        stored="uint8",
        block_rows=rows,
    )
    return cached, "random images (no Fashion-MNIST installed)"


# FLOPs per example, counted per GEMM (2 per multiply-add): the forward pass, the
# gradient of every weight matrix (as much again), and the gradient of each layer's
# input except the first (the images need none). Biases, activations, the loss and the
# Adam update are elementwise and left out: the limit is what GEMMs alone would take.
LAYERS = ((784, 128), (128, 10))
FLOPS_PER_EXAMPLE = sum(4 * i * o for i, o in LAYERS) + sum(2 * i * o for i, o in LAYERS[1:])
EPOCH_FLOPS = FLOPS_PER_EXAMPLE * N


def matmul_flops_per_s(n: int = 1024, repeats: int = 10) -> float:
    """This machine's float32 GEMM rate through TF now: best of three timed bursts."""
    a = tf.random.uniform((n, n))
    b = tf.random.uniform((n, n))
    run = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    run().numpy()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            run().numpy()
        best = min(best, (time.perf_counter() - start) / repeats)
    return 2 * n**3 / best


def gemms_only(images: np.ndarray) -> Callable[[], None]:
    """An epoch of the step's GEMMs alone (the shapes counted in EPOCH_FLOPS), one XLA
    loop: what these small matrices reach here, without anything else a step does."""
    steps = N // BATCH
    x = tf.constant(images[: steps * BATCH].reshape(steps, BATCH, -1))
    w1, w2 = tf.random.uniform(LAYERS[0]), tf.random.uniform(LAYERS[1])

    @tf.function(jit_compile=True)
    def epoch() -> tf.Tensor:
        def step(i: tf.Tensor, total: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            h = x[i] @ w1
            z = h @ w2
            dh = z @ tf.transpose(w2)  # gradient of the hidden layer
            g1, g2 = tf.transpose(x[i]) @ dh, tf.transpose(h) @ z  # weight gradients
            return i + 1, total + tf.reduce_sum(g1) + tf.reduce_sum(g2)

        return tf.while_loop(lambda i, _: i < steps, step, (0, 0.0))[1]

    return lambda: epoch().numpy()


def fit_epoch(model: keras.Model, ds: tf.data.Dataset, **fit_kw: object) -> Callable[[], None]:
    return lambda: model.fit(ds, epochs=1, verbose=0, **fit_kw)


def interleaved_seconds(
    variants: dict[str, Callable[[], None]], rounds: int
) -> dict[str, list[float]]:
    """Seconds per round for each variant and for the FLOP-bound limit ("limit", from the
    GEMM rate measured in the same round), taken in turn round after round, so that the
    machine's drifting load falls on all of them alike."""
    for run in variants.values():
        run()  # trace, compile, warm up
    samples: dict[str, list[float]] = {name: [] for name in [*variants, "limit"]}
    for _ in range(rounds):
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - start)
        samples["limit"].append(EPOCH_FLOPS / matmul_flops_per_s())
    return samples


SEED, KERAS_FAST, TRIAL, NO_XLA, GEMMS = (
    "seed: plain fit, shuffle buffer",
    "Keras fit, steps_per_execution=16 + XLA",
    "trial: one compiled loop per epoch",
    "the same loop without XLA",
    "the step's GEMMs alone, XLA loop",
)


def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="epochs timed per variant")
    args = parser.parse_args(argv)

    def model(**kw: object) -> keras.Model:
        return build_model(ModelSpec(), (28, 28, 1), 10, learning_rate=1e-3, seed=0, **kw)

    with tempfile.TemporaryDirectory() as tmp:
        cached, source = train_split(Path(tmp))
        assert cached.num_examples["train"] == N
        stored = cached.stored_arrays("train")
        images, labels = (t.numpy() for t in cached.arrays("train"))
        buffered = (
            tf.data.Dataset.from_tensor_slices((images, labels))
            .cache()
            .shuffle(N)
            .batch(BATCH)
            .prefetch(tf.data.AUTOTUNE)
        )
        variants = {
            SEED: fit_epoch(model(), buffered),
            KERAS_FAST: fit_epoch(model(steps_per_execution=16, jit_compile=True), buffered),
            TRIAL: fit_epoch(
                fuse_epochs(model(jit_compile=JIT_COMPILE), BATCH, cached.to_model),
                epoch_inputs(*stored, seed=0),
                steps_per_epoch=1,
                shuffle=False,
            ),
            NO_XLA: fit_epoch(
                fuse_epochs(model(jit_compile=False), BATCH, cached.to_model),
                epoch_inputs(*stored, seed=0),
                steps_per_epoch=1,
                shuffle=False,
            ),
            GEMMS: gemms_only(images),
        }
        samples = interleaved_seconds(variants, args.rounds)
    times = {name: float(np.median(values)) for name, values in samples.items()}
    best = {name: min(values) for name, values in samples.items()}
    base, ours, limit = times[SEED], times[TRIAL], times["limit"]
    print(f"MLP 784-128-10, batch {BATCH}, {N:,} {source}, median of {args.rounds} rounds")
    print(f"{'variant':<46} {'s/epoch':>8} {'/ plain fit':>11} {'/ limit':>8} {'best/best':>9}")
    for name in variants:
        t = times[name]
        print(
            f"{name:<46} {t:>8.3f} {t / base:>11.2f} {t / limit:>8.2f} "
            f"{best[name] / best['limit']:>9.2f}"
        )
    print(
        f"MLP epoch = {EPOCH_FLOPS / 1e9:.1f} GFLOP of GEMMs; at the float32 GEMM rate "
        f"measured each round ({EPOCH_FLOPS / limit / 1e9:.0f} GFLOP/s, median) "
        f"the FLOP-bound limit is {limit:.3f} s. best/best: each variant's fastest round over "
        "the fastest limit, the estimator the limit itself uses (best of 3 GEMM bursts): "
        "this shared 2-vCPU machine runs whole epochs of any variant at exactly half speed "
        "now and then"
    )
    return [
        (
            "trial epoch / FLOP-bound limit (MLP 784-128-10, batch 128)",
            f"{ours / limit:.2f} ({ours:.3f} s vs {limit:.3f} s); "
            f"best/best {best[TRIAL] / best['limit']:.2f}",
            "<= 1.6",
        ),
        ("trial epoch / seed-style plain fit", f"{ours / base:.2f}", "<= 0.5"),
        (
            "trial epoch / Keras fit with steps_per_execution=16 + XLA",
            f"{ours / times[KERAS_FAST]:.2f}",
            "-",
        ),
        (
            "trial epoch / the same fused loop without XLA (tuning.context.use_xla)",
            f"{ours / times[NO_XLA]:.2f}",
            "< 1: XLA on for the built-in MLP",
        ),
        (
            "trial epoch / the step's GEMMs alone (XLA loop)",
            f"{ours / times[GEMMS]:.2f} (GEMMs alone: {times[GEMMS] / limit:.2f} of the limit)",
            "-",
        ),
    ]


if __name__ == "__main__":
    main()
