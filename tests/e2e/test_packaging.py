"""One distribution namespace: the built wheel puts only `nighttune` at the top of
site-packages, and a user's modules named like ours (`tasks`, `flows`, `tune`, ...)
are the user's, in the CLI as on a worker (tests/e2e/test_deployments.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.support.harness import ROOT, nighttune_cmd

NAMED_LIKE_US = ROOT / "tests" / "support" / "named_like_us"


def build_wheel(out: Path) -> Path:
    """The wheel of the working tree, built offline with this environment's setuptools."""
    args = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    args += ["--no-index", "--disable-pip-version-check", "-q", "-w", str(out), str(ROOT)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (wheel,) = out.glob("nighttune-*.whl")
    return wheel


def fresh_venv(root: Path) -> tuple[Path, Path]:
    """A new virtual environment whose dependencies are this one's (a path line in a
    .pth file: nothing is downloaded, and this environment's editable install of
    nighttune is not seen, since .pth files are read only in site folders)."""
    venv.create(root, with_pip=False)
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    site = Path(purelib)
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python, site


@pytest.mark.slow
def test_the_wheel_installs_only_nighttune_and_tunes(tmp_path) -> None:
    wheel = build_wheel(tmp_path / "wheels")
    python, site = fresh_venv(tmp_path / "venv")
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps"]
    install += ["--no-index", "--disable-pip-version-check", "-q", str(wheel)]
    done = subprocess.run(install, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    top = sorted(p.name for p in site.iterdir())
    assert top == ["dependencies.pth", "nighttune", "nighttune-0.1.0.dist-info"], top
    assert sorted(p.name for p in (site / "nighttune").iterdir()) == ["flows", "tasks"]
    packages = {p.parent.relative_to(site).as_posix() for p in site.rglob("__init__.py")}
    sources = {
        "nighttune/" + p.parent.relative_to(ROOT).as_posix()
        for folder in ("flows", "tasks")
        for p in (ROOT / folder).rglob("__init__.py")
    }
    assert packages == sources  # every package of the tree, none forgotten in pyproject

    # From a folder that is not the repository, the generic names are free again.
    where = subprocess.run(
        [str(python), "-c", "import nighttune.tasks as t; print(t.__file__); import tasks"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(site / "nighttune" / "tasks")), where.stdout
    assert "No module named 'tasks'" in where.stderr

    script = tmp_path / "venv" / "bin" / "nighttune"
    helped = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "tune" in helped.stdout, helped.stderr
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    args = ["tune", "--batch-sizes", "32", "--patiences", "2", "--max-epochs", "2"]
    args += ["--lr-steps", "20", "--export-to", "exports", "--cache-dir", "cache"]
    tuned = subprocess.run(
        [str(script), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert tuned.returncode == 0, tuned.stdout[-2000:] + tuned.stderr[-2000:]
    assert "winner      batch size 32" in tuned.stdout


def test_user_modules_named_like_ours_are_the_users(cli_env, tmp_path) -> None:
    """A model builder in `tasks.py` and a data builder in `flows.py`, importing the
    user's `data`, `models`, `predict`, `trial` and `tune`: a tune trains with them."""
    config = tmp_path / "tune.yaml"
    config.write_text(
        f"code_dir: {NAMED_LIKE_US}\n"
        "dataset: {builder: 'flows:blobs'}\n"
        "model: {builder: 'tasks:build', kwargs: {width: 8}}\n"
        "batch_sizes: [32]\npatiences: [2]\nmax_epochs: 2\nlr_range: {steps: 20}\n"
        "export_to: exports\n"
    )
    cli_env["PREFECT_HOME"] = str(tmp_path / "prefect")
    done = subprocess.run(
        nighttune_cmd("tune", "--config", str(config)),
        env=cli_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    latest = json.loads((tmp_path / "exports" / "latest.json").read_text())["run_id"]
    manifest = json.loads((tmp_path / "exports" / latest / "manifest.json").read_text())
    assert manifest["model"]["builder"] == "tasks:build"
    assert manifest["model"]["code"]["file"] == "tasks.py"
