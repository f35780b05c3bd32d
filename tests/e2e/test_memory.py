"""Memory flat in the size of the data: a streamed tune of a 20x larger folder peaks
about where the small one does (issue #35; bench/memory.py measures it at scale)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.harness import nighttune_cmd

SIDE = 128

# Runs a command and prints the peak resident set (KB) of its largest process: the tune
# itself (its temporary Prefect server is a smaller child).
PEAK = (
    "import resource, subprocess, sys; "
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "sys.stderr.write(done.stdout + done.stderr); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
    "sys.exit(done.returncode)"
)


def image_folder(root: Path, n: int) -> Path:
    """``n`` 128x128 RGB PNGs in four classes (a bright band each, over noise)."""
    rng = np.random.default_rng(0)
    for i in range(n):
        label = i % 4
        image = rng.integers(0, 80, (SIDE, SIDE, 3), dtype=np.uint8)
        image[label * 32 : label * 32 + 32, :, label % 3] = 240
        path = root / f"class{label}" / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path, compress_level=1)
    return root


def peak_mb(args: list[str], env: dict[str, str], cwd: Path) -> float:
    done = subprocess.run(
        [sys.executable, "-c", PEAK, *nighttune_cmd(*args)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return int(done.stdout.split()[-1]) / 1024


@pytest.mark.slow
def test_a_streamed_tune_holds_no_whole_split_in_any_phase(tmp_path: Path, cli_env) -> None:
    """200 and 4,000 images, the same model and flags under a 16 MB memory budget: 3,800
    more images add 146 MB to the train split as cached (uint8) and 73 MB each to the
    validation and test splits as the model's float32. A phase holding any of them whole
    (cache build, LR sweep, trial, validation, evaluation, per-example values, champion
    gate, confusion matrix, export) would raise the peak by that much; the fixed costs
    (start-up, model, windows) do not change with the count. Measured: +10 MB alone,
    +71 MB beside another test (tf.data reads further ahead on a loaded machine); +236 MB
    when evaluation took 1,024 images a batch (bench/memory.py: +26 MB from 400 to 8,000)."""
    peaks = {}
    for n in (200, 4000):
        folder = image_folder(tmp_path / f"images-{n}", n)
        args = ["tune", "--dataset", str(folder), "--image-size", f"{SIDE},{SIDE}"]
        args += ["--memory-budget-mb", "16", "--batch-sizes", "32", "--patiences", "1"]
        args += ["--max-epochs", "1", "--no-tensorboard", "--no-warm-start"]
        args += ["--export-to", str(tmp_path / f"exports-{n}")]
        peaks[n] = peak_mb(args, cli_env, tmp_path)
        (manifest,) = (tmp_path / f"exports-{n}").glob("*/manifest.json")
        found = json.loads(manifest.read_text())
        assert found["winner"]["test_accuracy"] > 0.5
        # 200 images (7.5 MB as uint8) are held; 4,000 stream through the fused loop
        assert found["trials"][0]["training_loop"] == ("fused" if n == 200 else "stream")
    assert peaks[4000] - peaks[200] < 120, peaks
