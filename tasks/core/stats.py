"""Statistics of a validation score: how much of a difference between cells is noise."""

from __future__ import annotations

import math


def wilson_interval(accuracy: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% for ``z`` 1.96) of an accuracy measured on ``n``
    examples: where the true accuracy of that cell plausibly lies. Unlike the normal
    approximation it stays inside [0, 1] and is not empty at 0 or 1."""
    if n <= 0:
        raise ValueError("an interval needs at least one example")
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
