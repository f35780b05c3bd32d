"""Matplotlib figures, drawn off-screen (Agg) and written atomically as PNG."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

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
        ax.axvline(
            lr, color=color, linestyle=style, linewidth=1.5, label=f"{method}: {lr:.2e}{chosen}"
        )
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


def plot_learning_curves(
    history: list[dict[str, float]],
    stops: dict[int, int | None],
    *,
    batch_size: int,
    monitor: str,
    path: Path,
) -> None:
    """Loss and accuracy per epoch (train and validation), each patience's stop marked."""
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
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"Learning curves, batch size {batch_size} (early stopping on {monitor})", fontsize=11
    )
    save_figure(fig, path)


def plot_heatmap(
    values: np.ndarray, batch_sizes: list[int], patiences: list[int], *, metric: str, path: Path
) -> None:
    """``metric`` over batch size (rows) x patience (columns); cells without a result
    (failed, or not run within the time budget) left blank."""
    fig = Figure(figsize=(1.6 + 1.3 * len(patiences), 1.4 + 0.7 * len(batch_sizes)))
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(patiences)), [str(p) for p in patiences])
    ax.set_yticks(range(len(batch_sizes)), [str(b) for b in batch_sizes])
    ax.set_xlabel("early-stopping patience")
    ax.set_ylabel("batch size")
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for r in range(values.shape[0]):
        for c in range(values.shape[1]):
            text = "no result" if not np.isfinite(values[r, c]) else f"{values[r, c]:.4f}"
            color = "white" if np.isfinite(values[r, c]) and values[r, c] < middle else "black"
            ax.text(c, r, text, ha="center", va="center", color=color, fontsize=9)
    fig.colorbar(image, ax=ax, label=metric)
    ax.set_title(f"{metric} by batch size and patience", fontsize=10)
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
