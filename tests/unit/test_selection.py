from __future__ import annotations

import pytest

from tasks.core.errors import TrialFailed
from tasks.core.records import TrialResult
from tasks.tuning.selection import select_best


def row(
    b: int, p: int, acc: float | None, epochs: int = 10, status: str = "ok", **kw
) -> TrialResult:
    return TrialResult(
        batch_size=b,
        patience=p,
        lr=1e-3,
        lr_method="minimum",
        status=status,
        val_accuracy=acc,
        val_loss=None if acc is None else 1 - acc,
        epochs_run=epochs,
        **kw,
    )


def test_best_metric_wins_in_either_direction() -> None:
    rows = [row(32, 3, 0.90), row(64, 3, 0.95), row(128, 3, 0.93)]
    assert select_best(rows, "val_accuracy", "max").batch_size == 64
    assert select_best(rows, "val_loss", "min").batch_size == 64


def test_ties_go_to_fewer_epochs_then_smaller_batch_then_smaller_patience() -> None:
    rows = [row(128, 3, 0.95, epochs=8), row(32, 6, 0.95, epochs=12), row(64, 3, 0.95, epochs=8)]
    assert (select_best(rows, "val_accuracy", "max").batch_size) == 64
    same = [row(64, 6, 0.95, epochs=8), row(64, 3, 0.95, epochs=8)]
    assert select_best(same, "val_accuracy", "max").patience == 3


def test_failed_rows_are_ignored() -> None:
    rows = [row(32, 3, 0.99, status="failed", error="boom"), row(64, 3, 0.5)]
    assert select_best(rows, "val_accuracy", "max").batch_size == 64


def test_all_failed_is_a_clear_error() -> None:
    rows = [
        row(32, 3, None, status="failed", error="trial b32 failed: ResourceExhaustedError"),
        row(64, 3, float("nan")),
    ]
    with pytest.raises(TrialFailed, match="every trial failed.*ResourceExhaustedError"):
        select_best(rows, "val_accuracy", "max")
    with pytest.raises(TrialFailed, match="no trials ran"):
        select_best([], "val_accuracy", "max")


def test_the_records_and_the_ranking_load_no_framework() -> None:
    """`TrialResult` and `select_best` are plain data and a sort: importing them loads
    neither TensorFlow, Keras nor Prefect (it took 11-14 s when the record lived beside
    the training code)."""
    import subprocess
    import sys

    from tests.support.harness import ROOT

    code = (
        "import sys; import tasks.core.records, tasks.tuning.selection; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'prefect') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
