"""Data builders of a small user project: scikit-learn's bundled tables (offline).

`load(**kwargs)` returns ``{"train": (x, y), "validation": ..., "test": ...,
"class_names": [...]}``; nighttune caches what it returns, keyed by a hash of it.
"""

import numpy as np


def _tables(name):
    from sklearn import datasets

    if name == "breast_cancer":
        table = datasets.load_breast_cancer()
        return table.data, table.target, list(table.target_names)
    if name == "diabetes":
        table = datasets.load_diabetes()
        return table.data, table.target, []
    raise ValueError(f"no table {name!r}: breast_cancer or diabetes")


def _split(n, seed, val_fraction, test_fraction):
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_val = round(n * test_fraction), round(n * val_fraction)
    return order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]


def feature_stats(name, seed=0, val_fraction=0.2, test_fraction=0.2):
    """Mean and variance of the train split's features: the model's Normalization layer
    is built with them, so the exported model takes raw features."""
    x, _, _ = _tables(name)
    train, _, _ = _split(len(x), seed, val_fraction, test_fraction)
    return x[train].mean(axis=0), x[train].var(axis=0)


def breast_cancer(seed=0, val_fraction=0.2, test_fraction=0.2):
    """569 tumours, 30 features, malignant or benign; labels one-hot (for AUC)."""
    x, y, names = _tables("breast_cancer")
    one_hot = np.eye(len(names), dtype="float32")[y]
    splits = _split(len(x), seed, val_fraction, test_fraction)
    out = {s: (x[i].astype("float32"), one_hot[i]) for s, i in zip(SPLITS, splits)}
    return {**out, "class_names": names}


def diabetes(seed=0, val_fraction=0.2, test_fraction=0.2):
    """442 patients, 10 features, disease progression a year later (a regression)."""
    x, y, _ = _tables("diabetes")
    splits = _split(len(x), seed, val_fraction, test_fraction)
    return {s: (x[i].astype("float32"), y[i].astype("float32")) for s, i in zip(SPLITS, splits)}


SPLITS = ("train", "validation", "test")
