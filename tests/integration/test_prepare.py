"""`nighttune data prepare`: a catalog dataset from local copies of its files, offline.

Uses Debian's Fashion-MNIST (`make test` installs `dataset-fashion-mnist` where it can);
without it these tests fail saying how to get it, never skip.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nighttune.tasks.core.errors import ConfigError
from nighttune.tasks.data.prepare import CONTENT_SHA256, check_sources
from tests.support.fashion import fashion_mnist_files
from tests.support.harness import nighttune_cmd


def _copy_with(tmp_path: Path, name: str, change) -> Path:
    """The four files in a folder of our own, ``name`` rewritten by ``change(bytes)``."""
    folder = tmp_path / "sources"
    shutil.copytree(fashion_mnist_files(), folder)
    with gzip.open(folder / name, "rb") as fh:
        data = change(fh.read())
    with gzip.open(folder / name, "wb", compresslevel=1) as fh:  # other gzip bytes
        fh.write(data)
    return folder


def test_recompressed_files_with_the_same_content_pass(tmp_path) -> None:
    folder = _copy_with(tmp_path, "t10k-labels-idx1-ubyte.gz", lambda data: data)
    assert check_sources("fashion_mnist", folder) == "content sha256"


def test_changed_content_is_refused_in_one_line(tmp_path) -> None:
    name = "t10k-labels-idx1-ubyte.gz"
    folder = _copy_with(tmp_path, name, lambda data: data[:-1] + bytes([(data[-1] + 1) % 10]))
    with pytest.raises(ConfigError, match=f"{name}: content sha256 .* is not fashion_mnist's"):
        check_sources("fashion_mnist", folder)


def test_mnist_without_recorded_digests_checks_the_idx_headers(tmp_path) -> None:
    """MNIST's files come from any mirror: their headers are checked (count, size)."""
    assert "mnist" not in CONTENT_SHA256
    shutil.copytree(fashion_mnist_files(), tmp_path / "mirror")  # MNIST's format exactly
    assert check_sources("mnist", tmp_path / "mirror") == "IDX headers"
    header = (2049).to_bytes(4, "big") + (59_999).to_bytes(4, "big")
    short = _copy_with(tmp_path / "short", "train-labels-idx1-ubyte.gz", lambda _: header)
    with pytest.raises(ConfigError, match=r"IDX header \(2049, 59999\) is not the expected"):
        check_sources("mnist", short)
    broken = _copy_with(tmp_path / "broken", "t10k-labels-idx1-ubyte.gz", lambda d: d)
    (broken / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(ConfigError, match="t10k-images-idx3-ubyte.gz: not a readable gzip"):
        check_sources("mnist", broken)


@pytest.mark.slow
def test_prepare_then_cache_and_tune_offline(tmp_path) -> None:
    """The CLI prepares it through TFDS's builder (no network: a closed proxy), says
    where, and `cache` then reads it from that data_dir (TFDS's splits and class names),
    and `tune` trains on it."""
    env = dict(
        os.environ,
        HOME=str(tmp_path),
        NIGHTTUNE_CACHE_DIR=str(tmp_path / "cache"),
        HTTPS_PROXY="http://127.0.0.1:9",
        HTTP_PROXY="http://127.0.0.1:9",
    )
    data_dir = tmp_path / "tfds"
    args = ["data", "prepare", "fashion_mnist", "--from", str(fashion_mnist_files())]
    done = subprocess.run(
        nighttune_cmd(*args, "--data-dir", str(data_dir)),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "prepared from /usr/share/datasets/fashion-mnist; content sha256 checked" in done.stdout
    assert "splits      train 60000, test 10000" in done.stdout
    assert f"--dataset fashion_mnist --data-dir {data_dir}" in done.stdout
    assert "Traceback" not in done.stderr and "Generating" not in done.stdout + done.stderr
    assert "absl" not in done.stderr and "WARNING" not in done.stderr, done.stderr
    assert not list(data_dir.glob(".prepare-*"))  # TFDS's extracted copies went with it
    cached = subprocess.run(
        nighttune_cmd("cache", "--dataset", "fashion_mnist", "--data-dir", str(data_dir)),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert cached.returncode == 0, cached.stderr
    assert "classes     10: T-shirt/top Trouser Pullover" in cached.stdout
    assert "test          10000 examples" in cached.stdout
    # Kept as the uint8 pixels it is: within 1.5x of 70,000 x 784 bytes (214 MB as float32).
    (entry,) = (tmp_path / "cache" / "datasets").glob("fashion_mnist-*")
    size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
    assert size <= 1.5 * 70_000 * 28 * 28, size
    # The first run on it: a short tune, on a screen as quiet as digits' (TFDS's builder
    # calls logging.basicConfig(); its plain root handler gets the screen's filter too).
    import sys

    clean = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    script = str(Path(sys.executable).parent / "nighttune")
    args = ["tune", "--dataset", "fashion_mnist", "--data-dir", str(data_dir)]
    args += ["--batch-sizes", "128", "--patiences", "1", "--max-epochs", "1", "--lr-steps", "20"]
    args += ["--cache-dir", str(tmp_path / "cache"), "--export-to", str(tmp_path / "exports")]
    tuned = subprocess.run(
        [script, *args], env=clean, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    screen = tuned.stdout + tuned.stderr
    assert tuned.returncode == 0, screen
    assert "INFO" not in screen and "epoch 1, loss" not in screen, screen
    assert "dataset fashion_mnist: cache hit" in screen
    # Every line is one of ours: a timed progress line, the trials table or the summary.
    labels = "winner|selection|reused|exported|champion|latest|report"
    ours = re.compile(rf"^$|^\d\d:\d\d:\d\d |^batch |^ +\d+ |^({labels}) ")
    assert [line for line in screen.splitlines() if not ours.match(line)] == [], screen
