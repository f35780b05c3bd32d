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
        # Never real AWS: test keys, no profile files; S3 tests use moto_server.
        "AWS_ACCESS_KEY_ID": "testing-key-id",
        "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(_SESSION_HOME / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(_SESSION_HOME / "no-aws-credentials"),
    }
)
# An S3 call without an explicit endpoint goes to a closed local port, never to AWS.
os.environ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"
os.environ.pop("AWS_PROFILE", None)
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


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    """A real S3 API (moto_server) in its own process on 127.0.0.1, stopped by PID."""

    def __init__(self, log: Path, **env: str) -> None:
        import subprocess
        import time
        import urllib.request

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        server_env = dict(os.environ, **env)
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "moto_server"),
                "-H",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
            env=server_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.url + "/moto-api/", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"moto_server did not start; see {log}") from None
                time.sleep(0.2)

    def client(self):
        from tasks.s3 import client

        return client(self.url)

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture(scope="session")
def s3_server(session_home: Path):
    """moto_server for the session (the test credentials are in the environment)."""
    server = MotoServer(session_home / "moto.log")
    yield server
    server.stop()
