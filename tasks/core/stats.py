"""Statistics of a validation score: how much of a difference between cells is noise.

Pure functions over per-example values (1/0 for "this example was classified right",
or each example's loss): where a cell's score plausibly lies (`interval`), and whether
two cells scored on the same examples differ by more than chance (`paired_p`). Cells of
one grid are scored on the same validation examples, so the paired test is the right
one: it looks only at the examples where the two disagree, and detects differences
far smaller than the overlap of two separate intervals would.
"""

from __future__ import annotations

import math

import numpy as np

# Resamples of a bootstrap. At 2,000 the ends of a 95% interval move between seeds by
# 1-2% of its width (sd over 20 seeds, exponential losses, 270 and 6,000 examples).
RESAMPLES = 2000


def wilson_interval(accuracy: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% for ``z`` 1.96) of an accuracy measured on ``n``
    examples: where the true accuracy of that cell plausibly lies. Unlike the normal
    approximation it stays inside [0, 1] and is not empty at 0 or 1."""
    if n <= 0:
        raise ValueError("an interval needs at least one example")
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def is_binary(values: np.ndarray) -> bool:
    """Whether every value is 0 or 1 (right/wrong per example: an accuracy)."""
    return bool(np.isin(values, (0.0, 1.0)).all())


def _resampled_means(values: np.ndarray, seed: int) -> np.ndarray:
    """`RESAMPLES` means of ``values`` resampled with replacement (seeded: the same
    report twice gives the same interval)."""
    rng = np.random.default_rng(seed)
    n = len(values)
    means = np.empty(RESAMPLES)
    for start in range(0, RESAMPLES, 250):  # 250 x n indices at a time: bounded memory
        picks = rng.integers(0, n, size=(min(250, RESAMPLES - start), n))
        means[start : start + len(picks)] = values[picks].mean(axis=1)
    return means


def interval(values: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% interval of the mean of per-example ``values``: Wilson's for right/wrong
    values (an accuracy), else the percentile bootstrap (a loss, any mean metric)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        raise ValueError("an interval needs at least one example")
    if is_binary(values):
        return wilson_interval(float(values.mean()), len(values))
    low, high = np.percentile(_resampled_means(values, seed), [2.5, 97.5])
    return float(low), float(high)


def mcnemar_p(a: np.ndarray, b: np.ndarray) -> float:
    """Exact two-sided McNemar p-value of two classifiers' right/wrong values on the
    same examples: how likely a split of the examples where exactly one of them was
    right at least this uneven is, if both are equally good."""
    a_only = int(np.sum((a == 1) & (b == 0)))
    b_only = int(np.sum((a == 0) & (b == 1)))
    n = a_only + b_only
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(a_only, b_only) + 1))
    return min(1.0, 2 * tail / 2**n)  # exact integers: no underflow for large n


def paired_bootstrap_p(a: np.ndarray, b: np.ndarray, seed: int = 0) -> float:
    """Two-sided bootstrap p-value of the mean of ``a - b`` (the same examples): twice
    the share of resampled mean differences on the far side of zero."""
    diffs = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if not diffs.any():
        return 1.0
    means = _resampled_means(diffs, seed)
    below, above = float(np.mean(means <= 0)), float(np.mean(means >= 0))
    return min(1.0, 2 * min(below, above))


def paired_p(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[float, str]:
    """``(p, test)``: McNemar's exact test for right/wrong values, else the paired
    bootstrap. A small p: the two cells really differ on these examples."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"paired values must be of the same examples: {a.shape} vs {b.shape}")
    if is_binary(a) and is_binary(b):
        return mcnemar_p(a, b), "McNemar"
    return paired_bootstrap_p(a, b, seed), "paired bootstrap"
