"""Matplotlib figures, drawn off-screen (Agg) and written atomically as PNG."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from nighttune.tasks.core.records import LRSweep

METHOD_STYLE = {
    "valley": ("tab:green", "--"),
    "steepest": ("tab:red", "-."),
    "minimum": ("tab:purple", ":"),
}
# Where on the curve each rule reads its LR, as a multiple of the LR it suggests: the
# `minimum` rule suggests a tenth of the LR at the smoothed loss's minimum
# (`tasks.tuning.lr_suggest.minimum`), a decade left of the point it read.
READ_AT = {"minimum": 10.0}
RULE_WORDS = {"minimum": "minimum ÷ 10", "steepest": "steepest descent", "valley": "valley"}


def save_figure(fig: Figure, path: Path) -> None:
    """Render ``fig`` to ``path`` via a temporary file, so no half-written PNG is seen."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}{path.suffix}")
    FigureCanvasAgg(fig)
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)


def plot_lr_sweep(sweep: LRSweep, path: Path) -> None:
    """Loss against LR on a log axis, raw and smoothed, every suggestion marked."""
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.add_subplot()
    lrs = np.asarray(sweep.lrs)
    raw = np.array([np.nan if v is None else v for v in sweep.losses])
    smoothed = np.array([np.nan if v is None else v for v in sweep.smoothed])
    ax.plot(lrs, raw, color="tab:blue", alpha=0.3, linewidth=1, label="batch loss")
    ax.plot(lrs, smoothed, color="tab:blue", linewidth=2, label="smoothed loss")
    for method, lr in sweep.suggestions.items():
        if lr is None:
            continue
        color, style = METHOD_STYLE.get(method, ("gray", "--"))
        chosen = " (chosen)" if method == sweep.method else ""
        words = RULE_WORDS.get(method, method)
        ax.axvline(
            lr, color=color, linestyle=style, linewidth=1.5, label=f"{words}: {lr:.2e}{chosen}"
        )
        _mark_reading(ax, lrs, smoothed, method=method, at=lr * READ_AT.get(method, 1.0))
    finite = smoothed[np.isfinite(smoothed)]
    if finite.size:
        # Keep the descent in view (raw batch losses included) but not the divergence
        # tail, which would squash everything else.
        best = int(np.nanargmin(smoothed))
        low = float(
            np.nanmin(np.concatenate([finite, raw[: best + 1][np.isfinite(raw[: best + 1])]]))
        )
        start = float(finite[0])
        high = max(start * 1.25, low + 1e-9)
        ax.set_ylim(low - 0.05 * (high - low), high)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.set_title(
        f"LR range test, batch size {sweep.batch_size}: {sweep.steps} steps, {sweep.stop_reason}",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=9)
    save_figure(fig, path)


def _mark_reading(
    ax: Any, lrs: np.ndarray, smoothed: np.ndarray, *, method: str, at: float
) -> None:
    """The point of the smoothed curve a rule read (``at``), marked in its colour; for a
    rule that suggests another LR than the one it read, an arrow says so."""
    finite = np.isfinite(smoothed)
    if not finite.any():
        return
    y = float(np.interp(np.log(at), np.log(lrs[finite]), smoothed[finite]))
    color, _ = METHOD_STYLE.get(method, ("gray", "--"))
    ax.plot([at], [y], marker="o", markersize=7, color=color, zorder=5)
    if method in READ_AT:
        ax.annotate(
            "",
            xy=(at / READ_AT[method], y),
            xytext=(at, y),
            arrowprops={"arrowstyle": "->", "color": color},
        )
        ax.annotate(
            f"{method} {at:.2e} ÷ {READ_AT[method]:g}",
            xy=(at, y),
            xytext=(-4, -12),
            textcoords="offset points",
            color=color,
            fontsize=8,
            ha="right",
            va="top",
        )


def plot_learning_curves(
    history: list[dict[str, float]],
    stops: dict[int, int | None],
    *,
    batch_size: int,
    monitor: str,
    path: Path,
    cut: str | None = None,
) -> None:
    """Loss and accuracy per epoch (train and validation), each patience's stop marked,
    and where the fit was stopped before a patience did (``cut``: why)."""
    fig = Figure(figsize=(10, 3.8))
    epochs = np.arange(1, len(history) + 1)
    for i, metric in enumerate(("loss", "accuracy")):
        ax = fig.add_subplot(1, 2, i + 1)
        for prefix, style in (("", "-"), ("val_", "--")):
            values = [h.get(prefix + metric, np.nan) for h in history]
            label = ("validation " if prefix else "train ") + metric
            ax.plot(epochs, values, style, marker="o", markersize=3, label=label)
        for j, (patience, stop) in enumerate(sorted(stops.items())):
            if stop is not None:
                ax.axvline(
                    stop,
                    color=f"C{j + 2}",
                    linestyle=":",
                    linewidth=1.2,
                    label=f"patience {patience} stops (epoch {stop})",
                )
        if cut is not None:
            ax.axvline(len(history), color="C3", linestyle="--", linewidth=1.2, label=cut)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"Learning curves, batch size {batch_size} (early stopping on {monitor})", fontsize=11
    )
    save_figure(fig, path)


def colour_range(values: np.ndarray, noise: float | None) -> tuple[float, float]:
    """The heatmap's colour limits: the values' range, widened about its middle to at
    least ``noise`` (see `plot_heatmap`)."""
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if noise and high - low < noise:
        middle = (low + high) / 2
        low, high = middle - noise / 2, middle + noise / 2
    return low, high


def plot_heatmap(
    values: np.ndarray,
    batch_sizes: list[int],
    patiences: list[int],
    *,
    metric: str,
    path: Path,
    noise: float | None = None,
) -> None:
    """``metric`` over batch size (rows) x patience (columns); cells without a result
    (failed, or not run within the time budget) left blank. ``noise``: the width of a
    typical cell's 95% interval; the colour scale spans at least that, so that cells
    within the noise of each other look alike (on digits' 270 validation examples one
    example is 0.004, and a scale fitted to 0.963-0.974 painted it purple against
    yellow)."""
    fig = Figure(figsize=(1.6 + 1.3 * len(patiences), 1.6 + 0.7 * len(batch_sizes)))
    ax = fig.add_subplot()
    low, high = colour_range(values, noise)
    image = ax.imshow(
        np.ma.masked_invalid(values), cmap="viridis", aspect="auto", vmin=low, vmax=high
    )
    ax.set_xticks(range(len(patiences)), [str(p) for p in patiences])
    ax.set_yticks(range(len(batch_sizes)), [str(b) for b in batch_sizes])
    ax.set_xlabel("early-stopping patience")
    ax.set_ylabel("batch size")
    middle = (low + high) / 2
    for r in range(values.shape[0]):
        for c in range(values.shape[1]):
            text = "no result" if not np.isfinite(values[r, c]) else f"{values[r, c]:.4f}"
            color = "white" if np.isfinite(values[r, c]) and values[r, c] < middle else "black"
            ax.text(c, r, text, ha="center", va="center", color=color, fontsize=9)
    fig.colorbar(image, ax=ax, label=metric)
    title = f"{metric} by batch size and patience"
    if noise:
        title += (
            f"\ncolour scale at least the 95% interval wide ({noise:.3f}): alike = within noise"
        )
    ax.set_title(title, fontsize=9)
    save_figure(fig, path)


def plot_confusion(matrix: np.ndarray, class_names: list[str], *, title: str, path: Path) -> None:
    """Counts of true (rows) vs predicted (columns) classes."""
    n = len(class_names)
    size = min(3 + 0.45 * n, 12)
    fig = Figure(figsize=(size + 1, size))
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(
        range(n), class_names, rotation=45 if n > 10 else 0, ha="right" if n > 10 else "center"
    )
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if n <= 20:
        threshold = matrix.max() / 2 if matrix.size else 0
        for r in range(n):
            for c in range(n):
                ax.text(
                    c,
                    r,
                    str(int(matrix[r, c])),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if matrix[r, c] > threshold else "black",
                )
    fig.colorbar(image, ax=ax, label="test examples")
    ax.set_title(title, fontsize=10)
    save_figure(fig, path)


# The history plot's y-axis spans at least this much accuracy, so that the noise of a
# small test split (1.5 points on digits is four examples) does not look like a fall.
MIN_HISTORY_SPAN = 0.05


def plot_history(
    dates: list[str], accuracies: list[float], *, labels: list[str], setups: list[str], path: Path
) -> None:
    """Test accuracy of the winner, run after run: one line per setup (dataset, model,
    grid), since only runs of one setup are comparable."""
    fig = Figure(figsize=(8, 3.8))
    ax = fig.add_subplot()
    x = np.arange(len(dates))
    values = np.asarray(accuracies, dtype=float)
    for setup in dict.fromkeys(setups):
        mine = [i for i, s in enumerate(setups) if s == setup]
        ax.plot(x[mine], values[mine], marker="o", label=setup)
    shown = zip(x, accuracies, labels, strict=True) if len(dates) <= 12 else []  # legible
    for xi, accuracy, label in shown:
        ax.annotate(
            f"{label}\n{accuracy:.4f}" if np.isfinite(accuracy) else label,
            (xi, accuracy if np.isfinite(accuracy) else 0.0),
            textcoords="offset points",
            xytext=(0, 7),
            ha="center",
            fontsize=7,
        )
    finite = values[np.isfinite(values)]
    if finite.size:
        middle = (finite.max() + finite.min()) / 2
        half = max(finite.max() - finite.min(), MIN_HISTORY_SPAN) / 2 * 1.3  # room for labels
        ax.set_ylim(max(middle - half, 0.0), min(middle + half, 1.0) + 0.01)
    ax.set_xticks(x, dates, rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("run (UTC)")
    ax.set_ylabel("winner's test accuracy")
    ax.set_title("Night over night", fontsize=10)
    ax.grid(True, alpha=0.3)
    if len(set(setups)) > 1:
        ax.legend(fontsize=7, title="dataset model grid", title_fontsize=7)
    save_figure(fig, path)
