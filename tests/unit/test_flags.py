"""Flags made from the config models: each setting described once, parsed into config keys."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from pydantic import BaseModel
from typer.testing import CliRunner

from nighttune.flows.flags import (
    LR_FIND_FLAGS,
    TUNE_FLAGS,
    Overrides,
    field_help,
    field_of,
    with_flags,
)
from nighttune.tasks.core.config import TuneConfig
from nighttune.tasks.core.config_file import load_tune_config


def _leaves(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            keys += _leaves(info.annotation, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def test_every_config_field_is_described() -> None:
    missing = [key for key in _leaves(TuneConfig) if not field_of(key).description]
    assert missing == []


@pytest.mark.parametrize("flag", [*TUNE_FLAGS, *LR_FIND_FLAGS], ids=lambda f: f.name)
def test_every_flag_names_real_keys(flag) -> None:
    for key in flag.keys:
        assert key in _leaves(TuneConfig)


def _capture(*flags) -> tuple[typer.Typer, dict[str, Any]]:
    seen: dict[str, Any] = {}
    app = typer.Typer()

    @app.command()
    @with_flags(*flags)
    def command(name: str = "x", overrides: Overrides | None = None) -> None:
        seen.update(overrides or {}, name=name)

    return app, seen


def test_flags_become_dotted_overrides_and_a_valid_config() -> None:
    app, seen = _capture(*TUNE_FLAGS)
    argv = ["--seed", "3", "--batch-sizes", "8,16", "--image-size", "4,5", "--no-tensorboard"]
    argv += ["--lr-method", "valley", "--lr-steps", "20", "--name", "y"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert seen.pop("name") == "y"
    given = {key: value for key, value in seen.items() if value is not None}
    assert given == {
        "seed": 3,
        "dataset.seed": 3,
        "batch_sizes": [8, 16],
        "dataset.image_size": [4, 5],
        "tensorboard": False,
        "lr_range.method": "valley",
        "lr_range.steps": 20,
    }
    config = load_tune_config(None, seen)
    assert config.batch_sizes == (8, 16) and config.dataset.image_size == (4, 5)
    assert config.lr_range.steps == 20 and config.dataset.seed == 3
    assert config.max_epochs == TuneConfig().max_epochs  # not given: the default stands


def test_help_is_the_field_description_with_its_default() -> None:
    app, _ = _capture(*TUNE_FLAGS)
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "300"})
    text = " ".join(result.output.replace("│", " ").split())  # a long help wraps in its box
    for flag in TUNE_FLAGS:
        assert flag.name in result.output
        assert field_help(flag.keys[0]) in text
    assert field_help("batch_sizes").endswith("Default: 32,64,128.")
    assert "Default:" not in field_help("dataset.data_dir").replace("Default: $TFDS", "")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--batch-sizes", "32,x"], "wants comma-separated integers"),
        (["--image-size", "28"], "wants HEIGHT,WIDTH"),
        (["--lr-method", "best"], "'best' is not one of"),
    ],
)
def test_a_malformed_flag_is_a_usage_error(argv: list[str], needle: str) -> None:
    app, seen = _capture(*TUNE_FLAGS)
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2 and needle in result.output and not seen
