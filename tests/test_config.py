from __future__ import annotations

import pytest

from tasks.config import DatasetSpec, parse
from tasks.errors import ConfigError


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
        ({"val_fraction": 0.7}, "dataset.val_fraction: Input should be less than 0.5 (got 0.7)"),
        ({"image_size": [0, 28]}, "dataset.image_size: must be two positive integers"),
        ({"channels": 2}, "dataset.channels"),
        ({"name": "  "}, "dataset.name: must name a dataset"),
    ],
)
def test_parse_errors_are_one_line(data: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(DatasetSpec, data, where="dataset.")
    assert expected in str(err.value)
    assert "\n" not in str(err.value)
