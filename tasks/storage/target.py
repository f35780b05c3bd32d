"""Where runs go: one `Target`, a local folder or an S3 prefix, behind the same methods.

A target is made once, at the edge, from the export URI and the S3 endpoint
(`make_target`); the endpoint lives inside it, as credentials live inside
prefect-aws's ``S3Bucket``, and nothing below the edge asks which kind it holds.
What the callers need and nothing more:

- `Target.check`: reachable (the bucket) and writable (the folder), before training;
- `Target.read_text` / `Target.read_versioned`: a small text, bounded, None when absent;
- `Target.swap`: replace such a text only if it is still the version read
  (compare-and-swap: a conditional PUT on S3, a lock and an atomic rename locally);
- `Target.publish`: a local folder becomes ``<target>/<name>/``, every file verified,
  its seal (the file that says the rest is there) written last;
- `Target.runs`: every sealed folder directly under the target, with its seal's text;
- `Target.fetch`: a sealed folder, verified, in its local home;
- `Target.home`: that local home (the folder itself locally; a copy in the cache for S3);
- `Target.location` / `Target.url`: how to name a place under the target to a user.

A `Seal` says which file seals a folder, which files it lists and how a copy is
verified: the run's manifest (`tasks.runs`) and the store's ``meta.json`` (the
hand-off) are the two. Verified uploads, checksums and conditional writes stay in
`tasks.storage.s3` and `tasks.storage.files`: this module only chooses between them.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Protocol

from nighttune.tasks.core import settings
from nighttune.tasks.core.errors import ConfigError, ObjectMissing, UserError
from nighttune.tasks.core.logs import get_logger
from nighttune.tasks.storage import s3
from nighttune.tasks.storage.files import (
    check_writable_dir,
    discard_dir,
    file_digests,
    file_lock,
    read_bounded,
    safe_join,
    staged_dir,
    write_text_atomic,
)
from nighttune.tasks.storage.s3 import Conflict

__all__ = [
    "Conflict",
    "LocalTarget",
    "MissingFile",
    "S3Target",
    "Seal",
    "Sealed",
    "Target",
    "Versioned",
    "locate",
    "make_target",
]

POINTER = "latest.json"  # a target's pointer to the run in service (`tasks.runs.latest`)
URL_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:/")


class Seal(Protocol):
    """The file written last into a published folder, and what it vouches for."""

    @property
    def name(self) -> str:
        """The seal's file name (``manifest.json``, ``meta.json``)."""
        ...

    @property
    def max_bytes(self) -> int:
        """The most a seal may hold; a longer one is read only that far, and refused."""
        ...

    def files(self, text: str, where: str) -> list[str]:
        """The relative paths the seal ``text`` (read from ``where``) lists, every one
        checked as a path from outside; raises `UserError` when the text is no seal."""
        ...

    def verify(self, folder: Path) -> None:
        """Raise `UserError` unless every file the seal in ``folder`` lists is there
        with its size and checksum."""
        ...


@dataclass(frozen=True)
class Versioned:
    """A text as read, and the version a conditional `Target.swap` compares with."""

    text: str
    version: str


@dataclass(frozen=True)
class Sealed:
    """A published folder directly under a target: its name, where its seal is (for
    messages) and the seal's text."""

    name: str
    where: str
    text: str


class MissingFile(ObjectMissing):
    """A file a seal lists is not where the seal says: the folder is incomplete."""

    def __init__(self, message: str, rel: str) -> None:
        super().__init__(message)
        self.rel = rel


class Target(ABC):
    """A local folder or an S3 prefix that runs are published to and read from."""

    uri: str
    # Whether the target's folders are their own local homes (nothing is copied): what
    # makes bulky extras such as TensorBoard logs cheap enough to write by default.
    in_place: ClassVar[bool]

    def __str__(self) -> str:
        return self.uri

    @abstractmethod
    def check(self) -> None:
        """Raise `UserError` now unless the target can be reached and written."""

    @abstractmethod
    def location(self, *parts: str) -> str:
        """How a user names ``parts`` under the target: a path, or an s3:// URI."""

    @abstractmethod
    def url(self, *parts: str) -> str:
        """A URL for ``parts`` under the target: file:// or s3://."""

    @abstractmethod
    def home(self, *parts: str) -> Path:
        """The local folder that holds ``parts``: the place itself for a local target,
        a copy in the cache (where `fetch` puts it) for S3. Every part is checked as
        a path from outside."""

    @abstractmethod
    def read_versioned(self, rel: str, *, max_bytes: int) -> Versioned | None:
        """The text at ``rel`` (read only to ``max_bytes`` and one byte more, so that its
        parser refuses a longer one) and its version; None when there is none."""

    def read_text(self, rel: str, *, max_bytes: int) -> str | None:
        """The text at ``rel``, bounded as `read_versioned` bounds it; None when absent."""
        found = self.read_versioned(rel, max_bytes=max_bytes)
        return None if found is None else found.text

    @abstractmethod
    def swap(self, rel: str, text: str, *, version: str | None) -> None:
        """Write ``text`` at ``rel`` only if it is still at ``version`` (None: only if
        there is nothing there yet); `Conflict` when another writer changed it since.
        Readers see the old text or the new one, never half."""

    @abstractmethod
    def publish(self, local: Path, name: str, *, seal: Seal) -> None:
        """Make the folder ``local`` the target's ``name``, every file verified and the
        seal last, so that a folder without its seal is never taken for a whole one."""

    @abstractmethod
    def runs(self, *, seal: Seal) -> list[Sealed]:
        """Every folder directly under the target that holds ``seal``, by name."""

    @abstractmethod
    def fetch(self, name: str, *, seal: Seal) -> Path | None:
        """The sealed folder ``name`` in its `home`, verified by ``seal``; None when it
        has no seal (nothing, or a publish that did not finish)."""


def make_target(
    uri: str, endpoint_url: str | None = None, *, cache_dir: str | Path | None = None
) -> Target:
    """The target ``uri`` names: ``s3://bucket/prefix`` (through ``endpoint_url``, or the
    endpoint the environment names) or a local folder. ``cache_dir``: where copies of
    an S3 target's folders are kept (None: the default cache).

    Raises:
        ConfigError: a URL that is neither (``http://…``, ``S3://…``, ``s3:/b``).
        S3Error: an ``s3://`` URI without a valid bucket, or an endpoint with credentials.
    """
    if uri.startswith("s3://"):
        cache = Path(cache_dir).expanduser().resolve() if cache_dir else None
        return S3Target(uri.rstrip("/"), s3.S3Uri.parse(uri), endpoint_url, cache)
    if URL_LIKE.match(uri):  # s3:/b, S3://b, http://…: not a folder meant
        raise ConfigError(
            f"export target {uri!r}: give a local folder (./exports) or s3://bucket/prefix"
        )
    return LocalTarget(uri, Path(uri).expanduser().resolve())


def locate(
    ref: str, endpoint_url: str | None = None, *, cache_dir: str | Path | None = None
) -> tuple[Target, str]:
    """The target a reference to one of its folders names, and the folder's name there:
    ``<target>/latest`` (or a local target folder itself, one holding ``latest.json``)
    gives ``latest``; ``<target>/<name>`` gives ``name``. ``endpoint_url`` and
    ``cache_dir`` as for `make_target`."""
    if ref.startswith("s3://"):
        at = s3.S3Uri.parse(ref)
        parent, _, last = at.prefix.rpartition("/")
        return make_target(
            s3.S3Uri(at.bucket, parent).child(), endpoint_url, cache_dir=cache_dir
        ), last
    # A path, whatever it looks like: a missing one is reported as missing, by the caller.
    path = Path(ref).expanduser()
    if path.name in ("latest", POINTER) and not path.is_dir():
        return LocalTarget(str(path.parent), path.parent.resolve()), "latest"
    if (path / POINTER).is_file():
        return LocalTarget(str(path), path.resolve()), "latest"
    path = path.resolve()
    return LocalTarget(str(path.parent), path.parent), path.name


@dataclass(frozen=True)
class LocalTarget(Target):
    """A folder, possibly shared between machines (NFS): written in place, staged and
    renamed, ``latest.json`` replaced under a lock."""

    uri: str
    root: Path
    in_place: ClassVar[bool] = True

    def check(self) -> None:
        """The folder is (or can be made) one this user writes in."""
        check_writable_dir(Path(self.uri).expanduser(), "export target (--export-to)")

    def location(self, *parts: str) -> str:
        """The path of ``parts``."""
        return str(self.root.joinpath(*parts))

    def url(self, *parts: str) -> str:
        """The file:// URL of ``parts``."""
        return self.root.joinpath(*parts).as_uri()

    def home(self, *parts: str) -> Path:
        """The place itself."""
        return _joined(self.root, parts)

    def read_versioned(self, rel: str, *, max_bytes: int) -> Versioned | None:
        """The file's text and the sha256 of all of it (its version)."""
        path = self.home(rel)
        if not path.is_file():
            return None
        head, digest = _read(path, max_bytes)
        return Versioned(head.decode(errors="replace"), digest)

    def swap(self, rel: str, text: str, *, version: str | None) -> None:
        """Under a lock beside the file, compare its digest and rename the new text in."""
        path = self.home(rel)
        with file_lock(path.with_name(f".{path.name.removesuffix('.json')}.lock")):
            now = _read(path, 0)[1] if path.is_file() else None
            if now != version:
                raise Conflict(self.location(rel))
            write_text_atomic(path, text)

    def publish(self, local: Path, name: str, *, seal: Seal) -> None:
        """Already in place when ``local`` was staged there (the usual case); otherwise
        copied into a staged folder, compared file by file, and renamed in."""
        final = self.home(name)
        if local.resolve() == final.resolve():
            return
        digests = file_digests(local)
        discard_dir(final)
        with staged_dir(final) as staging:
            shutil.copytree(local, staging, dirs_exist_ok=True)
            if file_digests(staging) != digests:
                raise OSError(f"{final}: the copy does not match {local}")

    def runs(self, *, seal: Seal) -> list[Sealed]:
        """Every child folder with a readable seal; one that cannot be read is logged."""
        if not self.root.is_dir():
            raise UserError(
                f"export target {self.uri} does not exist; give the --export-to of tune"
            )
        found = []
        for path in sorted(self.root.glob(f"*/{seal.name}")):
            if ".tmp-" in path.parent.name or not path.is_file():
                continue  # a folder still being written
            try:
                text = read_bounded(path, seal.max_bytes).decode(errors="replace")
            except OSError as exc:
                get_logger().warning("history: skipped %s (%s)", path, exc.strerror)
                continue
            found.append(Sealed(path.parent.name, str(path), text))
        return found

    def fetch(self, name: str, *, seal: Seal) -> Path | None:
        """The folder where it is, verified in place; nothing is copied."""
        folder = self.home(name)
        if not folder.exists():
            return None
        seal.verify(folder)
        return folder


@dataclass(frozen=True)
class S3Target(Target):
    """A prefix in a bucket: files uploaded and verified one by one, the seal last;
    ``latest.json`` replaced by a conditional PUT; folders fetched into the cache,
    under ``<cache>/runs/<bucket>/<prefix hash>/``."""

    uri: str
    at: s3.S3Uri
    endpoint_url: str | None = field(default=None, repr=False)
    cache_dir: Path | None = None
    in_place: ClassVar[bool] = False

    @cached_property
    def client(self) -> Any:
        """One boto3 client for the target's life (made at first use)."""
        return s3.client(self.endpoint_url)

    def check(self) -> None:
        """The bucket is there and the credentials are accepted."""
        s3.check_bucket(self.at, self.endpoint_url)

    def location(self, *parts: str) -> str:
        """The s3:// URI of ``parts``."""
        return self.at.child(*parts)

    def url(self, *parts: str) -> str:
        """The s3:// URI of ``parts``."""
        return self.at.child(*parts)

    def home(self, *parts: str) -> Path:
        """``<cache>/runs/<bucket>/<first 12 of the prefix's sha256>/<parts>``."""
        cache = self.cache_dir or settings.current().cache_dir
        prefix = hashlib.sha256(self.at.prefix.encode()).hexdigest()[:12]
        return _joined(cache / "runs" / self.at.bucket / prefix, parts)

    def read_versioned(self, rel: str, *, max_bytes: int) -> Versioned | None:
        """The object's text and ETag."""
        found = s3.get_versioned_text(
            self.client, self.at.bucket, self._key(rel), max_bytes=max_bytes
        )
        return None if found is None else Versioned(*found)

    def swap(self, rel: str, text: str, *, version: str | None) -> None:
        """One PUT with If-Match (or If-None-Match when ``version`` is None)."""
        try:
            s3.put_json(
                self.client,
                self.at.bucket,
                self._key(rel),
                text=text,
                if_match=version,
                if_absent=version is None,
            )
        except Conflict:
            raise Conflict(self.location(rel)) from None

    def publish(self, local: Path, name: str, *, seal: Seal) -> None:
        """Upload every file with its SHA256 checked on the server, the seal last."""
        log = get_logger()
        files = sorted(p for p in local.rglob("*") if p.is_file())
        files.sort(key=lambda p: p.relative_to(local).as_posix() == seal.name)
        for i, path in enumerate(files, 1):
            key = self._key(name, path.relative_to(local).as_posix())
            s3.upload_verified(self.client, path, bucket=self.at.bucket, key=key)
            log.info("publish: %d/%d verified s3://%s/%s", i, len(files), self.at.bucket, key)

    def runs(self, *, seal: Seal) -> list[Sealed]:
        """One listing of the prefix's child folders (paginated), then each one's seal."""
        found = []
        try:
            for child in self._children():
                name = child.rstrip("/").rpartition("/")[2]
                key = child + seal.name
                text = s3.get_text(self.client, self.at.bucket, key, max_bytes=seal.max_bytes)
                if text is not None:
                    found.append(Sealed(name, f"s3://{self.at.bucket}/{key}", text))
        except s3.S3Error:
            raise
        except Exception as exc:
            raise s3.explain(exc, self.at.bucket, "list the runs") from None
        return sorted(found, key=lambda sealed: sealed.name)

    def fetch(self, name: str, *, seal: Seal) -> Path | None:
        """Reuse the cached copy if it verifies; else download the seal, check every name
        it lists, download those files into a staged folder, verify, rename it in."""
        log = get_logger()
        local = self.home(name)
        if local.is_dir():
            try:
                seal.verify(local)
                log.info("fetch: %s already fetched (%s)", self.location(name), local)
                return local
            except UserError:
                log.warning("fetch: local copy %s is damaged; fetching again", local)
        where = self.location(name, seal.name)
        text = self.read_text(f"{name}/{seal.name}", max_bytes=seal.max_bytes)
        if text is None:
            return None
        # Every name is checked before the first download: nothing lands outside the copy.
        names = seal.files(text, where)
        discard_dir(local)  # inside the cache: `home` checked the name
        with staged_dir(local) as staging:
            for rel in names:
                self._download(name, rel, into=staging, seal=seal)
            (staging / seal.name).write_text(text)
            seal.verify(staging)
        log.info("fetch: %s into %s", self.location(name), local)
        return local

    def _download(self, name: str, rel: str, *, into: Path, seal: Seal) -> None:
        """One listed file of ``name`` into the staged copy ``into``."""
        destination = safe_join(into, rel, f"{seal.name} file name")
        try:
            s3.download(self.client, self.at.bucket, self._key(name, rel), local=destination)
        except ObjectMissing:
            raise MissingFile(
                f"{self.location(name)} is incomplete: {rel}, listed in its {seal.name}, "
                "is not in the bucket; publish it again",
                rel,
            ) from None

    def _key(self, *parts: str) -> str:
        return self.at.key(*parts)

    def _children(self) -> Iterator[str]:
        """The key prefixes (``<prefix>/<child>/``) of the folders directly under the prefix."""
        prefix = self.at.key() + "/" if self.at.prefix else ""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.at.bucket, Prefix=prefix, Delimiter="/"
        )
        for page in pages:
            for common in page.get("CommonPrefixes", []):
                yield common["Prefix"]


def _joined(root: Path, parts: tuple[str, ...]) -> Path:
    """``root / parts``, each part a path from outside: checked by `safe_join`."""
    path = root
    for part in parts:
        path = safe_join(path, part, "name")
    return path


def _read(path: Path, max_bytes: int) -> tuple[bytes, str]:
    """The file's first ``max_bytes`` and one byte more, and the sha256 of all of it, in
    one pass: the version belongs to the very text returned, even if a writer renames
    a new file in meanwhile."""
    digest = hashlib.sha256()
    head = b""
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            if len(head) <= max_bytes:
                head += chunk[: max_bytes + 1 - len(head)]
    return head, digest.hexdigest()
