"""The trials table as a terminal shows it: short headings, and no wider than the screen.

With every summary column the table of a digits run was 162 characters, and wrapped
into noise on an 80- or 120-column terminal. Here the headings are short, the winner
is a mark, and columns are left out, least needed first (`LEAVE_OUT_FIRST`), until
the table fits; the caller says which were left out (report.html has every one).
The grid's cell and its scores stay whatever the width.
"""

from __future__ import annotations

import pandas as pd

from nighttune.tasks.reporting.tables import P_COLUMN, ci_column

# Columns dropped, in this order, until the table fits; the rest always stay.
LEAVE_OUT_FIRST = (
    "reused",
    "best_epoch",
    "train_seconds",
    "test_loss",
    "val_loss",
    P_COLUMN,
    "CI",  # the monitored score's 95% interval (`ci_column`)
    "epochs_run",
    "lr",
)
SHORT = {
    "batch_size": "batch",
    "epochs_run": "epochs",
    "best_epoch": "best ep",
    "train_seconds": "train s",
    P_COLUMN: "p vs best",
    "winner": "winner",
}


def heading(column: str, monitor_ci: str) -> str:
    """``val_accuracy`` -> ``val acc``; the interval's column -> ``95% CI``."""
    if column == monitor_ci:
        return "95% CI"
    return SHORT.get(column, column.replace("accuracy", "acc").replace("_", " "))


def _cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Every value as the text the table shows: 4 significant digits, blanks for none,
    the winner as ``*``."""

    def text(value: object) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return ""
        if isinstance(value, bool):
            return "yes" if value else ""
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    cells = frame.apply(lambda column: column.map(text))
    if "winner" in frame:
        cells["winner"] = ["*" if won else "" for won in frame["winner"]]
    return cells


def fit_table(
    frame: pd.DataFrame, columns: list[str], *, monitor: str, width: int | None
) -> tuple[str, list[str]]:
    """``frame``'s ``columns`` as a table at most ``width`` characters wide (when the
    columns that always stay allow it; None: every column); and the columns left out."""
    monitor_ci = ci_column(monitor)
    order = [monitor_ci if c == "CI" else c for c in LEAVE_OUT_FIRST]
    kept = list(columns)
    left_out: list[str] = []
    shown = _cells(frame[kept])
    while True:
        table = shown[kept].rename(columns=lambda c: heading(c, monitor_ci))
        text = "\n".join(line.rstrip() for line in table.to_string(index=False).splitlines())
        widest = max(len(line) for line in text.splitlines())
        droppable = [c for c in order if c in kept]
        if width is None or widest <= width or not droppable:
            return text, left_out
        kept.remove(droppable[0])
        left_out.append(droppable[0])
