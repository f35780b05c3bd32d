"""Real image files on disk for tests: every supported format, and broken ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def pattern(label: int, size: int = 16, seed: int = 0) -> np.ndarray:
    """A uint8 grayscale image whose bright band depends on the label, plus noise."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 40, (size, size), dtype=np.uint8)
    band = slice(label * size // 4, label * size // 4 + size // 4)
    image[band, :] = 220
    return image


def write_image(path: Path, gray: np.ndarray, mode: str = "L") -> Path:
    """Write ``gray`` as ``mode`` (L, LA, RGB, RGBA, I;16) in the format of path's suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "I;16":
        Image.fromarray(gray.astype(np.uint16) * 257).save(path)
        return path
    image = Image.fromarray(gray, "L")
    if mode != "L":
        image = image.convert(mode)
    image.save(path)
    return path


def class_folder(
    root: Path, classes: tuple[str, ...] = ("cat", "dog", "fox"), per_class: int = 12
) -> Path:
    """A folder of PNGs with one subfolder per class; returns root."""
    for label, name in enumerate(classes):
        for i in range(per_class):
            write_image(root / name / f"img {i:03d}.png", pattern(label, seed=i))
    return root
