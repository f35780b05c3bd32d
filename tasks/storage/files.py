"""Files that are either whole or absent: checksums and atomically published folders.

Used by the dataset cache (and by exports): a folder is built under a temporary
name next to its final place, its files' sizes and sha256 recorded, and only then
renamed into place. A crash leaves a ``*.tmp-*`` folder that no reader looks at (and
the next staging in that folder removes); a folder damaged later is caught by
`verify_digests`.

Paths that come from outside (a manifest's file names, a run id in ``latest.json``,
the keys of a worker's published result) go through `safe_join`, the one place that
decides what such a path may be, before anything is read, written or removed there.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

from nighttune.tasks.core.errors import UnsafePath, UserError, short_repr

_CHUNK = 1 << 20


MAX_RELPATH = 1024  # characters of a relative path from outside


def safe_relpath(rel: object, what: str = "path") -> str:
    """``rel`` if it is a relative POSIX path that stays where it is joined, else `UnsafePath`.

    Refused: non-strings, empty, absolute (``/x``), ``..`` / ``.`` / empty segments
    (``a//b``), backslashes, NUL and other control characters, over `MAX_RELPATH`.
    """
    problem = None
    if not isinstance(rel, str) or not rel:
        problem = "it is empty or not a string"
    elif len(rel) > MAX_RELPATH:
        problem = f"it is longer than {MAX_RELPATH} characters"
    elif rel.startswith("/"):
        problem = "it is absolute"
    elif "\\" in rel or any(ord(c) < 32 or ord(c) == 127 for c in rel):
        problem = "it holds a backslash or a control character"
    elif any(part in ("", ".", "..") for part in rel.split("/")):
        problem = "it has an empty, '.' or '..' segment"
    if problem:
        raise UnsafePath(f"{what} {short_repr(rel)} is refused: {problem}")
    assert isinstance(rel, str)
    return rel


def safe_join(parent: Path, rel: object, what: str = "path") -> Path:
    """``parent / rel`` for a path from outside, checked by `safe_relpath` and, once the
    symlinks already on disk are followed, still inside ``parent``."""
    path = parent / safe_relpath(rel, what)
    top = os.path.realpath(parent)
    if os.path.commonpath([top, os.path.realpath(path)]) != top:
        raise UnsafePath(f"{what} {short_repr(rel)} is refused: it leads outside {parent}")
    return path


def existing_ancestor(path: Path) -> Path:
    """``path`` itself if it exists, else its nearest parent that does."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable_dir(path: Path, what: str) -> None:
    """Raise `UserError` now unless ``path`` is (or can be made) a folder we can write in."""
    probe = existing_ancestor(path)
    if probe.exists() and not probe.is_dir():
        raise UserError(
            f"{what} {path} is not usable: {probe} is a file, not a folder; give a folder"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{what} {path} is not usable: {probe} is not writable by this user")


def read_bounded(path: Path, limit: int) -> bytes:
    """A small file's bytes; a longer one is cut at ``limit + 1`` (its parser refuses it)."""
    with open(path, "rb") as fh:
        return fh.read(limit + 1)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_digests(root: Path, exclude: tuple[str, ...] = ()) -> dict[str, dict[str, int | str]]:
    """``{relative/posix/path: {"size": bytes, "sha256": hex}}`` for every file under root."""
    digests: dict[str, dict[str, int | str]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel in exclude:
            continue
        digests[rel] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
    return digests


def verify_digests(root: Path, expected: dict[str, dict[str, int | str]]) -> str | None:
    """None when every listed file is present with its size and sha256, else the first problem."""
    for rel, want in expected.items():
        path = safe_join(root, rel, "stored file name")
        if not path.is_file():
            return f"{rel} is missing"
        if path.stat().st_size != want["size"]:
            return f"{rel} has {path.stat().st_size} bytes, expected {want['size']}"
        if sha256_file(path) != want["sha256"]:
            return f"{rel} does not match its sha256"
    return None


def write_text_atomic(path: Path, text: str) -> None:
    """Write a small text file so that readers see the old or the new content, never half.

    The temporary file is named for this host and process, so one left by a killed
    process is removed by the next write in that folder (`remove_orphans`).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path.parent)
    tmp = scratch_path(path.with_name(f".{path.name}"), "tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


_HOST = socket.gethostname().replace("-", "_")
_STAGING = re.compile(r"\.(?:tmp|trash)-(?P<host>[^-]+)-(?P<pid>\d+)-[0-9a-f]{8}$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # raises PermissionError for another user's live process
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def remove_orphans(parent: Path) -> list[Path]:
    """Remove staging and trash folders (and temporary files) in ``parent`` left by dead
    processes of this host.

    A SIGKILLed build leaves ``<name>.tmp-<host>-<pid>-<hex>``; nobody reads it, but it
    holds disk. Those of live processes, or of other hosts sharing the folder, stay.
    """
    removed: list[Path] = []
    try:
        children = list(parent.iterdir())
    except OSError:
        return removed
    for child in children:
        match = _STAGING.search(child.name)
        if match and match["host"] == _HOST and not _pid_alive(int(match["pid"])):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
            removed.append(child)
    return removed


def scratch_path(final: Path, kind: str) -> Path:
    """A name beside ``final`` for work in progress that `remove_orphans` recognises."""
    return final.with_name(f"{final.name}.{kind}-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``final``; on success rename it to ``final``.

    If ``final`` appeared meanwhile (another process won the race), the staged copy
    is discarded and the existing one kept. On an exception the staged folder is
    removed and nothing is published; what a killed process left is removed by the
    next `staged_dir` in the same parent (`remove_orphans`).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(final.parent)
    tmp = scratch_path(final, "tmp")
    tmp.mkdir()
    try:
        yield tmp
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def discard_dir(path: Path) -> None:
    """Remove a folder without ever leaving a half-deleted one under its name."""
    if not path.exists():
        return
    trash = scratch_path(path, "trash")
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
