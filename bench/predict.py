"""Batch prediction speed and memory, side by side in one run.

On N 28x28 PNGs written from Fashion-MNIST's train images where Debian's files are
installed (`make bench` installs them; random pixels otherwise; default 20,000) with an
MLP run exported for 28x28x1:
- ours: `predict_to_csv` (tf.data read -> decode -> preprocess -> batch -> predict);
- the seed's `predict(image)`: `load_img` + `img_to_array` + `model.predict` per file
  (timed on the first --seed-files files; it is slow);
- decode only: `tf.io.read_file` + `tf.io.decode_png` over the same files, batched.
Ours and decode-only alternate for --rounds rounds, their ratio taken per round (the
median is reported, and best/best: the fastest round of each over the other's). Prints
images/s and the ratios (goals: >= 50x the seed, >= 0.7x decode-only), then RSS growth
while predicting --rss-files files (default 50,000; goal < 150 MB).

    .venv/bin/python bench/predict.py [--files 20000] [--rounds 8] [--rss-files 50000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from nighttune.tasks.core.config import ModelSpec  # noqa: E402
from nighttune.tasks.inference.predict import predict_to_csv  # noqa: E402
from nighttune.tasks.storage.files import sha256_file  # noqa: E402
from nighttune.tasks.tuning.models import build_model  # noqa: E402

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def pixels(n: int) -> np.ndarray:
    """``n`` 28x28 uint8 images: Fashion-MNIST's train images (cycled past 60,000) where
    Debian's files are installed, else random ones."""
    if FASHION_MNIST.is_file():
        with gzip.open(FASHION_MNIST) as fh:
            images = np.frombuffer(fh.read(), np.uint8, offset=16).reshape(-1, 28, 28)
        return images[np.arange(n) % len(images)]
    return np.random.default_rng(0).integers(0, 255, (n, 28, 28), dtype=np.uint8)


def make_images(root: Path, n: int) -> list[str]:
    paths = []
    for i, image in enumerate(pixels(n)):
        path = root / f"d{i // 1000:03d}" / f"{i:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
        paths.append(str(path))
    return paths


def make_run(root: Path) -> Path:
    run = root / "run"
    run.mkdir()
    model = build_model(ModelSpec(), (28, 28, 1), 10)
    model.save(run / "model.keras")
    manifest = {
        "run_id": "bench",
        "class_names": [str(d) for d in range(10)],
        "input_shape": [28, 28, 1],
        "outputs": "logits",
        "files": {"model.keras": sha256_file(run / "model.keras")},
    }
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def seed_style(run: Path, paths: list[str]) -> float:
    """The tutorial's predict(image), file after file; returns images/s."""
    model = keras.models.load_model(run / "model.keras")

    def predict(image: str) -> int:
        img = keras.utils.load_img(image, target_size=(28, 28), color_mode="grayscale")
        img = keras.utils.img_to_array(img)
        img = tf.expand_dims(img, 0)
        pred = model.predict(img, verbose=0)
        return int(np.argmax(tf.nn.softmax(pred[0])))

    predict(paths[0])  # warm up
    start = time.perf_counter()
    for path in paths:
        predict(path)
    return len(paths) / (time.perf_counter() - start)


def decode_only(paths: list[str]) -> float:
    ds = (
        tf.data.Dataset.from_tensor_slices(paths)
        .map(lambda p: tf.io.decode_png(tf.io.read_file(p)), num_parallel_calls=tf.data.AUTOTUNE)
        .batch(256)
        .prefetch(2)
    )
    start = time.perf_counter()
    for _ in ds:
        pass
    return len(paths) / (time.perf_counter() - start)


def ours(run: Path, folder: Path, out: Path) -> float:
    summary = predict_to_csv(str(run), [str(folder)], str(out))  # the default batch size
    assert summary.errors == 0
    return summary.per_s


def rss_growth(run: Path, folder: Path, out: Path) -> tuple[float, float]:
    """(MB of RSS growth at peak while predicting the folder, seconds)."""
    process = psutil.Process()
    peak = [process.memory_info().rss]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.05)

    baseline = process.memory_info().rss
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    predict_to_csv(str(run), [str(folder)], str(out))
    seconds = time.perf_counter() - start
    done.set()
    thread.join()
    return (peak[0] - baseline) / 2**20, seconds


def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20000, help="files timed (setup is ~0.1 s)")
    parser.add_argument("--seed-files", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=8, help="ours / decode-only pairs timed")
    parser.add_argument("--rss-files", type=int, default=50000, help="0 skips the memory run")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = make_images(root / "images", args.files)
        run = make_run(root)
        ours(run, root / "images", root / "warmup.csv")  # imports, tracing: paid once
        # Side by side, alternating: ours and decode-only in every round (their ratio taken
        # per round, so the machine's drift falls on both), the slow seed in two rounds.
        rates: dict[str, list[float]] = {"ours": [], "seed": [], "decode": []}
        for i in range(args.rounds):
            rates["ours"].append(ours(run, root / "images", root / "p.csv"))
            rates["decode"].append(decode_only(paths))
            if i < 2:
                rates["seed"].append(seed_style(run, paths[: args.seed_files]))
        best = {k: max(v) for k, v in rates.items()}
        per_round = [o / d for o, d in zip(rates["ours"], rates["decode"], strict=True)]
        vs_decode = float(np.median(per_round))
        best_vs_decode = best["ours"] / best["decode"]
        what = "Fashion-MNIST" if FASHION_MNIST.is_file() else "random"
        print(
            f"{args.files:,} PNG files 28x28 ({what}), MLP, default batch size, "
            f"{args.rounds} rounds"
        )
        print(f"{'pipeline':<34} {'images/s (best)':>16}")
        print(f"{'nighttune predict':<34} {best['ours']:>16.0f}")
        print(f"{'seed predict(image) per file':<34} {best['seed']:>16.1f}")
        print(f"{'decode only (read + decode_png)':<34} {best['decode']:>16.0f}")
        print(
            f"ours / seed = {best['ours'] / best['seed']:.0f}x   ours / decode-only per round: "
            f"{', '.join(f'{r:.2f}' for r in per_round)} (median {vs_decode:.2f}); "
            f"best/best {best_vs_decode:.2f} (fastest round of each, as timeit would)"
        )
        rows = [
            (
                "prediction images/s / seed per-file predict()",
                f"{best['ours'] / best['seed']:.0f}x",
                ">= 50x",
            ),
            (
                "prediction images/s / decode-only pass (median of rounds)",
                f"{vs_decode:.2f} ({min(per_round):.2f}-{max(per_round):.2f}); "
                f"best/best {best_vs_decode:.2f}",
                ">= 0.7",
            ),
        ]
        if args.rss_files:
            make_images(root / "many", args.rss_files)
            growth, seconds = rss_growth(run, root / "many", root / "many.csv")
            print(
                f"RSS growth over {args.rss_files:,} files: {growth:.0f} MB "
                f"({args.rss_files / seconds:.0f} images/s)"
            )
            rows.append(
                (
                    f"prediction RSS growth over {args.rss_files:,} files",
                    f"{growth:.0f} MB",
                    "< 150 MB",
                )
            )
    return rows


if __name__ == "__main__":
    main()
