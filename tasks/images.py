"""Image files on disk: finding them, and a folder-per-class dataset source.

`list_images` is the one walk used for training folders and (later) prediction:
recursive, extensions matched case-insensitively, every real file once, symlinked
folders followed but never in a loop, results in a stable sorted order.
"""

from __future__ import annotations

import os
from typing import Any

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif"})


def list_images(root: str | os.PathLike) -> list[str]:
    """Every image file under ``root``, sorted by path, each real file once.

    Built on `os.scandir`, whose entries know their type without a system call:
    only symlinks pay for `os.path.realpath`, and paths stay strings (pathlib
    costs more than the walk itself on tens of thousands of files).
    """
    found: dict[str, str] = {}
    seen_dirs: set[str] = set()
    stack = [(str(root), os.path.realpath(root))]
    while stack:
        shown, real = stack.pop()
        if real in seen_dirs:  # reached again through a symlink: never walk it twice
            continue
        seen_dirs.add(real)
        try:
            entries = list(os.scandir(shown))
        except OSError:  # unreadable folder: nothing to list in it
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            linked = entry.is_symlink()
            target = os.path.realpath(entry.path) if linked else os.path.join(real, entry.name)
            if entry.is_dir():
                stack.append((entry.path, target))
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS and entry.is_file():
                found.setdefault(target, entry.path)
    return sorted(found.values())


def decode_image_file(path: Any) -> Any:
    """Read and decode one image file in a tf.data map (native dtype and channels)."""
    import tensorflow as tf

    return tf.io.decode_image(tf.io.read_file(path), expand_animations=False)


def preprocess_image(image: Any, input_shape: tuple[int, int, int]) -> Any:
    """Any decoded image (uint8/uint16/float, 1-4 channels) -> float32 in [0, 1] of input_shape.

    Grayscale+alpha and RGBA lose alpha; RGB becomes grayscale by luminance, and
    grayscale becomes RGB by repetition, to match the wanted channel count. Used
    for training data and, later, for prediction, so both see the same pixels.
    """
    import tensorflow as tf

    height, width, channels = input_shape
    image = tf.image.convert_image_dtype(image, tf.float32)
    known = image.shape[-1]
    if known is not None:  # decided while tracing
        image = _match_channels(image, known < 3, channels)
    else:  # decode_image of an unknown file: decided per image
        image = tf.cond(
            tf.shape(image)[-1] < 3,
            lambda: _match_channels(image, True, channels),
            lambda: _match_channels(image, False, channels),
        )
    if tuple(image.shape[:2]) != (height, width):
        image = tf.image.resize(image, (height, width), antialias=True)
    image = tf.clip_by_value(image, 0.0, 1.0)
    return tf.ensure_shape(image, (height, width, channels))


def _match_channels(image: Any, is_gray: bool, channels: int) -> Any:
    """Drop alpha, then convert gray <-> RGB to ``channels``."""
    import tensorflow as tf

    if is_gray:
        gray = image[..., :1]
        return gray if channels == 1 else tf.tile(gray, [1, 1, 3])
    rgb = image[..., :3]
    return tf.image.rgb_to_grayscale(rgb) if channels == 1 else rgb
