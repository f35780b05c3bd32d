"""What `nighttune tune` prints at the end, at a terminal's width."""

from __future__ import annotations

import pytest

from nighttune.flows.screens import print_tune_result
from nighttune.tasks.core.records import ExportResult, Selection, TrialResult, TuneResult


def _result(*, failed: bool = False) -> TuneResult:
    """A 3x3 digits-like grid as `tune` returns it, exported to /x/exports/run-1."""
    rows = []
    for b, acc in ((32, 0.963), (64, 0.9556), (128, 0.9741)):
        for p in (3, 6, 10):
            rows.append(
                TrialResult(
                    batch_size=b,
                    patience=p,
                    lr=0.02947,
                    lr_method="steepest",
                    lr_schedule="one_cycle",
                    status="failed" if failed and (b, p) == (32, 3) else "ok",
                    epochs_run=20 + p,
                    best_epoch=17,
                    val_loss=0.1542,
                    val_accuracy=acc,
                    test_loss=0.08138,
                    test_accuracy=acc + 0.004,
                    val_95ci=(acc - 0.027, acc + 0.013),
                    train_seconds=3.205,
                    reused=True,
                )
            )
    winner = rows[6]
    selection = Selection(
        rule="best",
        metric="val_accuracy",
        alpha=0.05,
        best=winner.cell,
        winner=winner.cell,
        test="mcnemar",
        p_vs_best={row.cell: 0.375 for row in rows if row is not winner},
        reason="best val_accuracy",
    )
    export = ExportResult(
        run_id="run-1",
        uri="file:///x/exports/run-1",
        path="/x/exports/run-1",
        latest="/x/exports/latest.json",
    )
    return TuneResult(
        run_id="run-1",
        export=export,
        winner=winner,
        rows=rows,
        seconds={},
        selection=selection,
        sweeps_reused=3,
    )


@pytest.mark.parametrize("width", [80, 120])
def test_the_final_screen_fits_the_terminal_and_ends_with_the_report(capsys, width) -> None:
    """At 80 and 120 columns: no line wider than the terminal (the table was 162), the
    grid's cell, its scores and the winner always shown, what was left out said, and
    the last line the report to open."""
    print_tune_result(_result(), width=width)
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= width, "\n".join(lines)
    header = lines[1].split()
    for column in ("batch", "patience", "val", "acc", "test", "winner"):
        assert column in header, lines[1]
    winners = [line for line in lines[2:11] if line.rstrip().endswith("*")]
    assert [line.split()[:2] for line in winners] == [["128", "3"]], lines
    assert lines[-1] == "report      /x/exports/run-1/report.html"
    left_out = [line for line in lines if "left out to fit" in line]
    if width == 80:
        assert left_out and "report.html has them" in " ".join(lines), lines
        assert "train s" not in lines[1]  # the first to go
    else:
        assert not left_out and "train s" in lines[1] and "95% CI" in lines[1]


def test_a_status_column_only_when_a_trial_did_not_finish(capsys) -> None:
    print_tune_result(_result(), width=200)
    assert "status" not in capsys.readouterr().out
    print_tune_result(_result(failed=True), width=200)
    table = capsys.readouterr().out.splitlines()
    assert "status" in table[1] and "failed" in table[2]


def test_columns_from_the_environment_and_whole_lines_in_a_log(capsys, monkeypatch) -> None:
    """$COLUMNS is the width; output that is not a terminal (a log, a pipe) keeps every
    column and whole lines."""
    monkeypatch.setenv("COLUMNS", "80")
    print_tune_result(_result())
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) <= 80
    monkeypatch.delenv("COLUMNS")
    print_tune_result(_result())  # capsys: not a terminal
    out = capsys.readouterr().out
    assert "left out" not in out and "train s" in out and "reused" in out
    assert "winner      batch size 128, patience 3, peak lr" in out
    assert [line for line in out.splitlines() if line.startswith("winner")][0].endswith(
        "test accuracy 0.9781"
    )


def test_cells_not_run_are_said_by_what_stopped_them(capsys) -> None:
    """A batch size the hurdle stopped and one the time budget cut each get their own
    line, and neither is called the other."""
    result = _result()
    why = {
        32: "hurdle: behind b128's val_accuracy 0.9700 by epoch 10, the fit stopped there",
        64: "time budget: the fit stopped after epoch 4",
    }
    rows = [
        row.model_copy(update={"status": "not run", "error": why[row.batch_size]})
        if row.batch_size in why
        else row
        for row in result.rows
    ]
    print_tune_result(result.model_copy(update={"rows": rows}), width=120)
    said = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line}
    assert "batch size 32 stopped at a third of the epochs" in said["hurdle"]
    assert "3 of 9 cells not run" in said["time"]
