"""The worker image: lint-clean, non-root, every copied path present (no Docker engine here)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.harness import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    done = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_copied_path_exists() -> None:
    sources = []
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY "):
            sources += line.split()[1:-1]
    assert sources, "no COPY lines found"
    for source in sources:
        assert (ROOT / source).exists(), source


def test_image_runs_a_worker_as_a_non_root_user() -> None:
    assert DOCKERFILE.startswith("#") and "FROM python:3.11-slim" in DOCKERFILE
    user = re.findall(r"^USER (\S+)", DOCKERFILE, flags=re.M)
    assert user and not user[-1].startswith(("root", "0"))
    assert "ARG TF_EXTRA=cpu" in DOCKERFILE and '".[${TF_EXTRA}]"' in DOCKERFILE
    assert 'prefect worker start --pool \\"$NIGHTTUNE_POOL\\"' in DOCKERFILE
