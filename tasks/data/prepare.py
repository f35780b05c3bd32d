"""Preparing a TFDS catalog dataset offline, from local copies of its source files.

``nighttune data prepare fashion_mnist --from /usr/share/datasets/fashion-mnist`` runs
TFDS's own builder (same splits, same class names as ``tfds.load`` online) on the four
IDX archives found in the folder, into the data_dir that ``tune --data-dir`` then reads.

TFDS checks each archive against the sha256 it registered for the upstream file. Copies
that were recompressed (Debian's ``dataset-fashion-mnist`` is) fail that check while
holding the same data, so the content is checked here instead: the decompressed bytes
against `CONTENT_SHA256` (the upstream release's IDX files, recorded for Fashion-MNIST),
or, where none is recorded (MNIST, whose files come from any mirror), the IDX headers:
magic number, count and image size. TFDS is then told the archives' own checksums, and
prepares them as it would its downloads.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nighttune.tasks.core.errors import ConfigError, DatasetUnavailable
from nighttune.tasks.core.logs import get_logger
from nighttune.tasks.storage.files import file_lock

# The four files of each dataset: name -> (IDX magic, examples, image side).
IDX_FILES = {
    "train-images-idx3-ubyte.gz": (2051, 60_000, 28),
    "train-labels-idx1-ubyte.gz": (2049, 60_000, 0),
    "t10k-images-idx3-ubyte.gz": (2051, 10_000, 28),
    "t10k-labels-idx1-ubyte.gz": (2049, 10_000, 0),
}
SUPPORTED = ("fashion_mnist", "mnist")

# sha256 of the decompressed files of the Fashion-MNIST release (zalandoresearch, MIT):
# what matters is the data, whichever gzip packed it.
CONTENT_SHA256 = {
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": (
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
        ),
        "train-labels-idx1-ubyte.gz": (
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
        ),
        "t10k-images-idx3-ubyte.gz": (
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
        ),
    },
}


@dataclass(frozen=True)
class Prepared:
    """What `prepare_catalog` did: where, how it checked, the splits it holds."""

    name: str
    data_dir: str  # the data_dir to give `tune --data-dir`
    checked: str  # "content sha256" or "IDX headers"
    splits: dict[str, int]
    already: bool


def _read_idx(path: Path, *, magic: int, count: int, side: int) -> str:
    """The sha256 of the decompressed file, after checking its IDX header."""
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as fh:
            head = fh.read(16 if side else 8)
            digest.update(head)
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise ConfigError(f"{path}: not a readable gzip file ({exc})") from None
    fields = struct.unpack(">4I" if side else ">2I", head) if len(head) in (8, 16) else ()
    want = (magic, count, side, side) if side else (magic, count)
    if tuple(fields) != want:
        raise ConfigError(
            f"{path}: IDX header {tuple(fields)} is not the expected {want} "
            "(magic, count, rows, columns)"
        )
    return digest.hexdigest()


def check_sources(name: str, folder: Path) -> str:
    """Check the four files in ``folder``; how they were checked (see module doc)."""
    if name not in SUPPORTED:
        raise ConfigError(
            f"data prepare supports {', '.join(SUPPORTED)} (got {name!r}); other "
            "catalog datasets download where there is internet (nighttune cache)"
        )
    if not folder.is_dir():
        raise ConfigError(f"--from {folder}: not a folder")
    missing = [f for f in IDX_FILES if not (folder / f).is_file()]
    if missing:
        where = (
            " (apt-get install dataset-fashion-mnist puts them in "
            "/usr/share/datasets/fashion-mnist)"
            if name == "fashion_mnist"
            else ""
        )
        raise ConfigError(f"--from {folder} lacks {', '.join(missing)}{where}")
    recorded = CONTENT_SHA256.get(name, {})
    for file, (magic, count, side) in IDX_FILES.items():
        digest = _read_idx(folder / file, magic=magic, count=count, side=side)
        if recorded and digest != recorded[file]:
            raise ConfigError(
                f"{folder / file}: content sha256 {digest[:16]}… is not {name}'s "
                f"({recorded[file][:16]}…); not prepared"
            )
    return "content sha256" if recorded else "IDX headers"


def _trusting(builder: Any, folder: Path) -> None:
    """Make ``builder``'s download manager take the archives in ``folder`` as they are
    (checked by `check_sources`): their own checksums in place of the registered ones."""
    from tensorflow_datasets.core.download import checksums

    make = builder._make_download_manager

    def make_trusting(*args: Any, **kwargs: Any) -> Any:
        manager = make(*args, **kwargs)
        for url, info in dict(manager._url_infos).items():
            if info.filename and (folder / info.filename).is_file():
                manager._url_infos[url] = checksums.compute_url_info(folder / info.filename)
        return manager

    builder._make_download_manager = make_trusting


def prepare_catalog(name: str, folder: str, data_dir: str | None = None) -> Prepared:
    """Prepare ``name`` from the source files in ``folder`` (see module doc)."""
    import tensorflow_datasets as tfds

    source = Path(folder).expanduser().resolve()
    checked = check_sources(name, source)
    builder = tfds.builder(name, data_dir=data_dir)
    already = builder.is_prepared()
    root = Path(builder.data_dir).parents[1]  # <data_dir>/<name>/<version>
    if not already:
        get_logger().info("dataset %s: %s checked; preparing into %s", name, checked, root)
        root.mkdir(parents=True, exist_ok=True)
        with file_lock(root / ".nighttune-prepare.lock"), _quiet_tfds():
            _trusting(builder, source)
            # TFDS's extracted copies (53 MB for Fashion-MNIST) go with the staging folder.
            with tempfile.TemporaryDirectory(dir=root, prefix=".prepare-") as staging:
                config = tfds.download.DownloadConfig(manual_dir=str(source))
                try:
                    builder.download_and_prepare(download_dir=staging, download_config=config)
                except Exception as exc:  # TFDS's many kinds; nothing here downloads
                    raise DatasetUnavailable(f"dataset {name} was not prepared: {exc}") from None
        builder = tfds.builder(name, data_dir=data_dir)
    splits = {split: info.num_examples for split, info in builder.info.splits.items()}
    return Prepared(name, str(root), checked, splits, already)


@contextlib.contextmanager
def _quiet_tfds() -> Iterator[None]:
    """TFDS's progress bars and its "downloaded and prepared" print off the screen (our
    log lines say what happens)."""
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        tfds.enable_progress_bar()
