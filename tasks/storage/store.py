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
from pathlib import Path
from typing import Any

from tasks.core.errors import UnsafePath
from tasks.core.logs import get_logger
from tasks.storage.files import discard_dir, file_digests, staged_dir, verify_digests

META = "meta.json"


def fingerprint(key: dict[str, Any]) -> str:
    """sha256 of the key's canonical JSON."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def entry_path(root: Path, kind: str, name: str, key: dict[str, Any]) -> Path:
    """Where the entry for ``key`` lives (whether or not it exists yet)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:40] or kind
    return root / kind / f"{safe}-{fingerprint(key)[:16]}"


def read_entry(entry: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The entry's metadata if it is complete, for this key, and every file verifies."""
    try:
        meta = json.loads((entry / META).read_text())
        if meta.get("fingerprint") != fingerprint(key) or verify_digests(entry, meta["files"]):
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, UnsafePath):  # damaged
        return None
    return meta


def get_or_build(
    root: Path,
    kind: str,
    name: str,
    key: dict[str, Any],
    build: Callable[[Path], dict[str, Any]],
) -> tuple[Path, dict[str, Any], bool]:
    """Return ``(entry, meta, hit)``, running ``build(staging_dir)`` only on a miss.

    ``build`` writes its files into the staging folder and returns JSON-able metadata,
    stored under ``meta["data"]``.
    """
    entry = entry_path(root, kind, name, key)
    meta = read_entry(entry, key)
    if meta is not None:
        return entry, meta, True
    if entry.exists():
        get_logger().warning("%s %s: stored result %s is damaged; redoing it", kind, name, entry)
        discard_dir(entry)
    with staged_dir(entry) as staging:
        data = build(staging)
        meta = {
            "fingerprint": fingerprint(key),
            "key": key,
            "data": data,
            "files": file_digests(staging),
        }
        (staging / META).write_text(json.dumps(meta, indent=2, default=str))
    meta = read_entry(entry, key)
    if meta is None:  # pragma: no cover - we just wrote it
        raise RuntimeError(f"{entry} failed verification right after writing")
    return entry, meta, False
