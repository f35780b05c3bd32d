"""Run reports from trial rows: a pandas table as CSV and Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from tasks.core.records import TrialResult
from tasks.core.stats import wilson_interval
from tasks.storage.files import write_text_atomic

COLUMNS = [
    "batch_size",
    "patience",
    "lr",
    "lr_method",
    "status",
    "epochs_run",
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
CI_COLUMN = "val_accuracy_95ci"  # the Wilson interval of val_accuracy (`with_uncertainty`)
# The short table: the terminal's after `tune`, the run page's (which adds errors).
SUMMARY = [
    "batch_size",
    "patience",
    "lr",
    "status",
    "epochs_run",
    "best_epoch",
    "val_loss",
    "val_accuracy",
    CI_COLUMN,
    "test_loss",
    "test_accuracy",
    "train_seconds",
    "reused",
]


def summary_columns(frame: pd.DataFrame, monitor: str) -> list[str]:
    """`SUMMARY`, with the monitored metric on validation and test after the epochs
    where it is not there already, less the columns no row has a value in."""
    extra = [monitor, "test_" + monitor.removeprefix("val_")] if monitor not in SUMMARY else []
    at = SUMMARY.index("best_epoch") + 1
    wanted = [*SUMMARY[:at], *extra, *SUMMARY[at:]]
    shown = [c for c in dict.fromkeys(wanted) if c in frame and frame[c].notna().any()]
    return [c for c in shown if c != "reused" or frame[c].astype(bool).any()]


def trials_frame(rows: Sequence[TrialResult], winner: TrialResult | None = None) -> pd.DataFrame:
    """One row per (batch size, patience), sorted, with a ``winner`` flag column; every
    metric a model logs (``val_auc``, ``test_mae``) has its own column after `COLUMNS`."""
    logged = sorted({name for r in rows for name in r.metrics} - set(COLUMNS))
    frame = pd.DataFrame(
        [r.model_dump() | {name: r.metrics.get(name) for name in logged} for r in rows],
        columns=[*COLUMNS, *logged, "model_path"],
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


def with_uncertainty(frame: pd.DataFrame, n_val: int | None) -> pd.DataFrame:
    """``frame`` with `CI_COLUMN`: each row's validation accuracy as its 95% Wilson
    interval over the ``n_val`` validation examples (``0.951-0.975``)."""
    if not n_val or "val_accuracy" not in frame or frame["val_accuracy"].isna().all():
        return frame
    shown: list[str | None] = []
    for value in frame["val_accuracy"]:
        if pd.isna(value):
            shown.append(None)
            continue
        low, high = wilson_interval(float(value), n_val)
        shown.append(f"{low:.3f}-{high:.3f}")
    at = list(frame.columns).index("val_accuracy") + 1
    frame = frame.copy()
    frame.insert(at, CI_COLUMN, shown)
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
    title: str,
    summary: str,
    n_val: int | None = None,
) -> pd.DataFrame:
    """Write ``report.csv`` and ``report.md`` into out_dir; return the trials table (with
    validation accuracy's interval over ``n_val`` examples, when given)."""
    frame = with_uncertainty(trials_frame(rows, winner), n_val)
    write_text_atomic(out_dir / "report.csv", frame.to_csv(index=False))
    write_text_atomic(
        out_dir / "report.md", f"# {title}\n\n{summary}\n\n## Trials\n\n{markdown_table(frame)}\n"
    )
    return frame
