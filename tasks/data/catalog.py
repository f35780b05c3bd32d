"""TFDS builders as dataset sources: catalog names and the bundled ``digits``.

Everything the cache fingerprint needs comes from the builder's static info; the
data itself is prepared (downloaded, when allowed) only on a cache miss.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import socket
from pathlib import Path
from typing import Any

from nighttune.tasks.core import settings
from nighttune.tasks.core.config import DatasetSpec
from nighttune.tasks.core.errors import ConfigError, DatasetUnavailable, first_line
from nighttune.tasks.core.logs import get_logger
from nighttune.tasks.data.images import compact_image, preprocess_image
from nighttune.tasks.data.splits import carve_codes
from nighttune.tasks.storage.files import file_lock


class CatalogSource:
    """A TFDS builder (catalog name or the bundled ``digits``).

    Everything the cache key needs comes from the builder's static info, so a
    cache hit never touches the TFDS data; `splits` prepares (downloads) it.
    """

    def __init__(self, spec: DatasetSpec, cache_root: Path) -> None:
        import tensorflow_datasets as tfds

        self.spec = spec
        if spec.kind != "digits":
            _check_catalog_name(spec.name)
        self.data_dir = spec.data_dir or (
            str(cache_root / "tfds") if spec.kind == "digits" else None
        )
        self.builder = self._new_builder()
        info = self.builder.info
        if not info.supervised_keys:
            raise ConfigError(
                f"dataset {spec.name} has no (image, label) supervised keys; "
                "nighttune trains image classifiers, e.g. mnist, fashion_mnist, cifar10"
            )
        image_key, label_key = info.supervised_keys[:2]
        image_feature, label_feature = info.features[image_key], info.features[label_key]
        if not isinstance(image_feature, tfds.features.Image) or not hasattr(
            label_feature, "names"
        ):
            raise ConfigError(
                f"dataset {spec.name} is not an image classification dataset "
                f"({image_key}: {type(image_feature).__name__}, "
                f"{label_key}: {type(label_feature).__name__})"
            )
        native = tuple(image_feature.shape)
        if spec.image_size is None and None in native[:2]:
            raise ConfigError(
                f"dataset {spec.name} has images of varying size {native}; "
                "pass --image-size HEIGHT,WIDTH"
            )
        height, width = spec.image_size or native[:2]
        channels = spec.channels or (1 if native[2] in (1, 2) else 3)
        self.input_shape = (int(height), int(width), int(channels))
        # Images already at the model's size are cached as they are stored (uint8),
        # the rest as float32 after resizing (tasks.data.images.compact_image).
        self.stored = "uint8" if tuple(native[:2]) == (height, width) else "float32"
        self.class_names = list(label_feature.names)
        self.identity = "digits" if spec.kind == "digits" else info.full_name
        self.version = str(info.version)
        # Used only for the splits the source lacks (known once it is prepared).
        self.split_plan = {"validation": spec.val_fraction, "test": spec.test_fraction}

    def _new_builder(self) -> Any:
        import tensorflow_datasets as tfds

        if self.spec.kind == "digits":
            from nighttune.tasks.data.digits import Digits

            return Digits(data_dir=self.data_dir)
        return tfds.builder(self.spec.name, data_dir=self.data_dir)

    def check(self) -> None:
        """Raise now if `splits` could not get the data (not prepared and offline)."""
        if self.spec.kind != "digits":
            _check_downloadable(self.builder, self.spec)

    def num_examples(self) -> int:
        """Examples in every split, once the data is prepared (0 before: not known yet)."""
        return sum(split.num_examples for split in self.builder.info.splits.values())

    def splits(self) -> dict[str, Any]:
        import tensorflow as tf

        # Two runs on one machine may prepare the same TFDS data at once (two trials
        # on one worker); TFDS renames its staging folder and the loser would fail.
        # (A prepared data_dir may be a read-only copy: only lock when there is work.)
        prepared = self.builder.is_prepared()
        lock = Path(self.builder.data_dir).parent / ".nighttune-prepare.lock"
        with contextlib.nullcontext() if prepared else file_lock(lock):
            if self.spec.kind == "digits":
                import tensorflow_datasets as tfds

                tfds.disable_progress_bar()  # under a second of work: no bars
                # nor TFDS's "Downloading and preparing dataset Unknown size" print for
                # data bundled with the package (our log line says what happens)
                with contextlib.redirect_stdout(io.StringIO()):
                    self.builder.download_and_prepare()
                tfds.enable_progress_bar()
            else:
                _prepare_catalog(self.builder, self.spec)
        # Another process may have prepared it meanwhile: read it afresh. Also when it was
        # prepared between this builder's creation and the check above (its info, read
        # before, has no splits: seen as "no train split (it has: [])" with two at once).
        if not prepared or not self.builder.info.splits:
            self.builder = self._new_builder()
        have = set(self.builder.info.splits.keys())
        if "train" not in have:
            raise ConfigError(
                f"dataset {self.spec.name} has no train split (it has: {sorted(have)})"
            )
        n_train = self.builder.info.splits["train"].num_examples
        # A split the source lacks is carved from train; a fraction of 0 carves nothing.
        carve_val = 0.0 if "validation" in have else self.spec.val_fraction
        carve_test = 0.0 if "test" in have else self.spec.test_fraction
        codes = tf.constant(
            carve_codes(
                n_train, val_fraction=carve_val, test_fraction=carve_test, seed=self.spec.seed
            )
        )

        def read(split: str) -> Any:
            ds = self.builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
            shape = self.input_shape
            keep = compact_image if self.stored == "uint8" else lambda x: preprocess_image(x, shape)
            return ds.map(
                lambda image, label: (keep(image), label),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )

        def carved(code: int) -> Any:
            return (
                read("train")
                .enumerate()
                .filter(lambda i, ex: tf.gather(codes, i) == code)
                .map(lambda i, ex: ex)
            )

        return {
            "train": carved(0),
            "validation": read("validation") if not carve_val else carved(1),
            "test": read("test") if not carve_test else carved(2),
        }


def _check_catalog_name(name: str) -> None:
    import tensorflow_datasets as tfds

    known = tfds.list_builders(with_community_datasets=False)
    base = name.split(":")[0].split("/")[0]
    if base in known:
        return
    close = difflib.get_close_matches(base, [*known, "digits"], n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise DatasetUnavailable(
        f"unknown dataset {name!r}; {hint}"
        "use a TFDS catalog name (mnist, fashion_mnist, cifar10), 'digits', "
        "or a folder path such as ./images"
    )


def _download_hint(spec: DatasetSpec) -> str:
    return (
        f"prepare it where there is internet (nighttune cache --dataset {spec.name} "
        f"--data-dir DIR, or `tfds build {spec.name} --data_dir DIR`), copy DIR here "
        "and pass --data-dir DIR or set TFDS_DATA_DIR"
    )


def _check_downloadable(builder: Any, spec: DatasetSpec) -> None:
    """Fail at once if the dataset is neither prepared nor downloadable from here."""
    if builder.is_prepared():
        return
    problem = network_problem()
    if problem:
        where = spec.data_dir or settings.current().tfds_data_dir or "~/tensorflow_datasets"
        raise DatasetUnavailable(
            f"dataset {spec.name} is not prepared in {where} and cannot be downloaded "
            f"({problem}); {_download_hint(spec)}"
        )


def _prepare_catalog(builder: Any, spec: DatasetSpec) -> None:
    """Download and prepare a catalog dataset, or fail at once when offline."""
    _check_downloadable(builder, spec)
    if builder.is_prepared():
        return
    get_logger().info("dataset %s: downloading and preparing", spec.name)
    try:
        builder.download_and_prepare()
    except Exception as exc:  # TFDS raises many kinds; the user needs the same advice
        raise DatasetUnavailable(
            f"dataset {spec.name} could not be prepared ({first_line(exc)}); {_download_hint(spec)}"
        ) from None


def network_problem(timeout: float = 3.0) -> str | None:
    """None if the download host (or the HTTPS proxy) accepts a connection, else why not.

    TFDS retries an unreachable host for minutes; one short connect tells us first.
    """
    machine = settings.current()
    target = machine.https_proxy or machine.network_probe
    hostport = target.split("://")[-1].split("/")[0].split("@")[-1]
    host, _, port_text = hostport.rpartition(":")
    host, port = (host, int(port_text)) if host and port_text.isdigit() else (hostport, 443)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"no connection to {host}:{port}: {exc.strerror or exc}"
