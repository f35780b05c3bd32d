"""Shared fixtures. Every test writes under tmp: Prefect's home and results, the
dataset cache and TFDS data; nothing reaches beyond 127.0.0.1."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

# Before TensorFlow or Prefect are imported anywhere: point their state at a
# throw-away folder for the whole session, and keep them quiet.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="nighttune-tests-"))
os.environ.update(
    {
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PREFECT_HOME": str(_SESSION_HOME / "prefect"),
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(_SESSION_HOME / "prefect" / "storage"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "NIGHTTUNE_CACHE_DIR": str(_SESSION_HOME / "cache"),
        "TFDS_DATA_DIR": str(_SESSION_HOME / "tensorflow_datasets"),
    }
)
os.environ.pop("PREFECT_API_URL", None)

import pytest  # noqa: E402

from tasks.config import DatasetSpec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def session_home() -> Path:
    return _SESSION_HOME


@pytest.fixture(scope="session")
def digits():
    """The digits dataset cached once for the session (in the session cache)."""
    from tasks.data import load_dataset

    return load_dataset(DatasetSpec())


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect API for every test that needs flows (~12 s, paid once)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for `nighttune` subprocesses: a fresh cache and HOME under tmp_path."""
    env = dict(os.environ)
    env["NIGHTTUNE_CACHE_DIR"] = str(tmp_path / "cache")
    env["HOME"] = str(tmp_path)
    env["PYTHONPATH"] = str(ROOT)
    return env


def nighttune_cmd(*args: str) -> list[str]:
    """Run the CLI with this interpreter (the console script may not be on PATH)."""
    return [sys.executable, "-m", "flows.cli", *args]
