"""Carving the splits a source lacks (validation, test) out of train, seeded."""

from __future__ import annotations

from typing import Any


def carve_codes(n: int, *, val_fraction: float, test_fraction: float, seed: int) -> Any:
    """Seeded assignment of ``n`` examples: 0 train, 1 validation, 2 test.

    A fraction of 0 carves nothing for that split.
    """
    import numpy as np

    codes = np.zeros(n, dtype=np.int32)
    order = np.random.default_rng(seed).permutation(n)
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    codes[order[:n_val]] = 1
    codes[order[n_val : n_val + n_test]] = 2
    return codes
