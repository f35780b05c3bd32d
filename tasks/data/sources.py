"""Where datasets come from: TFDS builders (catalog or bundled ``digits``) and image folders.

Each source knows its identity and version (for the cache fingerprint), its class
names and model input shape, and yields preprocessed ``(image, label)`` tf.data
splits for train / validation / test, carving the missing ones from train
(`tasks.data.splits`).
"""

from __future__ import annotations

from pathlib import Path

from nighttune.tasks.core.config import DatasetSpec
from nighttune.tasks.data.catalog import CatalogSource
from nighttune.tasks.data.folders import ImageFolder
from nighttune.tasks.data.user import BuilderSource


def open_source(spec: DatasetSpec, cache_root: Path) -> CatalogSource | ImageFolder | BuilderSource:
    """The source a spec names; the bundled digits are prepared under ``cache_root/tfds``."""
    if spec.kind == "builder":
        return BuilderSource(spec)
    if spec.kind == "folder":
        return ImageFolder(spec)
    return CatalogSource(spec, cache_root)
