"""Memory flat in the size of the data: peak RSS of a streamed tune as a folder grows.

Class-per-folder trees of 128x128 RGB PNGs (400, 8,000 and 32,000 by default; each tree
generated, used and deleted before the next: the largest is ~1.5 GB of PNGs) are tuned
with the same model and flags under a 32 MB `--memory-budget-mb`, so every phase
streams. Each size runs twice: a first night (the cache is built inside the tune) and a
next night (the cache built earlier). The resident set of the `nighttune` process is
sampled every 20 ms; `--phases` prints the peak between one screen line and the next,
which says which phase holds the memory.

Goals (issue #35): from 400 to 8,000 images the peak grows < 100 MB (first nights),
< 50 MB per further doubling (8,000 -> 32,000); a first night peaks within 150 MB of
the next one.

    .venv/bin/python bench/memory.py [--images 400,8000,32000] [--budget-mb 32] [--phases]
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

NIGHTTUNE = str(Path(sys.executable).with_name("nighttune"))
SIDE = 128


def make_folder(root: Path, n: int, side: int = SIDE) -> Path:
    """``n`` side x side RGB PNGs in four classes, each class a bright band elsewhere."""
    rng = np.random.default_rng(0)
    band = side // 4
    for i in range(n):
        label = i % 4
        image = rng.integers(0, 80, (side, side, 3), dtype=np.uint8)
        image[label * band : (label + 1) * band, :, label % 3] = 240
        path = root / f"class{label}" / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path, compress_level=1)
    return root


def exports(tmp: str, n: int, night: int) -> list[str]:
    return ["--export-to", f"{tmp}/exports-{n}-{night}"]


def rss_mb(pid: int) -> float:
    """The resident set of process ``pid`` in MB (0 once it has gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Sampled:
    """A command's peak resident set, and the peak during each of its screen lines."""

    peak_mb: float = 0.0
    phases: list[tuple[str, float]] = field(default_factory=list)  # (line, peak until the next)


def run_sampled(command: list[str], env: dict[str, str]) -> Sampled:
    """Run ``command`` (it must succeed), sampling its resident set every 20 ms."""
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    result = Sampled()
    current = ["(start-up)", 0.0]  # the line being run, and the peak since it came
    lock = threading.Lock()
    screen: list[str] = []

    def read_lines() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            screen.append(line)
            with lock:
                result.phases.append((str(current[0]), float(current[1])))
                current[0], current[1] = line.rstrip()[:110], 0.0

    reader = threading.Thread(target=read_lines, daemon=True)
    reader.start()
    while process.poll() is None:
        mb = rss_mb(process.pid)
        with lock:
            current[1] = max(float(current[1]), mb)
            result.peak_mb = max(result.peak_mb, mb)
        time.sleep(0.02)
    reader.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{''.join(screen)[-3000:]}")
    return result


def print_phases(title: str, sampled: Sampled) -> None:
    print(f"  {title}: peak by phase (MB, the peak until the next line)")
    for line, mb in sampled.phases:
        if mb:
            print(f"    {mb:7.0f}  {line}")


def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="400,8000,32000", help="folder sizes, a list")
    parser.add_argument("--budget-mb", type=float, default=32.0)
    parser.add_argument("--phases", action="store_true", help="the peak of each phase too")
    args = parser.parse_args(argv)
    sizes = [int(part) for part in args.images.split(",")]
    split_mb = {n: 0.8 * n * SIDE * SIDE * 3 / 2**20 for n in sizes}  # uint8, as cached
    first: dict[int, float] = {}
    later: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PREFECT_HOME": f"{tmp}/prefect"}
        for n in sizes:
            started = time.perf_counter()
            folder = make_folder(Path(tmp, f"images-{n}"), n)
            made = time.perf_counter() - started
            tune = [NIGHTTUNE, "tune", "--dataset", str(folder), "--no-tensorboard"]
            tune += ["--image-size", f"{SIDE},{SIDE}", "--memory-budget-mb", str(args.budget_mb)]
            tune += ["--batch-sizes", "32", "--patiences", "2", "--max-epochs", "2"]
            first_cache, next_cache = Path(tmp, f"cache-{n}"), Path(tmp, f"cache-{n}-next")
            fresh = run_sampled([*tune, "--cache-dir", str(first_cache), *exports(tmp, n, 1)], env)
            # The next night finds the dataset's entry (moved to a cache of its own) and
            # no sweeps or trials: it trains the same, without building.
            next_cache.mkdir()
            (first_cache / "datasets").rename(next_cache / "datasets")
            warm = run_sampled([*tune, "--cache-dir", str(next_cache), *exports(tmp, n, 2)], env)
            first[n], later[n] = fresh.peak_mb, warm.peak_mb
            print(
                f"{n:>6} images ({made:.0f} s to generate; train split {split_mb[n]:.0f} MB "
                f"as cached): first night {fresh.peak_mb:.0f} MB, next night {warm.peak_mb:.0f} MB",
                flush=True,
            )
            if args.phases:
                print_phases("first night", fresh)
                print_phases("next night", warm)
            for used in (folder, first_cache, next_cache):
                shutil.rmtree(used)
    print(f"\n{'images':>8} {'first night MB':>15} {'next night MB':>14} {'first - next':>13}")
    for n in sizes:
        print(f"{n:>8} {first[n]:>15.0f} {later[n]:>14.0f} {first[n] - later[n]:>+13.0f}")
    rows = []
    for small, large in itertools.pairwise(sizes):
        doublings = math.log2(large / small)
        growth = first[large] - first[small]
        rows.append(
            (
                f"peak RSS growth, {small:,} -> {large:,} 128x128 PNGs (first nights, "
                f"{args.budget_mb:.0f} MB budget)",
                f"{growth:+.0f} MB ({growth / doublings:+.0f} MB a doubling)",
                "< 100 MB (400 -> 8,000), < 50 MB a doubling past it",
            )
        )
    worst = max(first[n] - later[n] for n in sizes)
    rows.append(("first night's peak - next night's (worst size)", f"{worst:+.0f} MB", "< 150 MB"))
    print()
    for name, value, goal in rows:
        print(f"{name}: {value} (goal {goal})")
    return rows


if __name__ == "__main__":
    main()
