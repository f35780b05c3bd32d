"""Dataset step: a cache hit's time divided by the first (building) run's, side by side.

Sources: the bundled digits (TFDS build + preprocess + save), a generated folder of
PNGs, and real Fashion-MNIST (70,000 28x28, prepared from Debian's files with
`nighttune data prepare`; `make bench` installs them) with the size of its entry.
Each pair is timed in this one process, in a fresh cache folder; the figure
that matters is the ratio (goal <= 0.05), not the seconds, on a shared noisy machine.

    .venv/bin/python bench/data.py [--images 3000]
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
from PIL import Image  # noqa: E402

from nighttune.tasks.core.config import DatasetSpec  # noqa: E402
from nighttune.tasks.data.datasets import load_dataset  # noqa: E402

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def make_folder(root: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        label = i % 4
        image = rng.integers(0, 60, (28, 28), dtype=np.uint8)
        image[label * 7 : label * 7 + 7] = 230
        path = root / f"class{label}" / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
    return root


def timed(spec: DatasetSpec, cache: Path) -> tuple[float, bool]:
    start = time.perf_counter()
    hit = load_dataset(spec, cache).cache_hit
    return time.perf_counter() - start, hit


def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000, help="PNG files in the folder case")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        folder = make_folder(tmp_path / "images", args.images)
        cases = {
            "digits (1,797 8x8)": DatasetSpec(),
            f"image folder ({args.images:,} PNG 28x28)": DatasetSpec(name=str(folder)),
        }
        if Path(FASHION_MNIST, "train-images-idx3-ubyte.gz").is_file():
            from nighttune.tasks.data.prepare import prepare_catalog

            prepare_catalog("fashion_mnist", FASHION_MNIST, str(tmp_path / "tfds"))
            spec = DatasetSpec(name="fashion_mnist", data_dir=str(tmp_path / "tfds"))
            cases["Fashion-MNIST (70,000 28x28)"] = spec
        else:
            print(f"(no Fashion-MNIST in {FASHION_MNIST}: apt-get install dataset-fashion-mnist)")
        print(f"{'dataset step':<34} {'first s':>8} {'second s':>9} {'second/first':>13}")
        rows = []
        for name, spec in cases.items():
            first, hit1 = timed(spec, tmp_path / "cache")
            second, hit2 = timed(spec, tmp_path / "cache")
            assert not hit1 and hit2, "expected a build, then a cache hit"
            print(f"{name:<34} {first:>8.2f} {second:>9.3f} {second / first:>13.3f}")
            if name.startswith("Fashion"):
                (entry,) = (tmp_path / "cache" / "datasets").glob("fashion_mnist-*")
                size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
                ratio = size / (70_000 * 784)
                print(f"  its entry: {size / 2**20:.0f} MiB, {ratio:.2f}x its uint8 pixels")
            rows.append(
                (
                    f"dataset step, cache hit / first build: {name}",
                    f"{second / first:.3f}",
                    "<= 0.05",
                )
            )
    return rows


if __name__ == "__main__":
    main()
