"""Reports a person reads: report.html with every section, artifacts, history, no leaks."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from nighttune.tasks.runs.history import run_history, write_history
from nighttune.tasks.storage.target import make_target
from tests.support.harness import small_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(prefect_harness, tmp_path_factory):
    """One small real tune run, exported under a HOME of its own."""
    from nighttune.flows.tune import tune

    home = tmp_path_factory.mktemp("home")
    patch = pytest.MonkeyPatch()
    patch.setenv("HOME", str(home))
    try:
        result = tune(small_config(home, hurdle=False))  # every fit to its end: its curves
    finally:
        patch.undo()
    return home, result


def test_report_html_has_every_section_and_plot(run) -> None:
    home, result = run
    run_dir = Path(result.export.path)
    page = (run_dir / "report.html").read_text()
    for heading in (
        "Summary",
        "Trials",
        "Monitored metric by batch size and patience",
        "Learning-rate range tests",
        "Learning curves",
        "Confusion matrix of the winner (test split)",
        "Timing",
        "Configuration",
    ):
        assert f"<h2>{heading}</h2>" in page
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)
    assert sorted(images) == sorted(
        [
            "heatmap",
            "lr_sweep_b32",
            "lr_sweep_b64",
            "learning_curves_b32",
            "learning_curves_b64",
            "confusion matrix",
        ]
    )
    assert 'src="http' not in page and "src='http" not in page  # self-contained
    with open(run_dir / "report.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert page.count("<tr") == len(rows) + 1 + 1 + 4  # trials + header, timing + 4 stages
    for row in rows:
        assert f"<td>{float(row['test_accuracy']):.4g}</td>" in page
    assert page.count('class="winner"') == 1
    assert "train 1257, validation 270, test 270 examples" in page
    assert "one validation example is 0.37% accuracy" in page
    shown = page.split("<h2>Configuration</h2>", 1)[1]
    assert "cache_dir: ~/" in shown  # the folder used, not null
    for unused in ("null", "filters:", "val_fraction", "trial_deployment", "builder:"):
        assert unused not in shown, unused
    assert "an exact tie goes to fewer epochs run" in page
    assert "p_<wbr>vs_<wbr>best</th>" in page and "val_<wbr>accuracy_<wbr>95ci</th>" in page
    assert "<th>status</th>" not in page  # every trial finished: no status column
    assert "Selection (--select best): best val_accuracy" in page
    for stage in ("data", "sweeps", "trials", "export"):
        assert f'<td class="text">{stage}</td>' in page
    for png in (run_dir / "plots").glob("*.png"):
        with Image.open(png) as image:
            image.verify()


def test_the_page_fits_a_laptop_and_its_table_scrolls_in_a_narrow_window(run, tmp_path) -> None:
    """report.html laid out by headless Chromium: at 1280 px the trials table fits its
    box (it was 1296 px in 1100, cut off at test_accuracy) and nothing is wider than the
    window; at 800 px only the table scrolls, sideways, under a line saying so."""
    from tests.support.browser import measure, screenshot

    _, result = run
    page = Path(result.export.path) / "report.html"
    laptop = measure(page, 1280, tmp_path)
    assert laptop["table"] <= laptop["table_box"], laptop  # no sideways scroll
    assert laptop["page"] <= 1280 and laptop["table_right"] <= 1280, laptop
    assert laptop["images_right"] <= 1280 and laptop["hint"] == "none", laptop
    narrow = measure(page, 800, tmp_path)
    assert narrow["page"] <= 800 and narrow["images_right"] <= 800, narrow
    assert narrow["table"] > narrow["table_box"] and narrow["hint"] == "block", narrow
    picture = screenshot(page, 1280, tmp_path / "report-1280.png")
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_heatmap_scale_spans_the_noise_and_the_sweep_plot_says_minimum_over_10() -> None:
    """A one-example difference (0.963 vs 0.974 on 270 examples, intervals 0.05 wide)
    is a small step of a scale at least the noise wide, not purple against yellow; the
    `minimum` rule's line sits a decade left of the point it read, and says so."""
    import numpy as np

    from nighttune.tasks.reporting.figures import READ_AT, RULE_WORDS, colour_range

    grid = np.array([[0.963, 0.963], [0.9741, np.nan]])
    low, high = colour_range(grid, noise=0.05)
    assert high - low == pytest.approx(0.05) and low < 0.963 and high > 0.9741
    assert colour_range(grid, noise=None) == (0.963, 0.9741)  # no noise known: the range
    assert colour_range(np.array([[0.5, 0.9]]), noise=0.05) == (0.5, 0.9)  # wider: kept
    assert RULE_WORDS["minimum"] == "minimum ÷ 10" and READ_AT["minimum"] == 10.0


def test_a_fit_the_hurdle_stopped_keeps_its_curve_marked_where_and_why(tmp_path) -> None:
    """Every patience of b64 "not run": its fit's epochs still draw its learning curves,
    with a line where the hurdle stopped it, saying why."""
    from unittest import mock

    from nighttune.tasks.core.records import TrialResult
    from nighttune.tasks.reporting import html

    why = "hurdle: behind b32's val_accuracy 0.9000 by epoch 2, the fit stopped there"
    rows = [
        TrialResult(
            batch_size=b,
            patience=3,
            lr=0.01,
            lr_method="steepest",
            status="ok" if b == 32 else "not run",
            epochs_run=6 if b == 32 else None,
            val_accuracy=0.93 if b == 32 else None,
            fit_path=str(tmp_path / f"b{b}"),
            error=None if b == 32 else why + ", before this patience stopped",
        )
        for b in (32, 64)
    ]
    epochs = [
        {"loss": 1.0 - i / 10, "val_loss": 1.1 - i / 10, "accuracy": 0.5 + i / 20} for i in range(6)
    ]
    histories = {32: epochs, 64: epochs[:2]}
    with mock.patch.object(html, "plot_learning_curves", wraps=html.plot_learning_curves) as drawn:
        html.make_plots(
            tmp_path, rows, histories, confusion=None, class_names=[], monitor="val_accuracy"
        )
    cuts = {call.kwargs["batch_size"]: call.kwargs["cut"] for call in drawn.call_args_list}
    assert cuts == {32: None, 64: why.split(",")[0]}
    assert (tmp_path / html.curves_file(64)).stat().st_size > 0


def test_tensorboard_logs_and_artifacts(run) -> None:
    from prefect.client.orchestration import get_client

    _, result = run
    run_dir = Path(result.export.path)
    for b in (32, 64):
        for split in ("train", "validation"):
            assert list((run_dir / "tensorboard" / f"b{b}" / split).glob("events.out.tfevents.*"))
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
    # The session's Prefect server holds other tests' runs too: take this run's.
    (summary,) = [a for a in artifacts if a.key == "tune-summary" and result.run_id in a.data]
    keys = {a.key: a for a in artifacts if a.key and a.flow_run_id == summary.flow_run_id}
    assert {"trials", "tune-summary", "tune-export"} <= set(keys)
    assert len(json.loads(keys["trials"].data)) == 4
    assert result.run_id in keys["tune-summary"].data
    assert f"({result.export.uri})" in keys["tune-export"].data


def test_no_home_path_or_credentials_in_reports(run) -> None:
    home, result = run
    run_dir = Path(result.export.path)
    for name in ("report.html", "report.md", "report.csv", "manifest.json"):
        text = (run_dir / name).read_text()
        assert str(home) not in text, name
        assert "testing-secret-key" not in text and "testing-key-id" not in text
    assert "~/exports" in (run_dir / "report.html").read_text()


def test_history_over_three_runs(run, tmp_path) -> None:
    from nighttune.flows.tune import tune

    home, first = run
    later = [tune(small_config(home, hurdle=False)) for _ in range(2)]  # trials reused: fast
    frame = run_history(make_target(str(home / "exports")))
    assert list(frame["run_id"]) == [first.run_id] + [r.run_id for r in later]
    assert (frame["test_accuracy"] == first.winner.test_accuracy).all()
    grid = f"b32,64 p{','.join(map(str, small_config(home).patiences))} e"
    assert frame["grid"].str.startswith(grid).all(), frame["grid"]
    csv_path, png_path = write_history(make_target(str(home / "exports")), str(tmp_path))
    assert len(csv_path.read_text().splitlines()) == 4
    with Image.open(png_path) as image:
        image.verify()


def test_history_skips_a_damaged_manifest_with_a_warning(exported_run, tmp_path, caplog) -> None:
    import shutil

    target = tmp_path / "exports"
    shutil.copytree(exported_run, target / exported_run.name)
    for name, text in {"bad-json": "{", "bad-types": '{"run_id": "x", "winner": 5}'}.items():
        (target / name).mkdir()
        (target / name / "manifest.json").write_text(text)
    with caplog.at_level("WARNING", logger="nighttune"):
        frame = run_history(make_target(str(target)))
    assert list(frame["run_id"]) == [exported_run.name]
    assert sum("history: skipped" in r.message for r in caplog.records) == 2
