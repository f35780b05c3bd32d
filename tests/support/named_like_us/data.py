"""The user's `data` module (nighttune has `nighttune.tasks.data`)."""

import numpy as np

OWNER = "user"


def blobs(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 6)).astype("float32") + 3.0 * y[:, None]
    out = {"train": (x[: n // 2], y[: n // 2]), "class_names": ["low", "mid", "high"]}
    out["validation"] = (x[n // 2 : 3 * n // 4], y[n // 2 : 3 * n // 4])
    out["test"] = (x[3 * n // 4 :], y[3 * n // 4 :])
    return out
