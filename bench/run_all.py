"""`make bench`: every benchmark in bench/, then one table of the ratios they measured.

Each script's `main()` prints its details and returns (benchmark, measured, goal) rows;
every figure is a ratio of two things timed side by side in the same run.

    .venv/bin/python bench/run_all.py [--quick]
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCRIPTS = {  # name -> arguments; --quick trims the slow ones
    "data": ([], []),
    "epoch": (["--rounds", "7"], ["--rounds", "5"]),  # fewer rounds are too noisy here
    "grid": ([], []),
    "lr_range": ([], ["--seeds", "0"]),
    "predict": ([], ["--files", "5000", "--rounds", "4", "--rss-files", "10000"]),
    "walk": ([], ["--files", "20000", "--rounds", "5"]),
    "overhead": ([], []),
    "user_model": ([], ["--max-epochs", "20"]),
    "stream": ([], ["--rounds", "1"]),
    "memory": ([], ["--images", "400,4000"]),
    "selection": ([], ["--seeds", "4", "--fmnist-seeds", "2", "--max-epochs", "15"]),
    "warm": ([], ["--later", "1", "--max-epochs", "10"]),
    "recipes": ([], ["--tasks", "tabular", "--seeds", "0"]),
    "tune_vs_kt": ([], ["--max-epochs", "8"]),  # the longest: about a quarter of an hour
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, seeds and files")
    args = parser.parse_args()
    rows: list[tuple[str, str, str]] = []
    for name, (full, quick) in SCRIPTS.items():
        print(f"\n== bench/{name}.py")
        start = time.perf_counter()
        rows += importlib.import_module(name).main(quick if args.quick else full)
        print(f"({time.perf_counter() - start:.0f} s)")
    cpu = platform.processor() or platform.machine()
    print(f"\n{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {cpu}")
    width = max(len(r[0]) for r in rows)
    print(f"{'benchmark':<{width}}  {'measured':<40}  goal")
    for benchmark, measured, goal in rows:
        print(f"{benchmark:<{width}}  {measured:<40}  {goal}")


if __name__ == "__main__":
    main()
