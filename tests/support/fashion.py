"""Debian's Fashion-MNIST files, which `make test` installs where it can (as root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nighttune.tasks.data.prepare import IDX_FILES

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def fashion_mnist_files() -> Path:
    """Their folder; without them the test fails saying how to install them (no skip)."""
    if not all((FASHION_MNIST / name).is_file() for name in IDX_FILES):
        pytest.fail(
            f"Fashion-MNIST's files are not in {FASHION_MNIST}: `make test` installs them "
            "as root (Debian's dataset-fashion-mnist); else `sudo apt-get install "
            "dataset-fashion-mnist`",
            pytrace=False,
        )
    return FASHION_MNIST
