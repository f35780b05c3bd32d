"""Batch prediction on real image files: every format, broken files, loops, exit codes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from nighttune.tasks.data.images import find_images, load_image
from nighttune.tasks.inference.predict import predict_to_csv
from tests.support.harness import nighttune_cmd
from tests.support.images import class_folder, pattern, write_image


@pytest.fixture(scope="module")
def run_dir(exported_run) -> Path:
    return exported_run


@pytest.fixture
def mixed(tmp_path) -> Path:
    """Good files of every supported kind, broken ones, nesting, a loop, spaces."""
    root = tmp_path / "incoming images"
    good = [
        ("a gray.png", "L"),
        ("b.PNG", "RGBA"),
        ("c.jpg", "RGB"),
        ("d.JPEG", "L"),
        ("e.bmp", "RGB"),
        ("f.gif", "L"),
        ("g16.png", "I;16"),
        ("h.png", "LA"),
    ]
    for i, (name, mode) in enumerate(good):
        write_image(root / ("deep/er" if i % 2 else "") / name, pattern(i % 3, seed=i), mode)
    (root / "broken").mkdir()
    (root / "broken" / "zero.png").write_bytes(b"")
    png = (root / "a gray.png").read_bytes()
    (root / "broken" / "truncated.png").write_bytes(png[: len(png) // 2])
    (root / "broken" / "not an image.jpg").write_text("just text")
    (root / "broken" / "gone.png").symlink_to(root / "nowhere.png")  # unreadable
    (root / "deep" / "loop").symlink_to(root, target_is_directory=True)
    (root / "notes.txt").write_text("ignored: not an image extension")
    return root


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_every_file_once_with_errors_as_rows(run_dir, mixed, tmp_path) -> None:
    out = tmp_path / "out" / "predictions.csv"
    summary = predict_to_csv(str(run_dir), [str(mixed)], str(out), batch_size=3)
    rows = read_rows(out)
    assert (summary.files, summary.predicted, summary.errors) == (12, 8, 4)
    assert [r["path"] for r in rows] == sorted(r["path"] for r in rows)  # stable order
    assert len({r["path"] for r in rows}) == 12  # the loop added nothing twice
    errors = {Path(r["path"]).name: r["error"] for r in rows if r["error"]}
    assert errors["zero.png"] == "empty file"
    assert errors["truncated.png"].startswith("cannot decode")
    assert errors["not an image.jpg"].startswith("cannot decode")
    assert errors["gone.png"].startswith("cannot read")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {r["label"] for r in rows if not r["error"]} <= set(manifest["class_names"])
    assert list(out.parent.iterdir()) == [out]  # no temporary file left


def assert_rows_match_the_model(run_dir: Path, rows: list[dict[str, str]]) -> None:
    """Each predicted row is what the model says of `load_image` of its file."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    model = keras.models.load_model(run_dir / "model.keras", safe_mode=True)
    shape = tuple(manifest["input_shape"])
    for row in rows:
        if row["error"]:
            continue
        array = load_image(row["path"], shape)  # what training applies to a file
        probs = tf.nn.softmax(model.predict(array[None], verbose=0))[0].numpy()
        order = np.argsort(-probs)
        assert row["label"] == manifest["class_names"][order[0]]
        assert float(row["confidence"]) == pytest.approx(probs[order[0]], abs=2e-6)
        assert row["label_2"] == manifest["class_names"][order[1]]


def test_predictions_equal_model_predict_on_preprocessed_arrays(run_dir, mixed, tmp_path) -> None:
    out = tmp_path / "p.csv"
    predict_to_csv(str(run_dir), [str(mixed)], str(out), batch_size=4, top_k=2)
    assert_rows_match_the_model(run_dir, read_rows(out))


@pytest.mark.parametrize("first_size", [16, 24], ids=["model-sized first", "other size first"])
def test_images_of_other_sizes_are_resized_not_refused(run_dir, tmp_path, first_size) -> None:
    # The model takes 16x16; the fast path bets on that size after the first file.
    root = tmp_path / "sizes"
    sizes = [first_size, 16, 16, 16, 16, 40, 16, 16, 16, 9, 16, 16, 16, 16]
    for i, size in enumerate(sizes):
        write_image(root / f"{i:02d}.png", pattern(i % 3, size=size, seed=i))
    out = tmp_path / "sizes.csv"
    summary = predict_to_csv(str(run_dir), [str(root)], str(out), batch_size=4, top_k=2)
    assert (summary.predicted, summary.errors) == (len(sizes), 0)
    assert_rows_match_the_model(run_dir, read_rows(out))


def test_predictions_are_right_on_held_out_images(run_dir, tmp_path) -> None:
    fresh = class_folder(tmp_path / "fresh", per_class=5)  # new noise, same classes
    out = tmp_path / "fresh.csv"
    predict_to_csv(str(run_dir.parent / "latest"), [str(fresh)], str(out))
    rows = read_rows(out)
    right = sum(Path(r["path"]).parent.name == r["label"] for r in rows)
    assert right / len(rows) >= 0.8


def test_several_folders_and_overlaps(run_dir, tmp_path) -> None:
    a = class_folder(tmp_path / "a", per_class=2)
    assert len(find_images([str(a), str(a / "cat")]).paths) == 6  # the overlap counts once


def test_cli_predict_writes_a_row_per_file(run_dir, mixed, tmp_path, cli_env) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            nighttune_cmd("predict", *args),
            env=cli_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )

    done = cli("--model", str(run_dir), "--images", str(mixed), "--out", "p.csv")
    assert done.returncode == 0, done.stderr
    assert "files       12" in done.stdout and "errors      4" in done.stdout
    assert len(read_rows(tmp_path / "p.csv")) == 12


def test_predict_flow_reports_progress(prefect_harness, run_dir, mixed, tmp_path) -> None:
    from prefect.client.orchestration import get_client

    from nighttune.flows.predict import predict

    summary = predict(str(run_dir), [str(mixed)], str(tmp_path / "flow.csv"), batch_size=4)
    assert summary.files == 12 and (tmp_path / "flow.csv").is_file()
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
    progress = [a for a in artifacts if a.type == "progress" and a.key == "predict-progress"]
    assert progress and float(progress[0].data) == 100.0


def test_unreadable_when_permissions_apply(run_dir, tmp_path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file: permission errors cannot happen here")
    root = class_folder(tmp_path / "imgs", per_class=1)
    locked = root / "cat" / "img 000.png"
    locked.chmod(0)
    out = tmp_path / "p.csv"
    predict_to_csv(str(run_dir), [str(root)], str(out))
    (row,) = [r for r in read_rows(out) if r["path"] == str(locked)]
    assert row["error"].startswith("cannot read")


def test_same_rows_whatever_the_batch_size(run_dir, tmp_path) -> None:
    # Many broken files spread out: strict batches redone file by file, then the
    # tolerant pipeline; every batch size must give the same rows.
    root = class_folder(tmp_path / "imgs", per_class=12)
    for i in range(0, 36, 5):
        (root / "dog" / f"img {i:03d} broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    outputs = []
    for batch_size in (1, 4, 7, 256):
        out = tmp_path / f"b{batch_size}.csv"
        summary = predict_to_csv(str(run_dir), [str(root)], str(out), batch_size=batch_size)
        assert (summary.files, summary.errors) == (44, 8)
        outputs.append(read_rows(out))
    # The same files, labels and errors; the confidence (6 decimals) within float32's
    # noise: a matrix product's sums run in another order for another batch size.
    for rows in outputs[1:]:
        assert [(r["path"], r["label"], r["error"]) for r in rows] == [
            (r["path"], r["label"], r["error"]) for r in outputs[0]
        ]
        for row, first in zip(rows, outputs[0], strict=True):
            assert (row["confidence"] == first["confidence"]) or abs(
                float(row["confidence"]) - float(first["confidence"])
            ) <= 2e-6


def test_default_batch_size_follows_the_image_size() -> None:
    from nighttune.tasks.inference.predict import auto_batch_size

    assert auto_batch_size((28, 28, 1)) == 1024  # capped
    assert auto_batch_size((64, 64, 3)) == 341  # 16 MiB of float32 input
    assert auto_batch_size((512, 512, 3)) == 32  # at least 32


def test_a_row_is_the_same_cells_for_a_prediction_and_an_error() -> None:
    from nighttune.tasks.inference.rows import PredictionRow, header

    good = PredictionRow("a.png", ("cat", "dog"), ("0.900000", "0.100000"))
    bad = PredictionRow.failed("b.png", "empty file")
    assert header(2) == ["path", "label", "confidence", "label_2", "confidence_2", "error"]
    assert good.cells(2) == ["a.png", "cat", "0.900000", "dog", "0.100000", ""]
    assert bad.cells(2) == ["b.png", "", "", "", "", "empty file"]
    assert len(bad.cells(1)) == len(header(1))


def test_image_files_are_taken_as_well_as_folders(run_dir, tmp_path) -> None:
    root = class_folder(tmp_path / "imgs", per_class=2)
    one = sorted(root.rglob("*.png"))[0]
    out = tmp_path / "p.csv"
    summary = predict_to_csv(str(run_dir), [str(one)], str(out))
    assert summary.files == 1 and [r["path"] for r in read_rows(out)] == [str(one)]
    # A file also under a folder given is predicted once.
    summary = predict_to_csv(str(run_dir), [str(one), str(root)], str(out))
    assert summary.files == len(list(root.rglob("*.png"))) == 6
