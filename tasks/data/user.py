"""The user's own data: a builder ``module:function`` that returns the splits.

``load(**kwargs)`` returns a mapping with ``train`` and optionally ``validation``,
``test`` and ``class_names``; each split is a pair of arrays ``(x, y)`` or an
unbatched `tf.data.Dataset` of ``(x, y)``. Inputs may have any shape (images, feature
vectors, token ids) and are cached as float32 as given: no rescaling. Labels are
integer classes or one-hot rows (kept one-hot, for a model compiled with categorical
cross-entropy). Missing validation and test splits are carved from train with the
spec's fractions and seed. The builder runs on every load: its output's sha256 is
part of the cache key, so a rerun reuses the cached splits and a changed builder or
changed data rebuilds them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from nighttune.tasks.core.code import call_builder, code_version, load_builder
from nighttune.tasks.core.config import DatasetSpec
from nighttune.tasks.core.errors import BuilderError
from nighttune.tasks.data.splits import carve_codes

SPLIT_NAMES = ("train", "validation", "test")


class BuilderSource:
    """A dataset from the user's builder (see the module doc)."""

    def __init__(self, spec: DatasetSpec) -> None:
        assert spec.builder is not None
        self.spec = spec
        self.ref = spec.builder
        self.identity = f"builder-{self.ref.replace(':', '-')}"
        self.arrays: dict[str, tuple[Any, Any]] | None = None

    def check(self) -> None:
        """The builder can be imported and found (it is not called: that loads the data)."""
        load_builder(self.ref, self.spec.code_path)

    def load(self) -> dict[str, tuple[Any, Any]]:
        """The builder's splits as checked NumPy arrays (the builder runs once per source)."""
        if self.arrays is None:
            function = load_builder(self.ref, self.spec.code_path)
            returned = call_builder(self.ref, function, **self.spec.kwargs)
            self.arrays, self._class_names = _checked(self.ref, returned)
        return self.arrays

    @property
    def class_names(self) -> list[str]:
        self.load()
        return self._class_names

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.load()["train"][0].shape[1:])

    @property
    def version(self) -> str:
        return _version(self.ref, self.spec.kwargs, self.load())

    @property
    def split_plan(self) -> dict[str, float | None]:
        arrays = self.load()
        return {
            "validation": None if "validation" in arrays else self.spec.val_fraction,
            "test": None if "test" in arrays else self.spec.test_fraction,
        }

    def num_examples(self) -> int:
        """Examples in every split once loaded; 0 before (preflight does not load)."""
        return sum(len(y) for _, y in self.arrays.values()) if self.arrays else 0

    def splits(self) -> dict[str, Any]:
        """Every split as a `tf.data.Dataset` of ``(float32 x, label)``, carved as needed."""
        import tensorflow as tf

        arrays = dict(self.load())
        x, y = arrays["train"]
        carve_val = 0.0 if "validation" in arrays else self.spec.val_fraction
        carve_test = 0.0 if "test" in arrays else self.spec.test_fraction
        codes = carve_codes(
            len(y), val_fraction=carve_val, test_fraction=carve_test, seed=self.spec.seed
        )
        for code, name in ((0, "train"), (1, "validation"), (2, "test")):
            if name == "train" or name not in arrays:
                arrays[name] = (x[codes == code], y[codes == code])
        return {name: tf.data.Dataset.from_tensor_slices(arrays[name]) for name in SPLIT_NAMES}


def _checked(ref: str, returned: Any) -> tuple[dict[str, tuple[Any, Any]], list[str]]:
    """The builder's mapping as float32 inputs and int64 (or one-hot float32) labels."""
    if not isinstance(returned, Mapping) or "train" not in returned:
        got = sorted(map(str, returned)) if isinstance(returned, Mapping) else type(returned)
        raise BuilderError(
            f"data builder {ref!r} must return a mapping with a 'train' split "
            f"(and optionally validation, test, class_names); got {got}"
        )
    unknown = set(returned) - {*SPLIT_NAMES, "class_names"}
    if unknown:
        raise BuilderError(f"data builder {ref!r} returned unknown keys: {sorted(unknown)}")
    arrays = {
        name: _pair(ref, name, returned[name])
        for name in SPLIT_NAMES
        if returned.get(name) is not None
    }
    shapes = {name: x.shape[1:] for name, (x, _) in arrays.items()}
    if len(set(shapes.values())) > 1:
        raise BuilderError(f"data builder {ref!r}: the splits' inputs differ in shape: {shapes}")
    names = returned.get("class_names")
    labels = [y for _, y in arrays.values()]
    if _regression(labels[0]):  # float targets: no classes
        for name, (x, y) in arrays.items():
            if not np.issubdtype(y.dtype, np.floating) or not np.isfinite(y).all():
                where = f"data builder {ref!r}, split {name!r}"
                raise BuilderError(f"{where}: regression targets must be finite floats")
            arrays[name] = (x, y.astype(np.float32))
        return arrays, []
    width = labels[0].shape[1] if labels[0].ndim == 2 else None
    classes = width or int(max(int(y.max()) for y in labels)) + 1
    class_names = [str(n) for n in names] if names is not None else [str(i) for i in range(classes)]
    for name, (x, y) in arrays.items():
        _check_labels(ref, name, y, classes=len(class_names))
        arrays[name] = (x, y.astype(np.float32 if y.ndim == 2 else np.int64))
    return arrays, class_names


def _pair(ref: str, split: str, value: Any) -> tuple[Any, Any]:
    where = f"data builder {ref!r}, split {split!r}"
    if hasattr(value, "element_spec"):  # an unbatched tf.data.Dataset of (x, y)
        pairs = list(value.as_numpy_iterator())
        if pairs and not (isinstance(pairs[0], tuple) and len(pairs[0]) == 2):
            raise BuilderError(f"{where}: a tf.data.Dataset must yield (x, y) pairs")
        value = tuple(np.stack([p[i] for p in pairs]) for i in (0, 1)) if pairs else ((), ())
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise BuilderError(f"{where}: give a pair (x, y) of arrays or a tf.data.Dataset of them")
    try:
        x = np.asarray(value[0], dtype=np.float32)
        y = np.asarray(value[1])
    except (TypeError, ValueError) as exc:
        raise BuilderError(f"{where}: not numeric arrays ({str(exc)[:200]})") from None
    if len(x) == 0:
        raise BuilderError(f"{where} is empty")
    if x.ndim < 2 or len(x) != len(y):
        raise BuilderError(
            f"{where}: x has shape {x.shape} and y {y.shape}; they need one row per example"
        )
    return x, y


def _regression(y: Any) -> bool:
    """Float targets that are not one-hot rows: a regression."""
    if not np.issubdtype(y.dtype, np.floating):
        return False
    one_hot = y.ndim == 2 and np.isin(y, (0.0, 1.0)).all() and np.allclose(y.sum(axis=1), 1.0)
    return not one_hot


def _check_labels(ref: str, split: str, y: Any, *, classes: int) -> None:
    where = f"data builder {ref!r}, split {split!r}"
    if y.ndim == 2 and y.shape[1] == classes and np.allclose(y.sum(axis=1), 1.0):
        return  # one-hot rows
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise BuilderError(
            f"{where}: labels of shape {y.shape} and type {y.dtype}; give integer classes "
            f"or one-hot rows of {classes}"
        )
    if y.min() < 0 or y.max() >= classes:
        raise BuilderError(
            f"{where}: labels run from {y.min()} to {y.max()}, outside 0..{classes - 1} "
            f"for {classes} classes"
        )


def _version(ref: str, kwargs: dict[str, Any], arrays: dict[str, tuple[Any, Any]]) -> str:
    """The builder's code and arguments, and a sha256 of what it returned."""
    digest = hashlib.sha256(json.dumps([code_version(ref), kwargs], sort_keys=True).encode())
    for name in sorted(arrays):
        for array in arrays[name]:
            digest.update(f"{name}{array.shape}{array.dtype}".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()
