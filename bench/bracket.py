"""How wide a bracket, how far apart, how long a first rung: whole `nighttune tune` runs
on real Fashion-MNIST, side by side, over seeds.

Every variant runs the whole default tune as a user runs it (a fresh process: the LR
range test per batch size, each batch size's bracket and its successive halving, the
trial of the candidate left, the export) on the same data (54,000 / 6,000 / 10,000 from
Debian's files, `make bench` installs them), model (the built-in MLP), epoch cap and
seed, with only the bracket's flags changed; its winner's test accuracy is read from the
exported manifest. Width 1 is no bracket: the suggestion alone, as before brackets.
Prints each variant's mean test accuracy ± standard error over the seeds, its mean
seconds and their ratio to width 1 measured in the same run, and how often the
winner's LR was not the suggestion itself.

    .venv/bin/python bench/bracket.py [--seeds 0,1,2] [--max-epochs 20]
        [--variants "1:3:3:2,3:3:3:2,3:2:3:2,5:2:3:2,9:1.7:3:1"]   (width:factor:eta:first)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grid import dataset  # noqa: E402
from schedules import mean_and_error  # noqa: E402
from tune_vs_kt import FASHION_MNIST, last_manifest, whole_tune  # noqa: E402

VARIANTS = "1:3:3:2,3:3:3:2,3:2:3:2,5:2:3:2,9:1.7:3:1"


def flags(variant: str) -> list[str]:
    width, factor, eta, first = variant.split(":")
    return [
        *("--lr-bracket", width, "--bracket-factor", factor),
        *("--halving-eta", eta, "--first-rung", first),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--variants", default=VARIANTS, help="width:factor:eta:first_rung,...")
    args = parser.parse_args(argv)
    if not Path(FASHION_MNIST, "train-images-idx3-ubyte.gz").is_file():
        raise SystemExit(f"no Fashion-MNIST in {FASHION_MNIST}: make fashion-mnist")
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = args.variants.split(",")
    accuracy: dict[str, list[float]] = {v: [] for v in variants}
    seconds: dict[str, list[float]] = {v: [] for v in variants}
    moved: dict[str, int] = {v: 0 for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        dataset("fashion_mnist", Path(tmp))  # prepares tmp/tfds
        for seed in seeds:
            for variant in variants:
                folder = f"{tmp}/{variant.replace(':', '-')}-{seed}"
                extra = [*flags(variant), "--seed", str(seed)]
                took, test = whole_tune(f"{tmp}/tfds", folder, args.max_epochs, extra=extra)
                winner = last_manifest(folder)["winner"]
                moved[variant] += winner.get("lr_factor", 1.0) != 1.0
                accuracy[variant].append(test)
                seconds[variant].append(took)
                print(
                    f"seed {seed} {variant:<12} {took:6.1f} s  test {test:.4f}  "
                    f"winner b{winner['batch_size']} lr {winner['lr']:.3g} "
                    f"(x{winner.get('lr_factor', 1.0):.3g})",
                    flush=True,
                )
    base = statistics.mean(seconds[variants[0]])
    print(
        f"\nFashion-MNIST 54,000/6,000/10,000, MLP 128, max {args.max_epochs} epochs, "
        f"seeds {args.seeds}; whole default tune per variant (width:factor:eta:first_rung)"
    )
    print(f"{'variant':<14} {'test accuracy':>16} {'seconds':>8} {'time ratio':>10} {'moved':>6}")
    for variant, values in accuracy.items():
        took = statistics.mean(seconds[variant])
        print(
            f"{variant:<14} {mean_and_error(values):>16} {took:>8.1f} {took / base:>10.2f} "
            f"{moved[variant]:>3}/{len(seeds)}"
        )


if __name__ == "__main__":
    main()
