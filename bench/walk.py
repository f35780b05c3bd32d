"""Finding images: `scan_images` (one stat per image: regular files only, size known)
against the floor, a bare `os.scandir` walk that only matches extensions.

Both walk the same generated tree of empty ``.png`` files, in interleaved rounds in
this one process; the figure is ours / floor (median and best/best), and what the
walk costs per file next to prediction's per-file time.

    .venv/bin/python bench/walk.py [--files 50000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nighttune.tasks.data.images import IMAGE_EXTENSIONS, scan_images  # noqa: E402

# bench/predict.py, 20,000 PNGs of 28x28: 15,328 images/s on this machine (README).
PREDICT_US_PER_FILE = 65


def floor_walk(root: str) -> list[str]:
    """Extensions matched, nothing else: no stat, no links resolved, no dedup."""
    found, stack = [], [root]
    while stack:
        for entry in os.scandir(stack.pop()):
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(entry.path)
    return sorted(found)


def make_tree(root: Path, files: int) -> None:
    for i in range(files):
        folder = root / f"class{i % 10}" / f"part{i % 50}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:06d}.png").touch()


def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        make_tree(Path(tmp), args.files)
        ours, floor = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            found = scan_images(tmp).files
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            bare = floor_walk(tmp)
            floor.append(time.perf_counter() - start)
            assert found == bare, "the walks disagree"
    ratios = [a / b for a, b in zip(ours, floor, strict=True)]
    median, best = statistics.median(ratios), min(ours) / min(floor)
    per_file_us = 1e6 * min(ours) / args.files
    print(f"{args.files:,} files, {args.rounds} interleaved rounds")
    print(f"scan_images  best {min(ours):.3f} s  ({per_file_us:.1f} us a file)")
    print(f"floor walk   best {min(floor):.3f} s")
    print(f"ours / floor median {median:.2f}, best/best {best:.2f}")
    print(f"walk / prediction per file: {per_file_us / PREDICT_US_PER_FILE:.3f}")
    return [
        (
            "image walk / bare scandir",
            f"median {median:.2f}, best/best {best:.2f} ({per_file_us:.1f} us a file)",
            "walk <= 10% of prediction's per-file time",
        )
    ]


if __name__ == "__main__":
    main()
