"""Peak memory past the budget: a folder several times `memory_budget_mb` against digits.

A generated class-per-folder tree of 32x32 RGB PNGs (20,000 by default: 196 MB of
float32 train split, the way folders are cached) is tuned with `--memory-budget-mb 32`,
so every trial and LR sweep streams from the cache on disk; the bundled digits (80 KB)
are tuned with the same flags, in memory. Each command runs under `/usr/bin/time -v`
(peak resident set size of the largest process; getrusage where it is missing), the
folder's cache built first by `nighttune cache` and measured apart. Goal: the folder's
tune peaks within +300 MB of the digits tune (issue #20); it would need the whole split,
~200 MB more, to hold it.

    .venv/bin/python bench/memory.py [--images 20000] [--budget-mb 32]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
NIGHTTUNE = str(Path(sys.executable).with_name("nighttune"))
TIME = "/usr/bin/time"


def make_folder(root: Path, n: int) -> Path:
    """``n`` 32x32 RGB PNGs in four classes, each class a bright band somewhere else."""
    rng = np.random.default_rng(0)
    for i in range(n):
        label = i % 4
        image = rng.integers(0, 80, (32, 32, 3), dtype=np.uint8)
        image[label * 8 : label * 8 + 8, :, label % 3] = 240
        path = root / f"class{label}" / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path, compress_level=1)
    return root


def peak_mb(command: list[str], env: dict[str, str]) -> float:
    """Run ``command``; its peak resident set size in MB (it must succeed)."""
    if shutil.which(TIME):
        done = subprocess.run(
            [TIME, "-v", *command], env=env, capture_output=True, text=True, cwd=ROOT
        )
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
        found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
        assert found, done.stderr[-2000:]
        return int(found.group(1)) / 1024
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(command, env=env, check=True, capture_output=True, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(before, after) / 1024  # (a max over every child so far: run the largest last)


def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--budget-mb", type=float, default=32.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_folder(Path(tmp, "images"), args.images)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PREFECT_HOME": f"{tmp}/prefect"}
        common = ["--cache-dir", f"{tmp}/cache"]
        grid = ["--memory-budget-mb", str(args.budget_mb), "--batch-sizes", "128"]
        grid += ["--patiences", "2", "--max-epochs", "3"]
        grid += ["--export-to", f"{tmp}/exports", "--no-tensorboard"]
        build = peak_mb([NIGHTTUNE, "cache", "--dataset", str(folder), *common], env)
        tune = [NIGHTTUNE, "tune", *common, *grid]
        runs = {
            "digits": peak_mb([*tune, "--dataset", "digits"], env),
            "folder": peak_mb([*tune, "--dataset", str(folder)], env),
            # for scale: the same folder held in memory (a budget it fits)
            "folder, held": peak_mb(
                [*tune, "--dataset", str(folder), "--memory-budget-mb", "100000"], env
            ),
        }
    split_mb = args.images * 0.8 * 32 * 32 * 3 * 4 / 2**20
    over = runs["folder"] - runs["digits"]
    print(
        f"{args.images} PNGs of 32x32 RGB: train split ~{split_mb:.0f} MB as float32, "
        f"memory budget {args.budget_mb:.0f} MB ({split_mb / args.budget_mb:.1f}x)"
    )
    print(f"{'run':<34} {'peak RSS MB':>12}")
    print(f"{'nighttune cache (folder)':<34} {build:>12.0f}")
    for name, mb in runs.items():
        print(f"{'nighttune tune (' + name + ')':<34} {mb:>12.0f}")
    print(
        f"folder tune - digits tune = {over:+.0f} MB streamed, "
        f"{runs['folder, held'] - runs['digits']:+.0f} MB held in memory"
    )
    return [
        (
            f"peak RSS, tune of a folder {split_mb / args.budget_mb:.0f}x the memory budget "
            "- the same tune of digits",
            f"{over:+.0f} MB ({runs['folder']:.0f} vs {runs['digits']:.0f} MB)",
            "<= +300 MB",
        )
    ]


if __name__ == "__main__":
    main()
