"""Content-keyed, verified, atomically published folders: how finished work is kept.

Datasets, LR sweeps and trials are each stored as ``<root>/<kind>/<name>-<fp16>/``,
where the fingerprint hashes a JSON key of everything the result depends on. A
folder is built by a callback in a staging folder and renamed when complete; its
``meta.json`` (written last) holds the key, the callback's metadata and every
file's sha256. A later call with the same key finds the folder, verifies it and
skips the work; a damaged folder is discarded and built again. The folder, not a
Prefect result, is the truth, so a rerun after a crash — in this process, another,
or on another machine sharing the folder — reuses whatever was finished.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nighttune.tasks.core.errors import IntegrityError, UnsafePath
from nighttune.tasks.core.logs import get_logger
from nighttune.tasks.storage.files import (
    discard_dir,
    file_digests,
    safe_relpath,
    staged_dir,
    verify_digests,
)

META = "meta.json"


def fingerprint(key: dict[str, Any]) -> str:
    """sha256 of the key's canonical JSON."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    """A stored, verified result: its folder, the builder's data, and whether it was
    found (``hit``) rather than built by this call."""

    path: Path
    data: dict[str, Any]
    files: dict[str, Any]  # relative path -> {"sha256", "size"}
    fingerprint: str
    hit: bool


@dataclass(frozen=True)
class Slot:
    """Where the result for ``key`` is kept, whether or not it exists yet: the only
    place that names a store folder."""

    root: Path
    kind: str
    name: str
    key: dict[str, Any]

    @property
    def path(self) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.name)[:40]
        return self.root / self.kind / f"{safe or self.kind}-{fingerprint(self.key)[:16]}"

    def read(self, hit: bool = True) -> Entry | None:
        """The entry if it is complete, for this key, and every file verifies."""
        entry = self.path
        try:
            meta = json.loads((entry / META).read_text())
            if meta.get("fingerprint") != fingerprint(self.key):
                return None
            if verify_digests(entry, meta["files"]):
                return None
            return Entry(entry, meta["data"], meta["files"], meta["fingerprint"], hit)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, UnsafePath):
            return None  # damaged

    def get_or_build(self, build: Callable[[Path], dict[str, Any]], fresh: bool = False) -> Entry:
        """The stored entry, running ``build(staging_dir)`` only on a miss (always when
        ``fresh``: the stored entry is discarded first).

        ``build`` writes its files into the staging folder and returns JSON-able
        metadata, kept as the entry's ``data``.
        """
        entry = self.path
        if fresh and entry.exists():
            get_logger().info("%s %s: fresh, so not reusing %s", self.kind, self.name, entry)
            discard_dir(entry)
        found = self.read()
        if found is not None:
            return found
        if entry.exists():
            get_logger().warning(
                "%s %s: stored result %s is damaged; redoing it", self.kind, self.name, entry
            )
            discard_dir(entry)
        with staged_dir(entry) as staging:
            data = build(staging)
            meta = {
                "fingerprint": fingerprint(self.key),
                "key": self.key,
                "data": data,
                "files": file_digests(staging),
            }
            (staging / META).write_text(json.dumps(meta, indent=2, default=str))
        built = self.read(hit=False)
        if built is None:  # pragma: no cover - we just wrote it
            raise RuntimeError(f"{entry} failed verification right after writing")
        return built


@dataclass(frozen=True)
class EntrySeal:
    """A stored entry's seal for `tasks.storage.target.Target.publish` / ``fetch``: its
    ``meta.json``, which lists every other file with its size and sha256."""

    name: str = META
    max_bytes: int = 2**20

    def files(self, text: str, where: str) -> list[str]:
        """The files ``meta.json`` lists, each name checked before anything is fetched."""
        try:
            files = json.loads(text)["files"]
            return [safe_relpath(rel, "published file name") for rel in dict(files)]
        except (ValueError, KeyError, TypeError):
            raise UnsafePath(f"{where} is not a published result") from None

    def verify(self, folder: Path) -> None:
        """Every listed file there with its size and sha256, or `IntegrityError`."""
        try:
            files = json.loads((folder / META).read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError):
            raise IntegrityError(f"{folder / META} is missing or damaged") from None
        problem = verify_digests(folder, files)
        if problem:
            raise IntegrityError(f"{folder}: {problem}")
