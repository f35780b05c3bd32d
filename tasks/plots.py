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
    from tasks.lr_range import LRSweep

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
        low, start = float(finite.min()), float(finite[0])
        # Keep the interesting part: the divergence tail would squash the descent.
        ax.set_ylim(low - 0.05 * abs(low), max(start * 1.25, low * 1.1 + 1e-9))
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
