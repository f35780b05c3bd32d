"""Learning-rate suggestions from a range test's curve: pure functions of (lrs, losses).

No TensorFlow here, only NumPy, so every rule is tested on made-up curves. Each rule
smooths the raw batch losses with a bias-corrected exponential moving average, cuts
the curve at its first non-finite loss, and returns a `Suggestion`: an LR, or None
with a note saying why there is none (too short, flat, never falls). None of them
raise on short, flat or NaN curves.

A curve whose smoothed loss never falls ``MIN_FALL`` below where it started is flat:
no rule reads an LR off it. Before, the lowest point of such a curve was taken at face
value: 178 rows of a wine table (smoothed loss 2.356 → 2.31 over the whole ramp, a fall
of 2%) gave ``minimum`` an LR of 0.1, and the trial ended at 0.63 validation accuracy
against 0.88 for the next batch size. The caller then uses its fallback LR, and says so
(`tasks.tuning.lr_range`).

- ``steepest``: the LR where the smoothed loss falls fastest against log LR, over a
  window of batches, with the noisy first and last batches skipped (the seed's
  lrfinder rule, done on smoothed losses and without its empty-slice crash).
- ``valley``: the middle of the longest descending run of the smoothed loss (fastai's
  rule): robust to a noisy steepest point.
- ``minimum``: a tenth of the LR at the smoothed loss's minimum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# In order of measured quality (bench/schedules.py, as one_cycle peaks): the fallback
# order of `choose`.
METHODS = ("steepest", "minimum", "valley")
# A curve must fall this share below its start (the mean of its first tenth of raw
# losses) to say anything: a fresh model's loss falls by half or more on every real
# dataset measured (digits, Fashion-MNIST, the user models of bench/user_model.py).
MIN_FALL = 0.05
MIN_POINTS = 5  # fewer finite points than this say nothing about a curve


@dataclass(frozen=True)
class Suggestion:
    """An LR (or None) and a note: how it was found, or why there is none."""

    lr: float | None
    note: str


def smooth(losses: Sequence[float] | np.ndarray, beta: float = 0.98) -> np.ndarray:
    """Bias-corrected exponential moving average (NaN once a loss is NaN)."""
    values = np.asarray(losses, dtype=np.float64)
    out = np.empty_like(values)
    avg = 0.0
    for i, loss in enumerate(values):
        avg = beta * avg + (1.0 - beta) * loss
        out[i] = avg / (1.0 - beta ** (i + 1))
    return out


def _curve(
    lrs: Sequence[float], losses: Sequence[float], *, beta: float, min_points: int
) -> tuple[np.ndarray, np.ndarray] | Suggestion:
    """The finite prefix of the curve, smoothed; or a no-suggestion saying why not."""
    lr = np.asarray(lrs, dtype=np.float64)
    raw = np.asarray(losses, dtype=np.float64)
    if lr.shape != raw.shape or lr.ndim != 1:
        raise ValueError(f"lrs and losses differ in shape: {lr.shape} vs {raw.shape}")
    bad = ~np.isfinite(raw) | ~np.isfinite(lr) | (lr <= 0)
    end = int(np.argmax(bad)) if bad.any() else len(raw)
    if end < min_points:
        return Suggestion(None, f"curve too short: {end} finite points, need {min_points}")
    smoothed = smooth(raw[:end], beta)
    start = float(np.mean(raw[: max(end // 10, 1)]))
    lowest = float(smoothed.min())
    fall = (start - lowest) / max(abs(start), 1e-12)
    if fall < MIN_FALL:
        return Suggestion(
            None,
            f"no descent found: the loss is flat across the sweep (smoothed, it falls "
            f"{max(fall, 0.0):.1%} below its start, {start:.4g} to {lowest:.4g}; a descent "
            f"falls at least {MIN_FALL:.0%})",
        )
    return lr[:end], smoothed


def steepest(
    lrs: Sequence[float],
    losses: Sequence[float],
    beta: float = 0.98,
    *,
    window: int = 5,
    skip_begin: int = 10,
    skip_end: int = 5,
) -> Suggestion:
    """LR of the steepest fall of the smoothed loss per unit log LR, over ``window`` batches."""
    curve = _curve(lrs, losses, beta=beta, min_points=skip_begin + skip_end + window + 1)
    if isinstance(curve, Suggestion):
        return curve
    lr, smoothed = curve
    log_lr = np.log(lr)
    lo, hi = skip_begin, len(smoothed) - skip_end
    rise = smoothed[lo + window : hi] - smoothed[lo : hi - window]
    run = log_lr[lo + window : hi] - log_lr[lo : hi - window]
    slopes = rise / run
    i = int(np.argmin(slopes))
    if slopes[i] >= 0:
        return Suggestion(None, "no descent found: the smoothed loss never falls")
    best = math.exp((log_lr[lo + i] + log_lr[lo + i + window]) / 2)
    return Suggestion(best, f"slope {slopes[i]:.3g} per log-LR over {window} batches")


def valley(lrs: Sequence[float], losses: Sequence[float], beta: float = 0.98) -> Suggestion:
    """LR in the middle of the longest descending run of the smoothed loss."""
    curve = _curve(lrs, losses, beta=beta, min_points=MIN_POINTS)
    if isinstance(curve, Suggestion):
        return curve
    lr, smoothed = curve
    n = len(smoothed)
    # Longest strictly decreasing subsequence, with back-pointers to recover its start.
    # Among equally long predecessors take the latest, so a plateau before the descent
    # contributes only its last point and the run starts where the fall starts.
    length = np.ones(n, dtype=np.int64)
    previous = np.full(n, -1, dtype=np.int64)
    for i in range(1, n):
        higher = np.flatnonzero(smoothed[:i] > smoothed[i])
        if higher.size:
            lengths = length[higher]
            j = higher[len(higher) - 1 - int(np.argmax(lengths[::-1]))]
            length[i], previous[i] = length[j] + 1, j
    end = int(np.argmax(length))
    start = end
    while previous[start] >= 0:
        start = int(previous[start])
    if length[end] < 3:
        return Suggestion(None, "no descent found: no run of 3 falling points")
    middle = (start + end) // 2
    return Suggestion(
        float(lr[middle]), f"middle of a {int(length[end])}-point descent from batch {start}"
    )


def minimum(lrs: Sequence[float], losses: Sequence[float], beta: float = 0.98) -> Suggestion:
    """A tenth of the LR where the smoothed loss is lowest."""
    curve = _curve(lrs, losses, beta=beta, min_points=MIN_POINTS)
    if isinstance(curve, Suggestion):
        return curve
    lr, smoothed = curve
    i = int(np.argmin(smoothed))
    if i == 0:
        return Suggestion(None, "no descent found: the loss is lowest at the first LR")
    return Suggestion(float(lr[i]) / 10.0, f"minimum at {lr[i]:.3g}, divided by 10")


def suggest_all(
    lrs: Sequence[float], losses: Sequence[float], beta: float = 0.98
) -> dict[str, Suggestion]:
    """Every method's suggestion, keyed by method name."""
    rules = {"minimum": minimum, "steepest": steepest, "valley": valley}
    return {name: rules[name](lrs, losses, beta) for name in METHODS}


def choose(suggestions: dict[str, Suggestion], method: str) -> tuple[float, str] | None:
    """The configured method's LR, else the first other method with one, else None."""
    for name in (method, *(m for m in METHODS if m != method)):
        found = suggestions.get(name)
        if found is not None and found.lr is not None:
            return found.lr, name
    return None
