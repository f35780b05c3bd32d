"""Trial epoch with and without `tasks.core.settings.XLA_CPU_FLAGS`, in alternating processes.

XLA reads its flags once per process, so the two settings cannot share a run. Each
child process times, in turn for --rounds rounds, a trial epoch (the MLP of
bench/epoch.py through `tasks.tuning.epoch_loop`), the step's GEMMs alone, and the
FLOP-bound limit from the GEMM rate measured in that round; it prints its ratios.
Children alternate between our flags and XLA's own default (the flag set back by
``XLA_FLAGS``, which our code leaves alone), --pairs times; the medians over the
children are compared. On this shared 2-core machine one process can land 1.5x
slower than the next for the same work, hence many processes, not one long one.

    .venv/bin/python bench/xla_flags.py [--pairs 8] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

XLA_DEFAULT = "--xla_cpu_enable_concurrency_optimized_scheduler=true"  # what ours turns off


def child(rounds: int) -> dict[str, float]:
    """One process's medians: trial epoch and GEMMs alone, each / the FLOP-bound limit."""
    from epoch import BATCH, arrays, fit_epoch, gemms_only, interleaved_seconds

    from nighttune.tasks.core.config import ModelSpec
    from nighttune.tasks.tuning.epoch_loop import epoch_inputs, fuse_epochs
    from nighttune.tasks.tuning.models import build_model

    images, labels = arrays()
    built = build_model(ModelSpec(), (28, 28, 1), 10, learning_rate=1e-3, seed=0, jit_compile=True)
    model = fuse_epochs(built, BATCH)
    inputs = epoch_inputs(images, labels, seed=0)
    samples = interleaved_seconds(
        {
            "trial": fit_epoch(model, inputs, steps_per_epoch=1, shuffle=False),
            "gemms": gemms_only(images),
        },
        rounds,
    )
    limits = samples["limit"]
    return {
        name: statistics.median(t / lim for t, lim in zip(samples[name], limits, strict=True))
        for name in ("trial", "gemms")
    }


def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8, help="processes per setting")
    parser.add_argument("--rounds", type=int, default=5, help="epochs timed per process")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.rounds)))
        return []

    from nighttune.tasks.core.settings import XLA_CPU_FLAGS

    settings = {"ours": "", "XLA default": XLA_DEFAULT}  # "": our code adds XLA_CPU_FLAGS
    results: dict[str, list[dict[str, float]]] = {name: [] for name in settings}
    for pair in range(args.pairs):
        for name, flags in settings.items():
            done = subprocess.run(
                [sys.executable, __file__, "--child", "--rounds", str(args.rounds)],
                env=dict(os.environ, XLA_FLAGS=flags),
                capture_output=True,
                text=True,
                check=True,
            )
            results[name].append(json.loads(done.stdout.splitlines()[-1]))
            got = results[name][-1]
            print(
                f"pair {pair + 1}/{args.pairs} {name:<12} trial {got['trial']:.2f}, "
                f"GEMMs alone {got['gemms']:.2f} of the limit",
                flush=True,
            )

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    def per_gemms(name: str) -> float:
        return statistics.median(r["trial"] / r["gemms"] for r in results[name])

    print(f"{', '.join(XLA_CPU_FLAGS)}: medians over {args.pairs} processes each")
    for name in settings:
        print(
            f"{name:<12} trial / limit {median(name, 'trial'):.2f}   "
            f"trial / GEMMs alone {per_gemms(name):.2f}   "
            f"GEMMs alone / limit {median(name, 'gemms'):.2f}"
        )
    return [
        (
            "trial epoch / limit, our XLA flags vs XLA default",
            f"{median('ours', 'trial'):.2f} vs {median('XLA default', 'trial'):.2f}",
            "-",
        )
    ]


if __name__ == "__main__":
    main()
