"""A user project's own code for bench/recipes.py: two data builders and a tabular model.

nighttune loads these as a user's builders (``code_path`` = this folder), and the
fixed recipes the bench compares against call the same functions, so both sides train
the same model on the same splits.

- `fashion_subset`: part of Debian's Fashion-MNIST files (`make bench` installs them),
  read with NumPy: ``train`` images from the official train split, the next
  ``validation`` as validation, the official 10,000 test images as test.
- `diamonds`: ggplot2's diamonds table (53,940 stones; plotnine, in the ``bench``
  extra, ships it as a CSV, read here without importing plotnine): the cut (5 grades)
  from carat, colour, clarity, depth, table, price and the three sizes; colour and
  clarity as their grade's rank. 60/20/20 split, seeded.
- `diamonds_mlp`: the user's tabular model: Normalization inside (raw features in),
  two hidden layers, Adam at 1e-3, sparse labels.
"""

from __future__ import annotations

import gzip
from importlib import metadata
from pathlib import Path

import keras
import numpy as np

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
]
CUTS = ["Fair", "Good", "Very Good", "Premium", "Ideal"]
COLOURS = ["J", "I", "H", "G", "F", "E", "D"]  # worst to best
CLARITIES = ["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"]
SPLITS = ("train", "validation", "test")


def _idx(name: str, offset: int) -> np.ndarray:
    with gzip.open(FASHION_MNIST / name) as file:
        return np.frombuffer(file.read(), dtype=np.uint8, offset=offset)


def fashion_subset(train: int = 20_000, validation: int = 5_000) -> dict:
    """Fashion-MNIST 28x28x1 in [0, 1], sparse labels: the first ``train`` images of the
    official train split, the next ``validation``, and the official test split."""
    images = _idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1)
    labels = _idx("train-labels-idx1-ubyte.gz", 8)
    test_images = _idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1)
    test_labels = _idx("t10k-labels-idx1-ubyte.gz", 8)
    cut = train + validation
    return {
        "train": (images[:train] / np.float32(255), labels[:train].astype("int64")),
        "validation": (images[train:cut] / np.float32(255), labels[train:cut].astype("int64")),
        "test": (test_images / np.float32(255), test_labels.astype("int64")),
        "class_names": FASHION_CLASSES,
    }


def _diamonds_table() -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    csv = metadata.distribution("plotnine").locate_file("plotnine/data/diamonds.csv")
    table = pd.read_csv(csv)
    table["color"] = table["color"].map(COLOURS.index)
    table["clarity"] = table["clarity"].map(CLARITIES.index)
    features = ["carat", "color", "clarity", "depth", "table", "price", "x", "y", "z"]
    x = table[features].to_numpy(dtype="float32")
    y = table["cut"].map(CUTS.index).to_numpy(dtype="int64")
    return x, y


def _split(n: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_held = n // 5
    return [order[2 * n_held :], order[n_held : 2 * n_held], order[:n_held]]


def diamonds(seed: int = 0) -> dict:
    """53,940 diamonds: 9 features, the cut as one of 5 grades; 60/20/20, seeded."""
    x, y = _diamonds_table()
    splits = zip(SPLITS, _split(len(x), seed), strict=True)
    out = {name: (x[rows], y[rows]) for name, rows in splits}
    return {**out, "class_names": CUTS}


def diamonds_mlp(input_shape, num_classes, *, width: int = 64, seed: int = 0):
    """Two hidden layers of ``width`` over the features normalized with the train
    split's statistics; Adam 1e-3."""
    x, _ = _diamonds_table()
    train = x[_split(len(x), seed)[0]]
    inputs = keras.Input(input_shape)
    normalize = keras.layers.Normalization(mean=train.mean(axis=0), variance=train.var(axis=0))
    hidden = normalize(inputs)
    hidden = keras.layers.Dense(width, activation="relu")(hidden)
    hidden = keras.layers.Dense(width, activation="relu")(hidden)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
