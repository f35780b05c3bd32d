"""examples/your_model/ as a user runs it: each YAML tunes offline, exports, and its
export reloads for `nighttune predict` with the project's code (and not without it)."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.support.harness import ROOT, nighttune_cmd

EXAMPLES = ROOT / "examples" / "your_model"
# Smaller than the YAMLs' grids, so the suite stays fast; the YAMLs' builders, data,
# monitors and optimizers are what is under test.
QUICK = ("--max-epochs", "8", "--lr-steps", "20")


def run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        nighttune_cmd(*args), env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )


def tune(env: dict[str, str], tmp_path: Path, example: str, *flags: str) -> dict:
    """Tune ``example`` into tmp_path/exports; its manifest."""
    config = EXAMPLES / f"{example}.yaml"
    done = run(env, tmp_path, "tune", "--config", str(config), "--export-to", "exports", *flags)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp_path / "exports" / latest_id(tmp_path) / "manifest.json").read_text())


def latest_id(tmp_path: Path) -> str:
    return json.loads((tmp_path / "exports" / "latest.json").read_text())["run_id"]


def predict(env: dict[str, str], tmp_path: Path, inputs: Path, code: bool = True) -> list[dict]:
    code_dir = ("--code-dir", str(EXAMPLES)) if code else ()
    args = ("predict", "--model", "exports/latest", "--inputs", str(inputs), *code_dir)
    done = run(env, tmp_path, *args, "--out", "p.csv")
    if not code:
        return [{"returncode": done.returncode, "stderr": done.stderr}]
    assert done.returncode == 0, done.stderr[-3000:]
    with open(tmp_path / "p.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def env(cli_env, prefect_server) -> dict[str, str]:
    return cli_env | {"PREFECT_API_URL": prefect_server["api"]}


@pytest.mark.slow
def test_your_cnn_with_a_registered_layer(env, tmp_path) -> None:
    manifest = tune(env, tmp_path, "fashion_cnn", *QUICK, "--batch-sizes", "32")
    assert manifest["model"]["builder"] == "your_models:fashion_cnn"
    assert manifest["model"]["code"]["sha256"]
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.save(tmp_path / "x.npy", (digits.images[:200, :, :, None] / 16).astype("float32"))
    rows = predict(env, tmp_path, tmp_path / "x.npy")
    hits = [row["label"] == str(t) for row, t in zip(rows, digits.target[:200], strict=True)]
    assert np.mean(hits) > 0.8
    # The ConvBlock layer is the project's: without its code the run will not load.
    (refused,) = predict(env, tmp_path, tmp_path / "x.npy", code=False)
    assert refused["returncode"] == 2 and "--code-dir" in refused["stderr"]
    assert "Traceback" not in refused["stderr"]


@pytest.mark.slow
def test_your_tabular_classifier_selects_on_auc(env, tmp_path) -> None:
    manifest = tune(env, tmp_path, "breast_cancer", *QUICK, "--batch-sizes", "32,64")
    assert manifest["class_names"] == ["malignant", "benign"]
    assert manifest["winner"]["metrics"]["val_auc"] > 0.95
    report = (tmp_path / "exports" / latest_id(tmp_path) / "report.csv").read_text()
    assert "val_auc" in report.splitlines()[0]
    # AUC is not a mean over examples: its interval is a bootstrap of the Keras metric,
    # and there is no per-example paired test to call cells tied.
    low, high = manifest["winner"]["val_95ci"]
    assert low <= manifest["winner"]["metrics"]["val_auc"] <= high and low < high
    assert "val_auc_95ci" in report.splitlines()[0]
    assert manifest["selection"]["test"] is None and manifest["selection"]["p_vs_best"] == {}
    from sklearn.datasets import load_breast_cancer

    table = load_breast_cancer()
    np.savetxt(tmp_path / "x.csv", table.data, delimiter=",", header="features")
    rows = predict(env, tmp_path, tmp_path / "x.csv")
    names = np.array(table.target_names)[table.target]
    assert np.mean([r["label"] == n for r, n in zip(rows, names, strict=True)]) > 0.9


@pytest.mark.slow
def test_your_regression_selects_on_mae(env, tmp_path) -> None:
    manifest = tune(env, tmp_path, "diabetes", "--max-epochs", "40", "--lr-steps", "20")
    assert manifest["outputs"] == "values" and manifest["class_names"] == []
    assert manifest["winner"]["metrics"]["val_mae"] < 60  # targets: mean 152, std 77
    # MAE is a mean over examples: a bootstrap interval and paired bootstrap tests.
    low, high = manifest["winner"]["val_95ci"]
    assert low < manifest["winner"]["metrics"]["val_mae"] < high
    assert manifest["selection"]["test"] == "paired bootstrap"
    from sklearn.datasets import load_diabetes

    table = load_diabetes()
    np.save(tmp_path / "x.npy", table.data.astype("float32"))
    rows = predict(env, tmp_path, tmp_path / "x.npy")
    values = np.array([float(r["value"]) for r in rows])
    assert np.mean(np.abs(values - table.target)) < 60
