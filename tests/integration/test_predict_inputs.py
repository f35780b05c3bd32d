"""`predict --inputs`: an exported run over a .npy or .csv of examples, one row each."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import keras
import numpy as np
import pytest

from nighttune.tasks.core.errors import UserError
from nighttune.tasks.inference.arrays import predict_inputs_to_csv
from tests.support.harness import nighttune_cmd


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def examples(exported_run) -> tuple[np.ndarray, np.ndarray]:
    """Twelve examples of the run's input shape, and the labels its model gives them."""
    shape = json.loads((exported_run / "manifest.json").read_text())["input_shape"]
    x = np.random.default_rng(0).random((12, *shape), dtype=np.float32)
    model = keras.models.load_model(exported_run / "model.keras", safe_mode=True)
    names = json.loads((exported_run / "manifest.json").read_text())["class_names"]
    return x, np.array(names)[np.argmax(model.predict(x, verbose=0), axis=1)]


def test_a_npy_gives_the_models_labels_in_order(exported_run, examples, tmp_path) -> None:
    x, labels = examples
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "p.csv"
    summary = predict_inputs_to_csv(
        str(exported_run), str(tmp_path / "x.npy"), str(out), batch_size=5, top_k=2
    )
    rows = read_rows(out)
    assert (summary.files, summary.predicted, summary.errors) == (12, 12, 0)
    assert summary.unit == "examples"
    assert [r["path"] for r in rows] == [f"{tmp_path / 'x.npy'}:{i}" for i in range(12)]
    assert [r["label"] for r in rows] == labels.tolist()
    assert list(rows[0]) == ["path", "label", "confidence", "label_2", "confidence_2", "error"]


def test_csv_lines_are_examples_and_bad_lines_are_rows(exported_run, examples, tmp_path) -> None:
    x, labels = examples
    flat = x.reshape(len(x), -1)
    lines = [[f"f{i}" for i in range(flat.shape[1])], *[[repr(float(v)) for v in r] for r in flat]]
    lines[3][5] = "oops"  # example 2
    lines[5][0] = "nan"  # example 4
    lines[7] = lines[7][:-1]  # example 6: one value short
    path = tmp_path / "x.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(lines)
    out = tmp_path / "p.csv"
    summary = predict_inputs_to_csv(str(exported_run), str(path), str(out), batch_size=4)
    rows = read_rows(out)
    assert (summary.files, summary.predicted, summary.errors) == (12, 9, 3)
    assert rows[2]["error"] == "column 6 is 'oops', not a number"
    assert rows[4]["error"] == "column 1 is nan, not a finite number"
    assert rows[6]["error"] == f"has {flat.shape[1] - 1} values; the model takes {flat.shape[1]}"
    good = [i for i in range(12) if i not in (2, 4, 6)]
    assert [rows[i]["label"] for i in good] == labels[good].tolist()


def test_a_npy_with_a_nan_example_is_an_error_row(exported_run, examples, tmp_path) -> None:
    x = examples[0].copy()
    x[3, 0] = np.inf
    np.save(tmp_path / "x.npy", x)
    predict_inputs_to_csv(str(exported_run), str(tmp_path / "x.npy"), str(tmp_path / "p.csv"))
    rows = read_rows(tmp_path / "p.csv")
    assert [r["error"] for r in rows] == [""] * 3 + ["not a finite number"] + [""] * 8


@pytest.mark.parametrize(
    ("write", "needle"),
    [
        (lambda p: np.save(p / "x.npy", np.zeros((3, 5))), "holds an array of shape [3, 5]"),
        (lambda p: np.save(p / "x.npy", np.array(["a", "b"])), "holds <U1 values"),
        (lambda p: (p / "x.npy").write_bytes(b"not numpy"), "not a NumPy .npy file"),
        (lambda p: (p / "x.csv").write_text("1,2,3\n4,5,6\n"), "its rows have 3 values"),
        (lambda p: (p / "x.txt").write_text("1,2\n"), "give a .npy or .csv file"),
    ],
)
def test_a_malformed_inputs_file_is_one_line(exported_run, tmp_path, write, needle) -> None:
    write(tmp_path)
    (name,) = [p.name for p in tmp_path.iterdir()]
    with pytest.raises(UserError, match="^--inputs ") as raised:
        predict_inputs_to_csv(str(exported_run), str(tmp_path / name), str(tmp_path / "p.csv"))
    assert needle in str(raised.value) and "\n" not in str(raised.value)


def test_the_cli_wants_images_or_inputs_and_says_so(exported_run, examples, tmp_path) -> None:
    np.save(tmp_path / "x.npy", examples[0])
    base = ["predict", "--model", str(exported_run), "--out", str(tmp_path / "p.csv")]
    for extra in ([], ["--inputs", "x.npy", "--images", "."], ["--inputs", "missing.csv"]):
        done = subprocess.run(
            nighttune_cmd(*base, *extra), capture_output=True, text=True, cwd=tmp_path, timeout=300
        )
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and done.stderr.count("error:") == 1
    done = subprocess.run(
        nighttune_cmd(*base, "--inputs", "x.npy"),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "examples    12" in done.stdout and "examples/s" in done.stdout
