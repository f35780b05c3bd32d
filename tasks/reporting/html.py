"""`report.html`: one self-contained page per run, plots embedded as PNG data URIs.

Sections: summary (winner and its test metrics, the champion gate's decision),
configuration, trials table, a heatmap of the monitored metric over batch size x
patience, the LR sweep of every batch size, learning curves of every trial with each
patience's stop marked, the winner's confusion matrix on the test split, and the time
each stage took. Paths
under the home folder are shown as ``~`` so that reports travel without leaking it.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from nighttune.tasks.core.objective import selection_column
from nighttune.tasks.core.records import (
    Promotion,
    Selection,
    TrialResult,
    WarmStart,
    curves_file,
    sweep_files,
)
from nighttune.tasks.reporting.figures import plot_confusion, plot_heatmap, plot_learning_curves
from nighttune.tasks.reporting.tables import summary_columns

# The trials table fits a laptop's 1280 px (it was cut off at test_accuracy): headings
# wrap at their underscores, cells are narrow, a status column shows only when a trial
# did not finish, and an error wraps within its cell. A narrower window scrolls the
# table alone, sideways, under a line that says so (checked as a picture: see
# docs/reports.md).
CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2em auto;
       max-width: 1180px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom:
1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
.wide { overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; }
th { background: #f3f3f3; vertical-align: bottom; font-weight: 600; }
tr.winner td { background: #e8f5e9; font-weight: 600; }
td { white-space: nowrap; }
td.text { text-align: left; } td.error { text-align: left; min-width: 14em; white-space: normal; }
.scroll-hint { display: none; } @media (max-width: 1000px) { .scroll-hint { display: block; } }
img { max-width: 100%; border: 1px solid #eee; margin: 0.4em 0; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.summary { font-size: 1.1em; background: #f5f9ff; padding: 0.8em 1em;
           border-left: 4px solid #4a90d9; }
.muted { color: #777; font-size: 0.9em; }
.gate { padding: 0.6em 1em; border-left: 4px solid; }
.gate.promoted { background: #eef8ee; border-color: #3c9a3c; }
.gate.kept { background: #fff4e5; border-color: #e08a00; }
"""


def portable(value: Any) -> Any:
    """``value`` with the home folder written as ``~`` in every string."""
    home = str(Path.home())
    if isinstance(value, str):
        return value.replace(home, "~") if home not in ("/", "") else value
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [portable(v) for v in value]
    return value


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n: int) -> np.ndarray:
    """``n`` x ``n`` counts: row = true class, column = predicted class."""
    return np.bincount(labels * n + predicted, minlength=n * n).reshape(n, n)


def make_plots(
    out: Path,
    rows: list[TrialResult],
    histories: dict[int, list[dict[str, float]]],
    *,
    confusion: np.ndarray | None,
    class_names: list[str],
    monitor: str,
) -> None:
    """Draw the run's figures into ``out`` (``plots/``)."""
    out.mkdir(parents=True, exist_ok=True)
    batch_sizes = sorted({r.batch_size for r in rows})
    patiences = sorted({r.patience for r in rows})
    for batch_size, history in sorted(histories.items()):
        stops = {r.patience: r.stop_epoch for r in rows if r.batch_size == batch_size}
        plot_learning_curves(
            history,
            stops,
            batch_size=batch_size,
            monitor=monitor,
            path=out / curves_file(batch_size),
            cut=_why_cut(rows, batch_size),
        )
    metric = selection_column(monitor)
    grid = np.full((len(batch_sizes), len(patiences)), np.nan)
    for r in rows:
        value = r.value(metric)
        if r.status == "ok" and value is not None:
            grid[batch_sizes.index(r.batch_size), patiences.index(r.patience)] = value
    widths = [r.val_95ci[1] - r.val_95ci[0] for r in rows if r.val_95ci and r.status == "ok"]
    plot_heatmap(
        grid,
        batch_sizes,
        patiences,
        metric=metric,
        path=out / "heatmap.png",
        noise=float(np.median(widths)) if widths else None,
    )
    if confusion is not None:  # a classifier
        plot_confusion(
            confusion,
            class_names,
            title="Winner on the test split",
            path=out / "confusion.png",
        )


def _why_cut(rows: list[TrialResult], batch_size: int) -> str | None:
    """Why ``batch_size``'s fit stopped before a patience did (the hurdle, the time
    budget: the first clause of its "not run" rows' reason), or None."""
    for r in rows:
        if r.batch_size == batch_size and r.status == "not run" and r.fit_path and r.error:
            return r.error.split(",")[0]
    return None


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _heading(column: str) -> str:
    """A column's name that may wrap after each underscore (``val_<wbr>accuracy``)."""
    return "_<wbr>".join(html.escape(part) for part in str(column).split("_"))


def _table(frame: pd.DataFrame, winner_index: int | None = None) -> str:
    head = "".join(f"<th>{_heading(c)}</th>" for c in frame.columns)
    body = []
    for i, row in enumerate(frame.itertuples(index=False)):
        cells = []
        for column, value in zip(frame.columns, row, strict=True):
            if isinstance(value, float):
                text, cls = ("" if np.isnan(value) else f"{value:.4g}"), ""
            else:
                text = "" if value is None else str(value)
                cls = ' class="error"' if column == "error" else ' class="text"'
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        mark = ' class="winner"' if i == winner_index else ""
        body.append(f"<tr{mark}>{''.join(cells)}</tr>")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f"<div class='wide'>{table}</div>"


def applicable(config: dict[str, Any]) -> dict[str, Any]:
    """The config as the page shows it: the keys that shaped this run. Unset values go;
    so do the built-in model's sizes for a builder (and the CNN's filters for the MLP),
    the split fractions for digits (its split is fixed) and the child deployment's keys
    when trials ran here."""
    drop = {"trial_deployment", "trial_timeout_s"} if config.get("dispatch") == "local" else set()
    model, dataset = dict(config.get("model", {})), dict(config.get("dataset", {}))
    if model.get("builder"):
        model = {k: v for k, v in model.items() if k not in BUILT_IN_MODEL_KEYS}
    elif model.get("kind") == "mlp":
        model.pop("filters", None)
    if dataset.get("name") == "digits" and not dataset.get("builder"):
        dataset = {k: v for k, v in dataset.items() if not k.endswith("_fraction")}

    def kept(part: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in part.items() if v not in (None, {}, [], ()) and k not in drop}

    nested = {key: kept(value) for key, value in config.items() if isinstance(value, dict)} | {
        "dataset": kept(dataset),
        "model": kept(model),
    }
    return kept(config | nested)


BUILT_IN_MODEL_KEYS = {"kind", "hidden_units", "filters", "dropout"}


def _subtitle(config: dict[str, Any], class_names: list[str], splits: dict[str, int]) -> str:
    """What was trained on what: builders or names, the split sizes, and what one
    validation example is worth in accuracy (a small split's differences are coarse)."""
    data = config["dataset"].get("builder") or config["dataset"]["name"]
    model = config["model"].get("builder") or config["model"]["kind"]
    sizes = ", ".join(f"{name} {count}" for name, count in splits.items())
    one = (
        f"; one validation example is {1 / splits['validation']:.2%} accuracy"
        if (class_names and splits.get("validation"))
        else ""
    )
    kind = f"{len(class_names)} classes" if class_names else "regression"
    return html.escape(f"dataset {data} ({sizes} examples{one}), model {model}, {kind}")


TRIALS_NOTE = (
    "One fit per batch size; every patience is read off it. The highlighted row won (with "
    "--select best an exact tie goes to fewer epochs run, then the smaller batch size, then "
    "the smaller patience). "
    "The _95ci column: where each cell's validation score plausibly lies (95% interval "
    "over the validation examples: Wilson's for accuracy, a bootstrap otherwise). "
    "p_vs_best: a paired test of the cell against the best one on the same validation "
    "examples (McNemar for accuracy); at 0.05 or more the two cannot be told apart."
)


RUNGS_NOTE = (
    "Each batch size's candidate peak LRs: the range test's suggestion and its multiples. "
    "In a rung every candidate trains its whole schedule compressed into the rung's epochs; "
    "the best of each rung went on to a longer one, and the last one standing was the "
    "batch size's trial above. The value is the best the candidate reached in its rung."
)


def _rungs(table: Path) -> list[str]:
    """The brackets' section from their ``rungs.csv``: nothing when no bracket ran rungs."""
    if not table.is_file():
        return []
    rungs = pd.read_csv(table)
    return [
        "<h2>Bracket: candidate learning rates and their rungs</h2>",
        f"<p class='muted'>{RUNGS_NOTE}</p>",
        _table(rungs),
    ]


def _trial_columns(trials: pd.DataFrame, monitor: str) -> list[str]:
    """The page's trial columns: the summary's, with status only when a trial did not
    finish."""
    columns = summary_columns(trials, monitor)
    if "status" in trials and (trials["status"] == "ok").all():
        columns.remove("status")
    return columns


def _summary(winner: TrialResult, monitor: str) -> str:
    return (
        f"<p class='summary'>Winner: batch size <b>{winner.batch_size}</b>, patience "
        f"<b>{winner.patience}</b>, <b>{html.escape(winner.lr_text())}</b>; "
        f"trained {winner.epochs_run} epochs, best epoch {winner.best_epoch}.<br>"
        f"Scores: <b>{html.escape(winner.scores_text(monitor))}</b>.</p>"
    )


def _selection(selection: Selection) -> str:
    """How the winner was chosen, under the summary."""
    return (
        f"<p class='muted'>Selection (--select {selection.rule}): "
        f"{html.escape(selection.reason)}.</p>"
    )


def _promotion(promotion: Promotion) -> str:
    """The champion gate's decision: promoted (green) or kept the model in service."""
    cls = "promoted" if promotion.promoted else "kept"
    verdict = "Promoted" if promotion.promoted else "Not promoted"
    return (
        f"<p class='gate {cls}'><b>{verdict}</b> (champion gate, --promote "
        f"{promotion.policy}): {html.escape(promotion.reason)}.</p>"
    )


def _warm_start(warm: WarmStart) -> str:
    """What the run carried over from earlier nights, one line each."""
    lines = "<br>".join(html.escape(line[0].upper() + line[1:]) for line in warm.lines())
    return f"<p class='muted'><b>Warm start</b> (--warm-start): {lines}.</p>"


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended, as its page tells it: the winner, how it was chosen (None: no
    `Selection` to show) and the champion gate's decision (None: the gate did not run)."""

    winner: TrialResult
    selection: Selection | None = None
    promotion: Promotion | None = None
    warm_start: WarmStart | None = None  # what the run carried over from earlier nights


def render_html(
    run_dir: Path,
    *,
    run_id: str,
    config: dict[str, Any],
    trials: pd.DataFrame,
    outcome: RunOutcome,
    seconds: dict[str, float],
    class_names: list[str],
    splits: dict[str, int],
) -> str:
    """The page, with every PNG under ``run_dir/plots`` and ``lr_sweeps`` embedded, and
    the brackets' rungs (``rungs.csv``, where they ran) under the range tests."""
    winner_index = (
        next((i for i, w in enumerate(trials["winner"]) if w), None) if "winner" in trials else None
    )
    batch_sizes = sorted(set(trials["batch_size"]))
    sweeps = [run_dir / "lr_sweeps" / sweep_files(b)[1] for b in batch_sizes]
    curves = [run_dir / "plots" / curves_file(b) for b in batch_sizes]
    matrix = run_dir / "plots" / "confusion.png"  # classifiers only
    confusion = (
        ["<h2>Confusion matrix of the winner (test split)</h2>", _image(matrix, "confusion matrix")]
        if matrix.is_file()
        else []
    )
    errors = ["error"] if trials["error"].fillna("").astype(bool).any() else []
    shown = portable(applicable(config))
    config_yaml = yaml.safe_dump(shown, sort_keys=False, default_flow_style=None)
    timing = pd.DataFrame(
        {"stage": list(seconds), "seconds": [round(v, 2) for v in seconds.values()]}
    )
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>nighttune run {html.escape(run_id)}</title><style>{CSS}</style></head><body>",
        f"<h1>nighttune run {html.escape(run_id)}</h1>",
        f"<p class='muted'>{_subtitle(config, class_names, splits)}</p>",
        "<h2>Summary</h2>",
        _summary(outcome.winner, config["monitor"]),
        *([_selection(outcome.selection)] if outcome.selection else []),
        *([_promotion(outcome.promotion)] if outcome.promotion else []),
        *([_warm_start(outcome.warm_start)] if outcome.warm_start else []),
        "<h2>Trials</h2>",
        f"<p class='muted'>{TRIALS_NOTE}</p>",
        "<p class='muted scroll-hint'>(the table scrolls sideways)</p>",
        _table(trials[_trial_columns(trials, config["monitor"]) + errors], winner_index),
        "<h2>Monitored metric by batch size and patience</h2>",
        _image(run_dir / "plots" / "heatmap.png", "heatmap"),
        "<h2>Learning-rate range tests</h2>",
        *[_image(p, p.stem) for p in sweeps if p.is_file()],
        *_rungs(run_dir / "rungs.csv"),
        "<h2>Learning curves</h2>",
        *[_image(p, p.stem) for p in curves if p.is_file()],
        *confusion,
        "<h2>Timing</h2>",
        _table(timing),
        "<h2>Configuration</h2>",
        "<p class='muted'>The settings that shaped this run (unset ones left out; "
        "manifest.json has every key).</p>",
        f"<pre>{html.escape(config_yaml)}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)
