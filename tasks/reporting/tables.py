"""Run reports from trial rows: a pandas table as CSV and Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from nighttune.tasks.core.objective import selection_column
from nighttune.tasks.core.records import LRSweep, Selection, TrialResult
from nighttune.tasks.storage.files import write_text_atomic

COLUMNS = [
    "batch_size",
    "patience",
    "lr",
    "lr_method",
    "lr_factor",
    "lr_schedule",
    "status",
    "epochs_run",
    "planned_epochs",
    "stop_epoch",
    "best_epoch",
    "stopped_early",
    "val_loss",
    "val_accuracy",
    "test_loss",
    "test_accuracy",
    "train_seconds",
    "examples_per_s",
    "training_loop",
    "reused",
    "error",
]
P_COLUMN = "p_vs_best"  # the paired test of each cell against the best (`with_noise`)
# The short table: the terminal's after `tune`, the run page's (which adds errors).
SUMMARY = [
    "batch_size",
    "patience",
    "lr",
    "status",
    "epochs_run",
    "planned_epochs",
    "best_epoch",
    "val_loss",
    "val_accuracy",
    "test_loss",
    "test_accuracy",
    "train_seconds",
    "reused",
]


def ci_column(monitor: str) -> str:
    """``val_accuracy_95ci``: the column of the monitored score's 95% interval."""
    return selection_column(monitor) + "_95ci"


def summary_columns(frame: pd.DataFrame, monitor: str) -> list[str]:
    """`SUMMARY`, with the monitored metric on validation and test after the epochs
    where it is not there already, its interval and p-value against the best after its
    validation form, less the columns no row has a value in."""
    extra = [monitor, "test_" + monitor.removeprefix("val_")] if monitor not in SUMMARY else []
    at = SUMMARY.index("best_epoch") + 1
    wanted = [*SUMMARY[:at], *extra, *SUMMARY[at:]]
    column = selection_column(monitor)
    if column in wanted:
        at = wanted.index(column) + 1
        wanted[at:at] = [ci_column(monitor), P_COLUMN]
    shown = [c for c in dict.fromkeys(wanted) if c in frame and frame[c].notna().any()]
    return [c for c in shown if c != "reused" or frame[c].astype(bool).any()]


def trials_frame(rows: Sequence[TrialResult], winner: TrialResult | None = None) -> pd.DataFrame:
    """One row per (batch size, patience), sorted, with a ``winner`` flag column; every
    metric a model logs (``val_auc``, ``test_mae``) has its own column after `COLUMNS`."""
    logged = sorted({name for r in rows for name in r.metrics} - set(COLUMNS))
    frame = pd.DataFrame(
        [r.model_dump() | {name: r.metrics.get(name) for name in logged} for r in rows],
        columns=[*COLUMNS, *logged, "val_95ci", "model_path"],
    )
    frame["winner"] = [
        winner is not None and (r.batch_size, r.patience) == (winner.batch_size, winner.patience)
        for r in rows
    ]
    return (
        frame.drop(columns="model_path")
        .sort_values(["batch_size", "patience"])
        .reset_index(drop=True)
    )


def rungs_frame(sweeps: Sequence[LRSweep], monitor: str) -> pd.DataFrame:
    """One row per candidate per rung of every batch size's bracket, in the order they
    ran: its LR, the best ``monitor`` it reached in the rung, and whether it went on (and
    why). Empty (no rows) when no bracket ran rungs."""
    rows = [
        {
            "batch_size": r.batch_size,
            "rung": r.rung + 1,
            "epochs": r.epochs,
            "candidate": r.label,
            "lr": r.lr,
            monitor: r.value,
            "seconds": r.seconds,
            "went_on": r.promoted,
            "why": r.why,
        }
        for sweep in sorted(sweeps, key=lambda s: s.batch_size)
        for r in sweep.rungs
    ]
    columns = ["batch_size", "rung", "epochs", "candidate", "lr", monitor, "seconds", "went_on"]
    return pd.DataFrame(rows, columns=[*columns, "why"])


def with_noise(frame: pd.DataFrame, monitor: str, selection: Selection | None) -> pd.DataFrame:
    """``frame`` with the noise of the monitored score after its validation column:
    each cell's 95% interval (`ci_column`, ``0.951-0.975``) and, given the
    ``selection``, the p-value of its paired test against the best (`P_COLUMN`)."""
    column = selection_column(monitor)
    if column not in frame or "val_95ci" not in frame:
        return frame.drop(columns="val_95ci", errors="ignore")
    pairs = [p for p in frame["val_95ci"] if isinstance(p, tuple | list)]
    digits = 3 if all(abs(v) <= 1 for p in pairs for v in p) else 4
    shown = [
        f"{p[0]:.{digits}f}-{p[1]:.{digits}f}" if isinstance(p, tuple | list) else None
        for p in frame["val_95ci"]
    ]
    frame = frame.drop(columns="val_95ci")
    at = list(frame.columns).index(column) + 1
    frame.insert(at, ci_column(monitor), shown)
    if selection is not None:
        cells = [f"b{b} p{p}" for b, p in zip(frame["batch_size"], frame["patience"], strict=True)]
        frame.insert(at + 1, P_COLUMN, [selection.p_vs_best.get(cell) for cell in cells])
    return frame


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no `tabulate` needed)."""

    def cell(value: object) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return ""
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value).replace("|", "\\|")

    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def write_reports(
    rows: Sequence[TrialResult],
    winner: TrialResult,
    out_dir: Path,
    *,
    title: str,
    summary: str,
    monitor: str = "val_accuracy",
    selection: Selection | None = None,
    rungs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Write ``report.csv`` and ``report.md`` into out_dir (and ``rungs.csv``, given the
    brackets' `rungs_frame` with rows); return the trials table (with the monitored
    score's intervals and, given the ``selection``, p-values)."""
    frame = with_noise(trials_frame(rows, winner), monitor, selection)
    write_text_atomic(out_dir / "report.csv", frame.to_csv(index=False))
    page = f"# {title}\n\n{summary}\n\n## Trials\n\n{markdown_table(frame)}\n"
    if rungs is not None and len(rungs):
        write_text_atomic(out_dir / "rungs.csv", rungs.to_csv(index=False))
        page += f"\n## Bracket rungs\n\n{markdown_table(rungs)}\n"
    write_text_atomic(out_dir / "report.md", page)
    return frame
