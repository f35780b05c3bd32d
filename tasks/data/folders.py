"""A folder with one subfolder of images per class, as a dataset source."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from nighttune.tasks.core.config import DatasetSpec
from nighttune.tasks.core.errors import DatasetUnavailable
from nighttune.tasks.core.logs import get_logger
from nighttune.tasks.data.images import (
    IMAGE_EXTENSIONS,
    decode_image_file,
    decode_resized,
    load_image,
    printable,
    scan_images,
    tf_path,
)
from nighttune.tasks.data.splits import carve_codes


def _warn_unread(folder: str, rejected: list[tuple[str, str]], outside: list[str]) -> None:
    """One line each for image names not read and symlinked folders not followed."""
    log = get_logger()
    if rejected:
        path, why = rejected[0]
        log.warning(
            "dataset %s: %d image name(s) not read (first: %s: %s)",
            folder,
            len(rejected),
            printable(path),
            why,
        )
    if outside:
        log.warning(
            "dataset %s: %d symlinked folder(s) not followed: they lead outside the "
            "dataset folder (first: %s); link the files, or copy the folder in",
            folder,
            len(outside),
            printable(outside[0]),
        )


class ImageFolder:
    """A folder with one subfolder of images per class (at least two classes)."""

    def __init__(self, spec: DatasetSpec) -> None:
        root = Path(spec.name).expanduser()
        if not root.is_dir():
            raise DatasetUnavailable(
                f"image folder {spec.name} does not exist; give a folder with one "
                "subfolder of images per class"
            )
        self.spec = spec
        self.identity = str(root.resolve())
        files: list[tuple[str, int]] = []
        self.class_names: list[str] = []
        rejected: list[tuple[str, str]] = []
        outside: list[str] = []
        for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            scan = scan_images(sub, inside=[str(root), str(sub)])
            rejected += scan.rejected
            outside += scan.outside
            if scan.files:
                files += [(path, len(self.class_names)) for path in scan.files]
                self.class_names.append(printable(sub.name))
        _warn_unread(spec.name, rejected, outside)
        if len(self.class_names) < 2:
            raise DatasetUnavailable(
                f"image folder {spec.name} has {len(self.class_names)} class subfolder(s) "
                f"with images ({', '.join(self.class_names) or 'none'}); need at least 2, "
                f"one subfolder per class holding {'/'.join(sorted(IMAGE_EXTENSIONS))} files"
            )
        self.files = files
        # The folder's "version": any file added, removed or rewritten makes a new entry.
        digest = hashlib.sha256()
        skip = len(str(root)) + 1
        for path, label in files:
            stat = os.stat(path)
            digest.update(os.fsencode(path[skip:]))
            digest.update(f"|{label}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        self.version = digest.hexdigest()
        self.input_shape = self._input_shape(files[0][0])
        # RGB is cached as the uint8 pixels decoding (and resizing, rounded) gives, and
        # converted as it is read; gray as float32 (its levels come from RGB by weights).
        self.stored = "uint8" if self.input_shape[2] == 3 else "float32"
        self.split_plan = {"validation": spec.val_fraction, "test": spec.test_fraction}

    def check(self) -> None:
        """Opening the folder already checked it: it exists and has 2+ classes of images."""

    def num_examples(self) -> int:
        """Image files found (those that will not decode are dropped when caching)."""
        return len(self.files)

    def _input_shape(self, first: str) -> tuple[int, int, int]:
        if self.spec.image_size and self.spec.channels:
            return (*self.spec.image_size, self.spec.channels)
        try:
            shape = decode_image_file(tf_path(first)).shape
        except Exception as exc:
            raise DatasetUnavailable(
                f"cannot decode {printable(first)} to learn the image size ({type(exc).__name__}); "
                "pass --image-size HEIGHT,WIDTH or remove the file"
            ) from None
        height, width = self.spec.image_size or (int(shape[0]), int(shape[1]))
        channels = self.spec.channels or (1 if shape[2] in (1, 2) else 3)
        return (height, width, channels)

    def _example(self, path: Any) -> Any:
        """One file as the cache keeps it: uint8 RGB (`stored`), else the model's float32."""
        import tensorflow as tf

        if self.stored == "uint8":
            size = self.input_shape[:2]
            return tf.ensure_shape(decode_resized(path, size), self.input_shape)
        return load_image(path, self.input_shape)

    def splits(self) -> dict[str, Any]:
        import tensorflow as tf

        spec = self.spec
        codes = carve_codes(
            len(self.files),
            val_fraction=spec.val_fraction,
            test_fraction=spec.test_fraction,
            seed=spec.seed,
        )
        out = {}
        for code, split in enumerate(("train", "validation", "test")):
            chosen = [
                (p, label) for (p, label), c in zip(self.files, codes, strict=True) if c == code
            ]
            paths = tf.constant([tf_path(p) for p, _ in chosen], tf.string)
            labels = tf.constant([label for _, label in chosen], tf.int64)
            ds = tf.data.Dataset.from_tensor_slices((paths, labels)).map(
                lambda p, y: (self._example(p), y),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
            # A file that will not decode is dropped (and counted) instead of failing the run.
            out[split] = ds.ignore_errors(log_warning=True)
        return out
