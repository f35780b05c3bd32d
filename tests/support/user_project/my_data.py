"""A user's data builders: arrays and tf.data, images and feature vectors."""

import numpy as np


def blobs(n=300, features=6, seed=0, one_hot=False, with_test=True):
    """Three separable classes of feature vectors (not images)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, features)).astype("float32") + 3.0 * y[:, None]
    labels = np.eye(3, dtype="float32")[y] if one_hot else y
    out = {"train": (x[: n // 2], labels[: n // 2]), "class_names": ["low", "mid", "high"]}
    out["validation"] = (x[n // 2 : 3 * n // 4], labels[n // 2 : 3 * n // 4])
    if with_test:
        out["test"] = (x[3 * n // 4 :], labels[3 * n // 4 :])
    return out


def as_dataset(n=200):
    import tensorflow as tf

    data = blobs(n)
    return {"train": tf.data.Dataset.from_tensor_slices(data["train"])}


def no_train():
    return {"validation": (np.zeros((4, 2)), np.zeros(4, "int64"))}


def mismatched():
    return {"train": (np.zeros((10, 2)), np.zeros(9, "int64"))}


def empty_split():
    empty = (np.zeros((0, 2)), np.zeros(0, "int64"))
    return {"train": (np.zeros((10, 2)), np.zeros(10, "int64")), "test": empty}


def labels_out_of_range():
    return {"train": (np.zeros((10, 2)), np.arange(10)), "class_names": ["a", "b"]}


def linear(n=400, features=5, seed=0):
    """A regression: float targets, a linear function of the features plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = (x @ np.linspace(-1.0, 1.0, features) + 0.1 * rng.normal(size=n)).astype("float32")
    return {"train": (x, y)}


def unreadable(path="wine.csv"):
    """A builder whose own code fails, as a user's does on a file it cannot read."""
    raise ValueError(f"cannot read {path}: no column 'quality'")
