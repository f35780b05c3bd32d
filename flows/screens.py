"""What a command prints when it is done: short, aligned, the paths a user opens next."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nighttune.tasks.tuning.hurdle import stopped_by_hurdle

if TYPE_CHECKING:  # the commands import these before they call us
    from nighttune.tasks.core.config import DatasetSpec
    from nighttune.tasks.core.records import LRSweep, TrialResult, TuneResult
    from nighttune.tasks.data.datasets import CachedDataset
    from nighttune.tasks.data.prepare import Prepared
    from nighttune.tasks.inference.predict import PredictSummary


def _number(value: float) -> str:
    return f"{value:.4g}"


def screen_width() -> int | None:
    """The columns to fit: $COLUMNS, else the terminal's; None when the output is not a
    terminal (a log or a pipe keeps every column and whole lines, for grep)."""
    import os
    import shutil

    if os.environ.get("COLUMNS", "").strip().isdigit():
        return max(int(os.environ["COLUMNS"]), 40)
    if sys.stdout.isatty():
        return max(shutil.get_terminal_size().columns, 40)
    return None


def say_where_the_record_is(export_to: str) -> None:
    """For a run on a temporary Prefect server (no UI, gone when the command ends): the
    line that says where its record will be, in place of a link to a UI."""
    from nighttune.tasks.core.logs import get_logger

    get_logger().info(
        "record: report.html (named at the end); all runs: nighttune report --history %s; "
        "no Prefect UI (a temporary server)",
        export_to,
    )


def print_tune_result(result: TuneResult, width: int | None = None) -> None:
    """The trials table and the winner, fitted to ``width`` columns (default
    `screen_width`), and where the run went, ending with the report to open."""
    from nighttune.tasks.reporting.tables import summary_columns, trials_frame, with_noise
    from nighttune.tasks.reporting.terminal import fit_table, heading

    width = width or screen_width()
    frame = trials_frame(result.rows, result.winner)
    frame = with_noise(frame, result.monitor, result.selection)
    columns = [*summary_columns(frame, result.monitor), "winner"]
    if (frame["status"] == "ok").all():  # a status column only when a trial did not finish
        columns.remove("status")
    table, left_out = fit_table(frame, columns, monitor=result.monitor, width=width)
    print()
    print(table)
    if left_out:
        names = ", ".join(heading(c, "") for c in left_out)
        _say("", f"({names}: left out to fit {width} columns; report.html has them)", width)
    w = result.winner
    print()
    _say(
        "winner",
        f"batch size {w.batch_size}, patience {w.patience}, {w.lr_text()}: "
        f"{w.scores_text(result.monitor)}",
        width,
    )
    if result.selection is not None:
        _say("selection", f"{result.selection.rule}: {result.selection.reason}", width)
    not_run = [row for row in result.rows if row.status == "not run"]
    if carried := sorted({r.batch_size for r in not_run if _carried(r)}):
        sizes = ", ".join(map(str, carried))
        _say(
            "warm start",
            f"batch size {sizes} left out: lost clearly on earlier nights (report.html says which)",
            width,
        )
    if behind := sorted({r.batch_size for r in not_run if stopped_by_hurdle(r.error)}):
        sizes = ", ".join(map(str, behind))
        _say(
            "hurdle",
            f"batch size {sizes} stopped at a third of the epochs, behind an earlier fit "
            "(report.html says by how much)",
            width,
        )
    if cut := [row for row in not_run if not (_carried(row) or stopped_by_hurdle(row.error))]:
        _say(
            "time budget",
            f"{len(cut)} of {len(result.rows)} cells not run "
            "(the report's error column says where each stopped)",
            width,
        )
    if reused := _reused_text(result):
        _say("reused", reused, width)
    exported = result.export
    _say("exported", exported.path if exported.uri.startswith("file:") else exported.uri, width)
    gate = exported.promotion
    if gate is not None:
        _say("champion", gate.text(), width)
    serving = "" if gate is None or gate.promoted or not gate.champion else gate.champion
    _say("latest", exported.latest + (f" (still {serving})" if serving else ""), width)
    _say("report", str(Path(exported.path) / "report.html"), width)


def _carried(row: TrialResult) -> bool:
    """A row of a batch size the warm start left out (`tasks.runs.warm_start`)."""
    return (row.error or "").startswith("warm start:")


def _say(label: str, text: str, width: int | None) -> None:
    """``label`` in a 12-column margin, then ``text`` wrapped to ``width`` under it
    (paths never broken: a long one runs past the edge, whole, to be copied)."""
    import textwrap

    if width is None:
        print(f"{label:<11} {text}".rstrip())
        return
    lines = textwrap.wrap(
        text,
        width=width - 12,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [""]
    print(f"{label:<11} {lines[0]}".rstrip())
    for line in lines[1:]:
        print(f"{'':<11} {line}")


def _reused_text(result: TuneResult) -> str:
    """Which work came from the store rather than being done now ("" when none did)."""
    sizes = {row.batch_size for row in result.rows if not _carried(row)}
    trials = len({row.batch_size for row in result.rows if row.reused})
    if not (trials or result.sweeps_reused):
        return ""
    return (
        f"LR sweeps {result.sweeps_reused} of {len(sizes)}, trials {trials} of {len(sizes)}: "
        "from the store, trained by an earlier run (--fresh retrains)"
    )


def print_dataset(spec: DatasetSpec, cached: CachedDataset) -> None:
    height, width, channels = cached.input_shape
    state = "cache hit" if cached.cache_hit else "built"
    print(f"dataset     {spec.label}  ({state}: {cached.path})")
    print(f"classes     {len(cached.class_names)}: {' '.join(cached.class_names)}")
    kept = "uint8, converted as read" if cached.stored == "uint8" else "float32"
    print(f"input       {height}x{width}x{channels} float32 in [0, 1]  (cached as {kept})")
    for split, count in cached.num_examples.items():
        print(f"{split:<11} {count:>7} examples")


def print_prepared(done: Prepared, source: str) -> None:
    """Where the dataset is now, and the command that trains on it."""
    state = "already prepared" if done.already else f"prepared from {source}"
    print(f"dataset     {done.name}  ({state}; {done.checked} checked)")
    print(f"splits      {', '.join(f'{k} {v}' for k, v in done.splits.items())}")
    print(f"data_dir    {done.data_dir}")
    print(f"next        nighttune tune --dataset {done.name} --data-dir {done.data_dir}")


def print_sweep(sweep: LRSweep, written: tuple[Path, Path]) -> None:
    """Every method's suggestion, the one chosen, and the files written."""
    print(f"lr range test, batch size {sweep.batch_size}: {sweep.steps} steps, {sweep.stop_reason}")
    for name, lr in sweep.suggestions.items():
        shown = f"{lr:.3e}" if lr is not None else "none"
        mark = "  <- chosen" if name == sweep.method else ""
        print(f"  {name:<9} {shown:>10}  {sweep.notes[name]}{mark}")
    if sweep.method == "fallback":
        print(f"  no method found a descent; chosen fallback {sweep.chosen_lr:.3e}")
    print(f"chosen lr   {sweep.chosen_lr:.3e}")
    print(f"wrote       {written[0]}")
    print(f"            {written[1]}")


class ProgressBar:
    """A bar on stderr (when it is a terminal), made on the first report of progress;
    call it with ``(done, total)``."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=self.unit, file=sys.stderr, disable=None)
        self.bar.update(done - self.bar.n)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


def print_predictions(summary: PredictSummary) -> None:
    print(f"{summary.unit:<12}{summary.files}")
    print(f"predicted   {summary.predicted}")
    print(f"errors      {summary.errors}")
    if summary.renamed:
        print(
            f"note        {summary.renamed} file name(s) not valid UTF-8: written "
            "with \\xNN escapes"
        )
    if summary.outside:
        print(
            f"note        {summary.outside} symlinked folder(s) not followed: they lead "
            "outside the --images folders"
        )
    unit = "images" if summary.unit == "files" else summary.unit
    print(
        f"wrote       {summary.out}  ({summary.files} {unit} in {summary.seconds:.1f} s: "
        f"{summary.per_s:.0f} {unit}/s, after {summary.load_seconds:.1f} s loading the model)"
    )
