"""Nights that learn: what the warm start saves on later nights, on real Fashion-MNIST.

Nights 1..3 run the whole default tune under one export folder, each with its own seed
(its own split, initial weights and shuffling: a night's noise), so later nights have
history. Each later night then runs twice on the same seed, side by side: with the warm
start (the default: earlier nights under the folder are read) and with
``--no-warm-start`` (every batch size and the whole bracket), each from a copy of the
same history. Prints every night's batch sizes, winner's test accuracy and seconds, and
for the later nights the warm runs' mean accuracy and time against the cold ones'.

    .venv/bin/python bench/warm.py [--history 3] [--later 2] [--max-epochs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grid import BATCHES, PATIENCES, dataset  # noqa: E402
from tune_vs_kt import FASHION_MNIST, NIGHTTUNE  # noqa: E402


def night(tmp: Path, home: str, *, seed: int, epochs: int, extra: list[str]) -> dict:
    """One `nighttune tune` process exporting under ``home``; its manifest and seconds."""
    command = [NIGHTTUNE, "tune", "--dataset", "fashion_mnist", "--data-dir", f"{tmp}/tfds"]
    command += ["--cache-dir", f"{tmp}/cache", "--export-to", home, "--seed", str(seed)]
    command += ["--batch-sizes", ",".join(map(str, BATCHES)), "--fresh"]
    command += ["--patiences", ",".join(map(str, PATIENCES)), "--max-epochs", str(epochs)]
    env = {**os.environ, "PREFECT_HOME": f"{tmp}/prefect"}
    start = time.perf_counter()
    done = subprocess.run([*command, *extra], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    seconds = time.perf_counter() - start
    newest = max(p for p in Path(home).iterdir() if (p / "manifest.json").is_file())
    manifest = json.loads((newest / "manifest.json").read_text())
    return manifest | {"seconds": seconds}


def line(label: str, manifest: dict) -> str:
    ran = sorted({r["batch_size"] for r in manifest["trials"] if r["status"] == "ok"})
    left = sorted(manifest["warm_start"]["left_out"]) if manifest.get("warm_start") else []
    return (
        f"{label:<16} batch sizes {','.join(map(str, ran)):<10} "
        f"left out {','.join(left) or '-':<8} test {manifest['winner']['test_accuracy']:.4f} "
        f"{manifest['seconds']:6.1f} s"
    )


def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=3, help="nights before the compared ones")
    parser.add_argument("--later", type=int, default=2, help="nights compared warm vs cold")
    parser.add_argument("--max-epochs", type=int, default=20)
    args = parser.parse_args(argv)
    if not Path(FASHION_MNIST, "train-images-idx3-ubyte.gz").is_file():
        raise SystemExit(f"no Fashion-MNIST in {FASHION_MNIST}: make fashion-mnist")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        dataset("fashion_mnist", tmp)  # prepares tmp/tfds
        history = str(tmp / "history")
        for seed in range(args.history):
            found = night(tmp, history, seed=seed, epochs=args.max_epochs, extra=[])
            print(line(f"night {seed + 1}", found), flush=True)
        warm: list[dict] = []
        cold: list[dict] = []
        for seed in range(args.history, args.history + args.later):
            for arm, flags, kept in (("warm", [], warm), ("cold", ["--no-warm-start"], cold)):
                home = tmp / f"{arm}-{seed}"
                shutil.copytree(history, home)
                found = night(tmp, str(home), seed=seed, epochs=args.max_epochs, extra=flags)
                kept.append(found)
                print(line(f"night {seed + 1} {arm}", found), flush=True)
                if arm == "warm":
                    said = found["warm_start"]
                    print(f"{'':<16} read {len(said['nights'])} earlier nights")

    def mean(runs: list[dict], key: str) -> float:
        if key == "seconds":
            return statistics.fmean(r["seconds"] for r in runs)
        return statistics.fmean(r["winner"]["test_accuracy"] for r in runs)

    later = f"nights {args.history + 1}-{args.history + args.later}"
    ratio = mean(warm, "seconds") / mean(cold, "seconds")
    print(
        f"\n{later}: warm start test {mean(warm, 'test'):.4f} in "
        f"{mean(warm, 'seconds'):.1f} s, without it {mean(cold, 'test'):.4f} in "
        f"{mean(cold, 'seconds'):.1f} s: time ratio {ratio:.2f}"
    )
    return [
        (
            f"later nights' tune with the warm start / without ({later}, Fashion-MNIST)",
            f"{ratio:.2f}; test {mean(warm, 'test'):.4f} vs {mean(cold, 'test'):.4f}",
            "< 1, accuracy not lower",
        )
    ]


if __name__ == "__main__":
    main()
