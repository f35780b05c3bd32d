"""The user's own data: a builder's splits cached, carved, checked, and trained on."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from nighttune.tasks.core.config import DatasetSpec
from nighttune.tasks.core.config_file import load_tune_config
from nighttune.tasks.core.errors import BuilderError, ConfigError
from nighttune.tasks.data.datasets import load_dataset
from tests.support.harness import ROOT

PROJECT = ROOT / "tests" / "support" / "user_project"


def spec(function: str = "blobs", **kwargs) -> DatasetSpec:
    return DatasetSpec(builder=f"my_data:{function}", kwargs=kwargs, code_path=(str(PROJECT),))


def test_arrays_are_cached_and_reused_until_they_change(tmp_path) -> None:
    first = load_dataset(spec(), tmp_path)
    assert first.input_shape == (6,) and first.class_names == ["low", "mid", "high"]
    assert first.num_examples == {"train": 150, "validation": 75, "test": 75}
    assert first.label_shape == () and not first.cache_hit
    again = load_dataset(spec(), tmp_path)
    assert again.cache_hit and again.fingerprint == first.fingerprint
    other = load_dataset(spec(seed=1), tmp_path)  # other kwargs, other data
    assert other.fingerprint != first.fingerprint
    fresh = load_dataset(spec().model_copy(update={"cache": False}), tmp_path)
    assert not fresh.cache_hit and fresh.fingerprint == first.fingerprint
    x, y = first.arrays("train")
    assert x.dtype.name == "float32" and y.dtype.name == "int64"


def test_the_screen_names_the_builder_it_caches(tmp_path, monkeypatch) -> None:
    """The dataset lines name the user's builder, not the default dataset name."""
    import logging

    from nighttune.tasks.data import datasets

    said: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.Logger("screen", logging.INFO)
    logger.addHandler(handler)
    monkeypatch.setattr(datasets, "get_logger", lambda: logger)
    load_dataset(spec(), tmp_path)
    load_dataset(spec(), tmp_path)
    assert [line.split(" /")[0] for line in said] == [
        "dataset my_data:blobs: preprocessing and caching",
        "dataset my_data:blobs: cached in",
        "dataset my_data:blobs: cache hit",
    ], said
    assert not [line for line in said if "digits" in line]


def test_a_dataset_without_validation_or_test_is_carved_from_train(tmp_path) -> None:
    cached = load_dataset(spec("as_dataset"), tmp_path)
    assert sum(cached.num_examples.values()) == 100  # as_dataset(200) keeps blobs' train half
    assert cached.num_examples["validation"] == cached.num_examples["test"] == 10
    assert cached.class_names == ["0", "1", "2"]  # none given: the label values


def test_one_hot_labels_are_kept(tmp_path) -> None:
    cached = load_dataset(spec(one_hot=True), tmp_path)
    assert cached.label_shape == (3,)
    assert cached.arrays("test")[1].shape == (75, 3)


@pytest.mark.parametrize(
    ("function", "needle"),
    [
        ("no_train", "must return a mapping with a 'train' split"),
        ("mismatched", "x has shape (10, 2) and y (9,)"),
        ("empty_split", "split 'test' is empty"),
        ("labels_out_of_range", "labels run from 0 to 9, outside 0..1 for 2 classes"),
        ("missing", "has no function 'missing'"),
    ],
)
def test_data_builder_mistakes_are_one_line(tmp_path, function: str, needle: str) -> None:
    with pytest.raises(BuilderError) as raised:
        load_dataset(spec(function), tmp_path)
    assert needle in str(raised.value) and "\n" not in str(raised.value)


def test_a_model_that_does_not_fit_the_data_is_one_line(tmp_path) -> None:
    from nighttune.tasks.tuning.context import trial_context

    cached = load_dataset(spec(one_hot=True), tmp_path)
    config = load_tune_config(None, {"model.kind": "cnn"})  # a CNN on feature vectors
    with pytest.raises(BuilderError, match=r"does not fit the data \(inputs \[6\]"):
        trial_context(config, cached)


@pytest.mark.slow
def test_your_model_on_your_one_hot_data_tunes_and_exports(prefect_harness, tmp_path) -> None:
    """Feature vectors with one-hot labels and a model compiled with categorical
    cross-entropy and a metric named `acc`: monitored as val_acc, exported; the image
    predictor refuses the run in one line."""
    from nighttune.flows.tune import tune
    from nighttune.tasks.core.errors import UserError
    from nighttune.tasks.inference.predict import predict_to_csv
    from nighttune.tasks.runs.reader import RunAccess
    from tests.support.images import class_folder

    config = load_tune_config(
        None,
        {
            "dataset.builder": "my_data:blobs",
            "dataset.kwargs": {"one_hot": True},
            "dataset.code_path": [str(PROJECT)],
            "model.builder": "my_models:build_one_hot",
            "model.code_path": [str(PROJECT)],
            "monitor": "val_acc",
            "batch_sizes": [16, 32],
            "patiences": [2],
            "max_epochs": 6,
            "lr_range.steps": 12,
            "export_to": str(tmp_path / "exports"),
            "cache_dir": str(tmp_path / "cache"),
        },
    )
    result = tune(config)
    winner = result.winner
    assert winner.value("val_acc") is not None and winner.value("val_acc") > 0.9
    assert winner.val_accuracy is None and "test_acc" in winner.metrics
    run = Path(result.export.path)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["input_shape"] == [6] and manifest["outputs"] == "probabilities"
    assert (run / "plots" / "confusion.png").is_file()
    images = class_folder(tmp_path / "images", classes=("a",), per_class=1)
    with pytest.raises(UserError, match=r"takes inputs of shape \[6\], not images"):
        predict_to_csv(
            str(run),
            [str(images)],
            str(tmp_path / "p.csv"),
            access=RunAccess(code_dir=str(PROJECT)),
        )


def test_float_targets_are_a_regression(tmp_path) -> None:
    from nighttune.tasks.tuning.context import trial_context

    cached = load_dataset(spec("linear"), tmp_path)
    assert cached.class_names == [] and cached.num_classes is None
    assert cached.arrays("train")[1].dtype.name == "float32"
    assert sum(cached.num_examples.values()) == 400
    config = load_tune_config(None, {"monitor": "val_mae"})  # the built-in MLP, one output
    assert trial_context(config, cached).objective.direction == "min"
    with pytest.raises(ConfigError, match="use one of: loss, mae, val_loss, val_mae"):
        trial_context(load_tune_config(None, {}), cached)  # val_accuracy: not logged


@pytest.mark.slow
def test_a_regression_tunes_and_exports_without_classes(prefect_harness, tmp_path) -> None:
    from nighttune.flows.tune import tune

    config = load_tune_config(
        None,
        {
            "dataset.builder": "my_data:linear",
            "dataset.code_path": [str(PROJECT)],
            "model.builder": "my_models:build_regressor",
            "model.code_path": [str(PROJECT)],
            "monitor": "val_mae",
            "batch_sizes": [32],
            "patiences": [2, 4],
            "max_epochs": 8,
            "lr_range.steps": 12,
            "export_to": str(tmp_path / "exports"),
            "cache_dir": str(tmp_path / "cache"),
        },
    )
    result = tune(config)
    maes = [r.value("val_mae") for r in result.rows]
    assert result.winner.value("val_mae") == min(m for m in maes if m is not None)
    assert result.winner.value("val_mae") < 0.8  # the targets' spread is about 1.6
    run = Path(result.export.path)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["class_names"] == [] and manifest["outputs"] == "values"
    assert not (run / "plots" / "confusion.png").exists()
    assert "regression" in (run / "report.html").read_text()
    # predict --inputs: one value per example, near the targets
    from nighttune.tasks.core.code import load_builder
    from nighttune.tasks.inference.arrays import predict_inputs_to_csv
    from nighttune.tasks.runs.reader import RunAccess

    x, y = load_builder("my_data:linear", [str(PROJECT)])(n=50, seed=7)["train"]
    np.save(tmp_path / "x.npy", x)
    out = str(tmp_path / "p.csv")
    predict_inputs_to_csv(
        str(run), str(tmp_path / "x.npy"), out, access=RunAccess(code_dir=str(PROJECT))
    )
    with open(tmp_path / "p.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["path", "value", "error"] and len(rows) == 50
    values = np.array([float(r["value"]) for r in rows])
    assert np.mean(np.abs(values - y)) < 0.8
