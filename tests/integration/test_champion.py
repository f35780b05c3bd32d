"""The champion gate on real runs: digits trained, exported, and scored against the run
in service on the same test split."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from nighttune.flows.target import export_target
from nighttune.tasks.core.config import TuneConfig
from nighttune.tasks.core.objective import Objective
from nighttune.tasks.runs.export import export_run, new_run_id
from nighttune.tasks.runs.history import run_history
from nighttune.tasks.storage.target import make_target
from nighttune.tasks.tuning.context import trial_context
from nighttune.tasks.tuning.selection import select
from nighttune.tasks.tuning.training import stored_values, train_trial


@pytest.fixture(scope="module")
def nights(digits, tmp_path_factory):
    """Two nights' results on digits: a good one (10 epochs at a sound learning rate) and
    a bad one (one epoch at a learning rate far too small: near chance)."""
    cache = str(tmp_path_factory.mktemp("champion-store"))
    config = TuneConfig(batch_sizes=(32,), patiences=(3,), max_epochs=10, cache_dir=cache)
    good = train_trial(digits, trial_context(config, digits), 32, lr=3e-3, lr_method="minimum")
    bad_config = config.model_copy(update={"max_epochs": 1})
    bad = train_trial(digits, trial_context(bad_config, digits), 32, lr=1e-6, lr_method="fallback")
    return config, good, bad


def export(config, digits, rows, target: Path, **changes):
    config = config.model_copy(update={"export_to": str(target), **changes})
    winner, selection = select(rows, "val_accuracy", "max", values=stored_values(rows))
    return export_run(
        config,
        digits,
        target=export_target(config),
        objective=Objective(monitor=config.monitor, direction="max"),
        sweeps=[],
        rows=rows,
        winner=winner,
        run_id=new_run_id(),
        selection=selection,
    )


def latest_run(target: Path) -> str:
    return json.loads((target / "latest.json").read_text())["run_id"]


def manifest(export) -> dict:
    return json.loads(Path(export.path, "manifest.json").read_text())


def test_a_worse_night_is_exported_but_not_served(nights, digits, tmp_path):
    config, good, bad = nights
    first = export(config, digits, good, tmp_path)
    assert first.promotion.promoted and first.promotion.champion is None
    assert "no model in service yet" in first.promotion.reason
    assert latest_run(tmp_path) == first.run_id

    second = export(config, digits, bad, tmp_path)
    gate = second.promotion
    assert Path(second.path, "model.keras").is_file()  # exported all the same
    assert latest_run(tmp_path) == first.run_id  # still serving the first night
    assert not gate.promoted and gate.champion == first.run_id
    # The champion, reloaded from its export, scored on tonight's test split the way its
    # own trial was scored: the same number.
    assert gate.champion_score == pytest.approx(good[0].test_accuracy, abs=1e-6)
    assert gate.score == bad[0].test_accuracy < gate.champion_score
    assert f"worse than champion {first.run_id}" in gate.reason
    assert manifest(second)["promotion"] == gate.model_dump()
    page = Path(second.path, "report.html").read_text()
    assert "Not promoted" in page and first.run_id in page
    assert "Champion gate: not promoted" in Path(second.path, "report.md").read_text()
    report = pd.read_csv(Path(second.path, "report.csv"))
    low, high = (float(v) for v in report["val_accuracy_95ci"][0].split("-"))
    assert low < report["val_accuracy"][0] < high  # the interval over digits' 270 examples
    assert "val_<wbr>accuracy_<wbr>95ci" in page  # (a heading that wraps at underscores)
    assert "Selection (--select best): best val_accuracy" in page
    assert manifest(second)["selection"]["winner"] == "b32 p3"

    history = run_history(make_target(str(tmp_path)))
    assert history["promoted"].tolist() == ["yes", "no"]


def test_the_margin_and_the_policies(nights, digits, tmp_path):
    config, good, bad = nights
    first = export(config, digits, good, tmp_path)
    margin = 1.0  # accuracy may drop by up to 1.0: anything passes
    loose = export(config, digits, bad, tmp_path, promote_margin=margin)
    assert loose.promotion.promoted and latest_run(tmp_path) == loose.run_id
    forced = export(config, digits, good, tmp_path, promote="never")
    assert not forced.promotion.promoted and latest_run(tmp_path) == loose.run_id
    assert forced.promotion.reason.startswith("--promote never")
    again = export(config, digits, bad, tmp_path, promote="always")
    assert again.promotion.promoted and latest_run(tmp_path) == again.run_id
    assert first.run_id != again.run_id


def test_a_champion_that_cannot_be_scored_tonight_does_not_block(
    nights, digits, exported_run, tmp_path
):
    """A champion trained on other data (three classes of 8x8 RGB PNGs), then one that
    was damaged on disk: tonight's run is promoted and the reason says why."""
    config, good, _ = nights
    shutil.copytree(exported_run, tmp_path / exported_run.name)
    (tmp_path / "latest.json").write_text(json.dumps({"run_id": exported_run.name}))
    other = export(config, digits, good, tmp_path)
    assert other.promotion.promoted and other.promotion.champion_score is None
    assert f"champion {exported_run.name} was trained on other classes" in other.promotion.reason

    Path(other.path, "model.keras").write_bytes(b"damaged")
    after = export(config, digits, good, tmp_path)
    assert after.promotion.promoted and latest_run(tmp_path) == after.run_id
    assert "cannot be loaded" in after.promotion.reason
    assert "does not match the manifest's checksum" in after.promotion.reason
