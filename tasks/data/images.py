"""Image files on disk: finding them, and a folder-per-class dataset source.

`scan_images` is the one walk used for training folders and prediction: recursive,
extensions matched case-insensitively, every real file once, results in a stable
sorted order. Only regular files are ever opened: a name that leads to a FIFO, a
device, a socket or a missing file, or to a file over `MAX_IMAGE_BYTES`, is
reported with the reason instead (a read of ``/dev/zero`` or a FIFO never ends).
Symlinked folders are followed only when they lead inside the folders given (never
to ``/``, ``/proc`` or any other place outside, never in a loop).

Paths are the names the OS gave (a name that is not valid UTF-8 keeps its bytes as
surrogate escapes): pass them to TensorFlow through `tf_path` and show them
through `printable`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nighttune.tasks.core.errors import UserError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif"})
MAX_IMAGE_BYTES = 256 * 2**20  # one encoded image; a 8192x8192 RGB PNG is at most ~200 MB


@dataclass
class ImageScan:
    """What a walk found: the image files to read, and what it did not read and why."""

    files: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (path, why), sorted
    outside: list[str] = field(default_factory=list)  # symlinked folders not followed


def scan_images(root: str | os.PathLike, inside: Sequence[str] | None = None) -> ImageScan:
    """Every image file under ``root``, sorted by path, each real file once.

    ``inside``: the folders that symlinked folders may lead into (default: ``root``).
    Built on `os.scandir`, whose entries know their type without a system call;
    paths stay strings (pathlib costs more than the walk itself on tens of
    thousands of files). Each image costs one `os.stat` (type and size).
    """
    tops = [os.path.realpath(top) for top in (inside or [str(root)])]
    found: dict[str, str] = {}
    rejected: dict[str, str] = {}
    scan = ImageScan()
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
                if linked and not any(os.path.commonpath([top, target]) == top for top in tops):
                    scan.outside.append(entry.path)
                else:
                    stack.append((entry.path, target))
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                why = _unreadable(entry)
                if why:
                    rejected[entry.path] = why
                else:
                    found.setdefault(target, entry.path)
    scan.files = sorted(found.values())
    scan.rejected = sorted(rejected.items())
    scan.outside.sort()
    return scan


@dataclass
class Found:
    """The files to predict, and the image names that become error rows unread."""

    paths: list[str]
    rejected: dict[str, str]  # path -> why (not a regular file, too large, unreadable)
    outside: list[str]  # symlinked folders not followed


def find_images(folders: Sequence[str]) -> Found:
    """Every image given, or under the folders given, each real file once, in a stable
    order."""
    files, inside = [], []
    for folder in folders:
        root = Path(folder).expanduser()
        if root.is_dir():
            inside.append(str(root))
        elif not root.exists():
            raise UserError(f"--images {folder} does not exist; give image files or folders")
        elif root.suffix.lower() not in IMAGE_EXTENSIONS:
            raise UserError(
                f"--images {folder} is not an image file ({', '.join(sorted(IMAGE_EXTENSIONS))})"
                " nor a folder of them"
            )
        else:
            files.append(str(root))
    found: dict[str, str] = {}
    rejected: dict[str, str] = {}
    outside: list[str] = []
    for path in files:
        if problem := _unreadable(Path(path)):
            rejected[path] = problem
        else:
            found.setdefault(os.path.realpath(path) if len(folders) > 1 else path, path)
    for folder in inside:
        scan = scan_images(folder, inside)
        for path in scan.files:
            found.setdefault(os.path.realpath(path) if len(folders) > 1 else path, path)
        rejected.update(scan.rejected)
        outside += scan.outside
    if not found and not rejected:
        raise UserError(
            f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) under {', '.join(folders)}"
        )
    return Found(sorted(found.values()), rejected, sorted(set(outside)))


def _unreadable(entry: os.DirEntry | Path) -> str | None:
    """Why an image's name must not be opened, or None for a regular file of a sane size."""
    try:
        info = entry.stat()  # follows a symlink to what it names
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a device, FIFO or socket is never read)"
    if info.st_size > MAX_IMAGE_BYTES:
        return f"file too large ({info.st_size} bytes; at most {MAX_IMAGE_BYTES} are read)"
    return None


def tf_path(path: str) -> bytes:
    """A path as TensorFlow takes it: the OS's bytes (any name, valid UTF-8 or not)."""
    return os.fsencode(path)


def printable(name: str) -> str:
    """A name as valid UTF-8 text: bytes that were not UTF-8 are shown as ``\\xNN``."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")


# ITU-R BT.601 luma weights; they sum to 1, so gray -> RGB -> gray gives gray back.
LUMA = (0.299, 0.587, 0.114)


def decode_image_file(path: Any) -> Any:
    """Read and decode one image file (native dtype and channels): for diagnostics and shapes."""
    import tensorflow as tf

    return tf.io.decode_image(tf.io.read_file(path), expand_animations=False)


def decode_resized(path: Any, size: tuple[int, int]) -> Any:
    """One file -> uint8 RGB at ``size``: the per-file part of preprocessing.

    Decoding straight to 3 channels lets the codecs convert gray, gray+alpha, RGBA and
    16-bit files; only images of another size pay for a resize, rounded back to uint8
    (`_fit`): what a folder's cache keeps and what prediction computes are the same values.
    """
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return _fit(image, size)


def decode_exact(path: Any, size: tuple[int, int]) -> Any:
    """One file -> uint8 RGB that must already be ``size`` (an error otherwise).

    The fast case of `decode_resized`: no per-file branch; the same values.
    """
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return tf.ensure_shape(image, (*size, 3))


def finish(images: Any, channels: int) -> Any:
    """RGB 0..255, uint8 or float32 (one image or a batch) -> float32 in [0, 1] with
    ``channels``."""
    import tensorflow as tf

    x = tf.clip_by_value(tf.cast(images, tf.float32) / 255.0, 0.0, 1.0)
    if channels == 1:
        x = tf.reduce_sum(x * tf.constant(LUMA, tf.float32), axis=-1, keepdims=True)
    return x


def load_image(path: Any, input_shape: tuple[int, int, int]) -> Any:
    """A file as the model sees it: float32 in [0, 1] of ``input_shape``."""
    import tensorflow as tf

    height, width, channels = input_shape
    image = finish(decode_resized(path, (height, width)), channels)
    return tf.ensure_shape(image, input_shape)


def preprocess_image(image: Any, input_shape: tuple[int, int, int]) -> Any:
    """A decoded image tensor with known channels (TFDS) -> what `load_image` gives for a file."""
    import tensorflow as tf

    height, width, channels = input_shape
    rgb = _rgb(compact_image(image))
    return tf.ensure_shape(finish(_fit(rgb, (height, width)), channels), input_shape)


def compact_image(image: Any) -> Any:
    """A decoded image as the cache keeps it when it needs no resizing: uint8, gray (one
    channel) or RGB — a quarter of float32's bytes, a twelfth for gray read as RGB."""
    import tensorflow as tf

    if image.dtype != tf.uint8:
        image = tf.image.convert_image_dtype(image, tf.uint8, saturate=True)
    return image[..., :1] if image.shape[-1] in (1, 2) else image[..., :3]


def expand_compact(images: Any, channels: int) -> Any:
    """`compact_image`'s uint8 (one image or a batch) -> the model's float32 input: the
    same operations as `preprocess_image` at the image's own size, so the same values."""
    import tensorflow as tf

    # Each output value depends on one stored pixel (gray) or one pixel's three channels
    # (RGB): `finish` of all 256 gray levels is a table, and a gather from it gives the
    # same bits as `finish` of every pixel at a fraction of the work (no RGB tiling, one
    # pass instead of five). Streaming converts every window this way each epoch.
    if images.shape[-1] == 1:
        levels = tf.reshape(tf.cast(tf.range(256), tf.uint8), [256, 1])
        table = finish(tf.cast(_rgb(levels), tf.float32), channels)  # (256, channels)
        return tf.gather(table, tf.cast(images[..., 0], tf.int32))
    values = tf.gather(finish(tf.range(256, dtype=tf.float32), 3), tf.cast(images, tf.int32))
    if channels == 1:
        return tf.reduce_sum(values * tf.constant(LUMA, tf.float32), axis=-1, keepdims=True)
    return values


def _rgb(image: Any) -> Any:
    """Gray (one channel) tiled to RGB; RGB as it is."""
    import tensorflow as tf

    if image.shape[-1] == 1:
        return tf.tile(image, [1] * (len(image.shape) - 1) + [3])
    return image


def _fit(image: Any, size: tuple[int, int]) -> Any:
    """uint8 RGB -> uint8 RGB at ``size``: antialiased bilinear when it must resize, then
    rounded to the nearest level (at most half a level, 0.002 of the range, from the
    float result). Rounding lets a folder of resized images be cached as uint8, a quarter
    of float32's bytes on disk and in a streamed window; prediction rounds the same way,
    so training and serving see the same values."""
    import tensorflow as tf

    def resized() -> Any:
        values = tf.image.resize(image, size, antialias=True)
        return tf.cast(tf.round(tf.clip_by_value(values, 0.0, 255.0)), tf.uint8)

    if tuple(image.shape[:2]) == tuple(size):
        return image
    # Known only per image: resizing to the same size would cost 3x the decode.
    same = tf.reduce_all(tf.shape(image)[:2] == list(size))
    return tf.cond(same, lambda: image, resized)
