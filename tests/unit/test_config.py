from __future__ import annotations

import pytest

from nighttune.tasks.core.config import DatasetSpec, ModelSpec
from nighttune.tasks.core.config_file import parse
from nighttune.tasks.core.errors import ConfigError
from nighttune.tasks.core.objective import Objective


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("digits", "digits"),
        ("mnist", "catalog"),
        ("cifar10:3.0.2", "catalog"),
        ("./images", "folder"),
        ("~/pics", "folder"),
        ("/data/pets", "folder"),
        ("a/b", "folder"),
    ],
)
def test_dataset_kind(name: str, kind: str) -> None:
    assert DatasetSpec(name=name).kind == kind


def test_existing_folder_without_slash_is_a_folder(tmp_path, monkeypatch) -> None:
    (tmp_path / "pets").mkdir()
    monkeypatch.chdir(tmp_path)
    assert DatasetSpec(name="pets").kind == "folder"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"nmae": "mnist"}, "unknown key 'dataset.nmae'"),
        ({"val_fraction": 0.7}, "dataset.val_fraction: should be below 0.5 (got 0.7)"),
        ({"image_size": [0, 28]}, "dataset.image_size: must be two positive integers"),
        ({"channels": 2}, "dataset.channels"),
        ({"name": "  "}, "dataset.name: is empty"),
    ],
)
def test_parse_errors_are_one_line(data: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(DatasetSpec, data, where="dataset.")
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- TuneConfig

from nighttune.tasks.core.config_file import load_tune_config  # noqa: E402


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"batch_sizes": []}, "batch_sizes: needs at least one value"),
        ({"batch_sizes": [32, 32, 64]}, "batch_sizes: has duplicates: 32"),
        ({"batch_sizes": [0, 64]}, "batch_sizes: every value must be a positive integer"),
        ({"patiences": [-1]}, "patiences: every value must be a positive integer"),
        ({"patiences": [3, 3]}, "patiences: has duplicates: 3"),
        ({"lr_range.start_lr": 1.0, "lr_range.end_lr": 0.1}, "start_lr (1) must be below end_lr"),
        ({"max_epochs": 0}, "max_epochs: should be at least 1 (got 0)"),
        (
            {"model.kind": "transformer"},
            "model.kind: should be one of: mlp, cnn (got 'transformer')",
        ),
        ({"lr_range.method": "best"}, "lr_range.method"),
        ({"dispatch": "cluster"}, "dispatch"),
    ],
)
def test_tune_config_refuses_with_one_line(overrides: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_tune_config(None, overrides)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_yaml_then_flags(tmp_path) -> None:
    path = tmp_path / "tune.yaml"
    path.write_text(
        "dataset:\n  name: digits\nbatch_sizes: [16, 32]\npatiences: [2]\n"
        "lr_range:\n  method: steepest\nmax_epochs: 7\n"
    )
    config = load_tune_config(str(path), {"max_epochs": 9, "seed": None, "lr_range.end_lr": 0.5})
    assert config.batch_sizes == (16, 32) and config.patiences == (2,)
    assert config.max_epochs == 9  # the flag wins
    assert config.seed == 0  # an unset flag changes nothing
    assert config.lr_range.method == "steepest" and config.lr_range.end_lr == 0.5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("batch_size: [32]\n", "unknown key 'batch_size'"),
        ("model:\n  units: 3\n", "unknown key 'model.units'"),
        ("- 1\n- 2\n", "must be a mapping"),
        ("batch_sizes: [32\n", "is not valid YAML at line"),
    ],
)
def test_bad_yaml_files(tmp_path, text: str, expected: str) -> None:
    path = tmp_path / "tune.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[")):
        load_tune_config(str(path), {})


def test_missing_config_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot read config .*No such file"):
        load_tune_config(str(tmp_path / "nope.yaml"), {})


def test_the_objective_direction_comes_from_the_keras_metric(monkeypatch) -> None:
    from nighttune.tasks.tuning import objective

    def resolve(monitor: str = "val_accuracy", mode: str = "auto") -> Objective:
        return objective.resolve_objective(ModelSpec(), monitor=monitor, monitor_mode=mode)

    assert resolve().direction == "max"  # SparseCategoricalAccuracy: "up"
    assert resolve("val_loss").direction == "min"
    assert resolve("accuracy").column == "val_accuracy"
    assert resolve("val_loss", "max").direction == "max"
    # Not from the name: a metric called "val_accuracy" that says "down" is minimized.
    real = objective.metric_directions(ModelSpec())
    monkeypatch.setattr(objective, "metric_directions", lambda spec: real | {"val_accuracy": "min"})
    assert resolve().direction == "min"
    monkeypatch.setattr(objective, "metric_directions", lambda spec: real | {"val_accuracy": None})
    with pytest.raises(ConfigError, match="set monitor_mode: max or min"):
        resolve()


def test_unknown_monitor_names_what_the_model_logs() -> None:
    from nighttune.tasks.tuning.objective import resolve_objective

    resolve_objective(ModelSpec(), monitor="val_loss")
    with pytest.raises(ConfigError) as err:
        resolve_objective(ModelSpec(), monitor="sparse_categorical_accuracy")
    message = str(err.value)
    assert "'sparse_categorical_accuracy' is not a metric the model logs" in message
    for name in ("accuracy", "loss", "val_accuracy", "val_loss"):
        assert name in message


@pytest.mark.parametrize("name", ["seed_mnist.yaml", "digits_cnn.yaml", "image_folder.yaml"])
def test_example_configs_are_valid(name: str) -> None:
    from tests.support.harness import ROOT

    config = load_tune_config(str(ROOT / "examples" / name), {})
    assert config.export_to.startswith("./exports/")


def test_alias_bombs_are_refused_before_they_expand(tmp_path) -> None:
    import time

    from tests.support.reliability import ALIAS_BOMB

    path = tmp_path / "bomb.yaml"
    for where in ("monitor: *a8\n", "dataset:\n  name: *a8\n"):
        path.write_text(ALIAS_BOMB + where)
        started = time.perf_counter()
        with pytest.raises(ConfigError, match="expands to over 100000 values"):
            load_tune_config(str(path), {})
        assert time.perf_counter() - started < 30  # not minutes (a hang fails, not a timing)
    path.write_text("a: &x [1, 2]\nmonitor: val_accuracy\nbatch_sizes: [32]\n")
    with pytest.raises(ConfigError, match="unknown key 'a'"):  # small aliases are fine
        load_tune_config(str(path), {})


def test_errors_never_echo_a_large_value(tmp_path) -> None:
    path = tmp_path / "tune.yaml"
    path.write_text("monitor: [" + ", ".join(["x" * 50] * 5000) + "]\n")
    with pytest.raises(ConfigError) as caught:
        load_tune_config(str(path), {})
    assert "monitor: should be text such as val_accuracy (got [" in str(caught.value)
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(b"monitor: \xff\xfe\n", "is not UTF-8 text"), (b"#" * (2**20 + 1), "is over 1048576 bytes")],
)
def test_config_files_that_are_not_configs(tmp_path, raw: bytes, expected: str) -> None:
    path = tmp_path / "tune.yaml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError, match=expected):
        load_tune_config(str(path), {})


def test_deep_merge_keeps_what_the_partial_config_does_not_say():
    from nighttune.tasks.core.config_file import deep_merge

    base = {
        "dispatch": "deployments",
        "export_to": "/shared",
        "lr_range": {"method": "minimum"},
        "batch_sizes": [32, 64, 128],
    }
    given = {"batch_sizes": [32], "lr_range": {"steps": 20}}
    merged, keys = deep_merge(base, given)
    assert merged == base | {"batch_sizes": [32], "lr_range": {"method": "minimum", "steps": 20}}
    assert keys == ["batch_sizes", "lr_range.steps"]
    assert base["lr_range"] == {"method": "minimum"}  # not changed in place


def test_every_mistake_of_a_file_is_a_line_in_yamls_words(tmp_path) -> None:
    """A file with several mistakes: each said once, as what the key wants (a list, an
    integer, one of some words) with an example, never as a Python type."""
    path = tmp_path / "tune.yaml"
    path.write_text(
        "batch_sizes: 32\nmax_epochs: many\npatience: [3]\npatiences: [3, x]\n"
        "dataset: {image_size: [28], seed: -1}\nmodel: {kind: transformer}\n"
        "monitor_mode: maxx\ntensorboard: maybe\nnotify_url: 5\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_tune_config(str(path), {})
    lines = str(caught.value).splitlines()
    assert sorted(lines) == sorted(
        [
            "batch_sizes: should be a list of integers such as [32, 64, 128] (got 32)",
            "max_epochs: should be an integer such as 30 (got 'many')",
            "unknown key 'patience'; remove it or check its spelling",
            "patiences: should be a list of integers such as [3, 6, 10] (got [3, 'x'])",
            "dataset.image_size: should be a list of two integers such as [28, 28] (got [28])",
            "dataset.seed: should be at least 0 (got -1)",
            "model.kind: should be one of: mlp, cnn (got 'transformer')",
            "monitor_mode: should be one of: auto, max, min (got 'maxx')",
            "tensorboard: should be true or false (got 'maybe')",
            "notify_url: should be text",  # a secret's key never repeats its value
        ]
    )
    assert not [line for line in lines if "Input should" in line or "tuple" in line]


def test_a_section_that_is_not_a_mapping_says_what_it_holds(tmp_path) -> None:
    path = tmp_path / "tune.yaml"
    path.write_text("model: cnn\n")
    with pytest.raises(ConfigError) as caught:
        load_tune_config(str(path), {})
    assert (
        str(caught.value)
        == "model: should be a mapping of keys (kind: ..., builder: ...) (got 'cnn')"
    )


@pytest.mark.parametrize(
    ("yaml", "expected"),
    [
        (
            "dataset: {name: mnist, builder: 'my_data:wine'}\n",
            ["dataset.name (mnist) and dataset.builder (my_data:wine) both say what to train on"],
        ),
        (
            "model: {kind: cnn, builder: 'my_models:small', hidden_units: [8]}\n",
            [
                "model.kind (cnn) and model.builder (my_models:small) both say what model",
                "model.hidden_units shapes the built-in models, not model.builder's",
            ],
        ),
        (
            "dataset: {builder: 'my_data:wine', image_size: [28, 28], data_dir: /d}\n",
            [
                "dataset.data_dir is where TFDS finds catalog datasets",
                "dataset.image_size resizes catalog datasets and image folders",
            ],
        ),
        ("model: {filters: [8]}\n", ["model.filters sets the cnn's conv blocks"]),
        ("model: {kwargs: {width: 3}}\n", ["model.kwargs are passed to model.builder"]),
        ("dataset: {kwargs: {n: 3}}\n", ["dataset.kwargs are passed to dataset.builder"]),
    ],
)
def test_keys_that_contradict_each_other_are_refused(tmp_path, yaml: str, expected) -> None:
    """Two keys that answer one question differently: one line each, never settled
    silently (the builder used to win over the name without a word)."""
    path = tmp_path / "tune.yaml"
    path.write_text(yaml)
    with pytest.raises(ConfigError) as caught:
        load_tune_config(str(path), {})
    lines = str(caught.value).splitlines()
    assert len(lines) == len(expected), lines
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(start), lines


def test_a_flag_that_contradicts_the_file_is_refused_too(tmp_path) -> None:
    path = tmp_path / "tune.yaml"
    path.write_text("dataset: {builder: 'my_data:wine'}\nbatch_sizes: 32\n")
    with pytest.raises(ConfigError) as caught:
        load_tune_config(str(path), {"dataset.name": "mnist"})  # --dataset mnist
    assert str(caught.value).splitlines() == [
        "dataset.name (mnist) and dataset.builder (my_data:wine) both say what to train on; "
        "keep one",
        "batch_sizes: should be a list of integers such as [32, 64, 128] (got 32)",
    ]


def test_defaults_contradict_nothing(tmp_path) -> None:
    path = tmp_path / "tune.yaml"
    path.write_text("dataset: {builder: 'my_data:wine'}\nmodel: {kind: cnn, filters: [8]}\n")
    config = load_tune_config(str(path), {})
    assert config.dataset.kind == "builder" and config.model.filters == (8,)
