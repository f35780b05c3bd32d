from __future__ import annotations

import numpy as np
import pytest

from nighttune.tasks.core.errors import TrialFailed
from nighttune.tasks.core.records import TrialResult, values_file
from nighttune.tasks.tuning.selection import select, select_best


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


def right_wrong(wrong: list[int], n: int = 1000) -> np.ndarray:
    """Per-example values of a cell that got the examples in ``wrong`` wrong."""
    values = np.ones(n, dtype=np.float32)
    values[wrong] = 0
    return values


def test_within_noise_the_cheapest_cell_wins_and_a_clearly_worse_one_does_not():
    best = row(64, 6, 0.950, train_seconds=9.0)  # wrong on 0..49
    close = row(128, 3, 0.948, train_seconds=3.0)  # wrong on 0..47 and 100..103
    worse = row(32, 3, 0.900, train_seconds=1.0)  # wrong on 0..99: 50 more, none fewer
    rows = [best, close, worse]
    values = {
        best.cell: right_wrong(list(range(50))),
        close.cell: right_wrong([*range(48), *range(100, 104)]),
        worse.cell: right_wrong(list(range(100))),
    }
    winner, chosen = select(
        rows, "val_accuracy", "max", values=values, rule="cheapest_within_noise"
    )
    assert winner is close and chosen.winner == "b128 p3" and chosen.best == "b64 p6"
    assert chosen.test == "McNemar" and chosen.p_vs_best["b32 p3"] < 0.05
    assert chosen.p_vs_best["b128 p3"] > 0.05 and chosen.tied() == ["b64 p6", "b128 p3"]
    assert "cheapest of the 2 cells within noise of the best, b64 p6" in chosen.reason
    assert "3.0 s of training vs 9.0 s" in chosen.reason
    # The default rule keeps the best, and still reports the noise.
    winner, plain = select(rows, "val_accuracy", "max", values=values)
    assert winner is best and plain.rule == "best" and plain.p_vs_best == chosen.p_vs_best


def test_without_per_example_values_a_cell_is_never_counted_as_tied():
    best = row(64, 6, 0.95, train_seconds=9.0)
    cheap = row(128, 3, 0.949, train_seconds=1.0)
    values = {best.cell: right_wrong([1, 2]), cheap.cell: None}
    winner, chosen = select(
        [best, cheap], "val_accuracy", "max", values=values, rule="cheapest_within_noise"
    )
    assert winner is best and "no per-example values for b128 p3" in chosen.reason
    winner, chosen = select(
        [best, cheap], "val_accuracy", "max", values={}, rule="cheapest_within_noise"
    )
    assert winner is best and chosen.test is None and "no per-example values" in chosen.reason


def test_the_values_file_sits_beside_its_model():
    assert values_file("/store/trials/b32/abc/model_e7.keras") == "/store/trials/b32/abc/val_e7.npy"
    assert values_file("model_e12.keras") == "val_e12.npy"
