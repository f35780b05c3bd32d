"""The bad-input matrix: every case in `tests.support.reliability.BAD_INPUTS`, as a user runs it.

Each case is `nighttune ...` in a subprocess, in its own folder (working directory,
HOME, cache and export target): exit status 2, exactly one ``nighttune: error:`` line
containing the case's text, no traceback, no ``latest.json`` and no output file. The
subprocesses run a few at a time in one module fixture; each case is its own test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.harness import ROOT, nighttune_cmd
from tests.support.images import class_folder
from tests.support.reliability import (
    BAD_INPUTS,
    CRAFTED_MANIFESTS,
    DOC,
    OTHER_FAULTS,
    SERVER_FAULTS,
    TRAINING_FAULTS,
    BadInput,
    render,
)

PREFECT_ENDINGS = re.compile(
    r"Task run failed|Finished in state|Encountered exception|Crash detected"
)


def _set_model(run: Path, build) -> None:
    """Replace the run's model.keras and make the manifest's checksum agree with it."""
    from nighttune.tasks.storage.files import sha256_file

    build(run / "model.keras")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["files"]["model.keras"] = sha256_file(run / "model.keras")
    (run / "manifest.json").write_text(json.dumps(manifest))


def _lambda_model(path: Path) -> None:
    import keras

    inputs = keras.Input((16, 16, 1))
    hidden = keras.layers.Lambda(lambda x: x * 2.0)(keras.layers.Flatten()(inputs))
    keras.Model(inputs, keras.layers.Dense(3)(hidden)).save(path)


@pytest.fixture(scope="module")
def places(tmp_path_factory, exported_run) -> dict[str, str]:
    """The folders and runs the cases' placeholders name."""
    root = tmp_path_factory.mktemp("bad-input")
    (root / "empty").mkdir()
    (root / "not-a-run").mkdir()
    class_folder(root / "one-class", classes=("cat",), per_class=3)
    class_folder(root / "images", per_class=2)
    (root / "tune.yaml").touch()
    runs = {}
    for name in ("tampered", "corrupt", "lambda_run"):
        runs[name] = root / name
        shutil.copytree(exported_run, runs[name])
    with open(runs["tampered"] / "model.keras", "ab") as fh:
        fh.write(b"changed after export")
    _set_model(runs["corrupt"], lambda p: p.write_bytes(b"PK\x03\x04 not a keras file"))
    _set_model(runs["lambda_run"], _lambda_model)
    for name, fields in CRAFTED_MANIFESTS.items():
        runs[name] = root / "crafted" / name
        shutil.copytree(exported_run, runs[name])
        manifest = json.loads((runs[name] / "manifest.json").read_text())
        (runs[name] / "manifest.json").write_text(json.dumps(manifest | fields))
    escaping = root / "escaping-target"
    escaping.mkdir()
    (escaping / "latest.json").write_text(json.dumps({"run_id": "../outside"}))
    (root / "a-file").write_text("not a folder")
    return {
        "run": str(exported_run),
        "images": str(root / "images"),
        "an_image": str(next((root / "images").rglob("*.png"))),
        "empty": str(root / "empty"),
        "one_class": str(root / "one-class"),
        "not_a_run": str(root / "not-a-run"),
        "escaping_target": str(escaping),
        "a_file": str(root / "a-file"),
        **{name: str(path) for name, path in runs.items()},
    }


def _argv(case: BadInput, tmp: Path, places: dict[str, str]) -> list[str]:
    names = places | {"tmp": str(tmp), "yaml": str(tmp / "tune.yaml")}
    argv = [arg.format(**names) for arg in case.argv]
    if argv[0] == "tune" and "--export-to" not in argv:
        argv += ["--export-to", str(tmp / "exports")]
    if argv[0] == "predict" and "--out" not in argv:
        argv += ["--out", str(tmp / "predictions.csv")]
    return argv


def _run(case: BadInput, tmp: Path, places: dict[str, str]) -> subprocess.CompletedProcess:
    tmp.mkdir(parents=True)
    if case.yaml is not None:
        project = ROOT / "tests" / "support" / "user_project"  # a user's builders
        (tmp / "tune.yaml").write_text(case.yaml.replace("{project}", str(project)))
    env = dict(
        os.environ,
        HOME=str(tmp),
        NIGHTTUNE_CACHE_DIR=str(tmp / "cache"),
        PYTHONPATH=str(ROOT),
        # Downloads go nowhere: a closed local port as proxy, except for 127.0.0.1.
        HTTPS_PROXY="http://127.0.0.1:9",
        HTTP_PROXY="http://127.0.0.1:9",
        NO_PROXY="127.0.0.1,localhost",
        **dict(case.env),
    )
    return subprocess.run(
        nighttune_cmd(*_argv(case, tmp, places)),
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def outcomes(places, tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """Every case run once, three at a time (most of each is Python importing)."""
    root = tmp_path_factory.mktemp("cases")
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {c.id: pool.submit(_run, c, root / c.id, places) for c in BAD_INPUTS}
    return {cid: (root / cid, future.result()) for cid, future in futures.items()}


def test_the_matrix_is_wide_enough() -> None:
    assert len(BAD_INPUTS) >= 20
    assert len({c.id for c in BAD_INPUTS}) == len(BAD_INPUTS)
    assert {c.area for c in BAD_INPUTS} >= {"flags", "config", "dataset", "S3", "model", "images"}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=lambda c: c.id)
def test_bad_input_exits_2_with_one_line(case: BadInput, outcomes) -> None:
    tmp, result = outcomes[case.id]
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("nighttune: error:")]
    assert len(lines) == 1, result.stderr[-3000:]
    assert case.needle in lines[0], lines[0]
    assert len(lines[0]) < 600, lines[0]  # never the whole input echoed back
    assert "Traceback" not in output
    # Prefect's own lines about the failed task and flow stay in its logs, off the screen.
    assert [line for line in output.splitlines() if PREFECT_ENDINGS.search(line)] == []
    for text in case.absent:
        assert text not in output
    assert not list(tmp.rglob("latest.json"))
    assert not (tmp / "predictions.csv").exists()
    assert not (tmp / "exports").exists() or not any((tmp / "exports").iterdir())
    assert not (tmp / "lr").exists()


def test_reliability_doc_is_current() -> None:
    assert DOC.read_text() == render(), "docs/reliability.md is out of date: run `make docs`"
    for fault in TRAINING_FAULTS + OTHER_FAULTS + SERVER_FAULTS:  # each names a real test
        path, name = fault.test.split("::")
        assert f"def {name}(" in (ROOT / path).read_text(), fault.test


def test_every_model_load_is_safe() -> None:
    import ast

    calls = 0
    for path in [*(ROOT / "tasks").rglob("*.py"), *(ROOT / "flows").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "load_model":
                calls += 1
                safe = {k.arg: k.value for k in node.keywords}.get("safe_mode")
                assert isinstance(safe, ast.Constant) and safe.value is True, (
                    f"{path.name}:{node.lineno}"
                )
    assert calls >= 2  # export's check and predict's load
