"""Shared fixtures. Every test writes under tmp: Prefect's home and results, the
dataset cache and TFDS data; nothing reaches beyond 127.0.0.1."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Before TensorFlow or Prefect are imported anywhere: point their state at a
# throw-away folder for the whole session, and keep them quiet.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="nighttune-tests-"))
atexit.register(shutil.rmtree, _SESSION_HOME, ignore_errors=True)
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

from tasks.core.config import DatasetSpec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def session_home() -> Path:
    return _SESSION_HOME


@pytest.fixture(scope="session")
def digits():
    """The digits dataset cached once for the session (in the session cache)."""
    from tasks.data.datasets import load_dataset

    return load_dataset(DatasetSpec())


@pytest.fixture(scope="session")
def exported_run(tmp_path_factory) -> Path:
    """A real exported run (sweep, trial, export) trained on three classes of PNG files."""
    from tasks.core.config import TuneConfig
    from tasks.data.datasets import load_dataset
    from tasks.runs.export import export_run, new_run_id
    from tasks.tuning.lr_range import stored_lr_range_test
    from tasks.tuning.selection import select_best
    from tasks.tuning.training import train_trial
    from tests.images import class_folder

    root = tmp_path_factory.mktemp("exported")
    data = class_folder(root / "train", per_class=20)
    cache = str(root / "cache")
    config = TuneConfig(
        dataset=DatasetSpec(name=str(data)),
        batch_sizes=(16,),
        patiences=(3,),
        max_epochs=8,
        cache_dir=cache,
        export_to=str(root / "exports"),
    )
    cached = load_dataset(config.dataset, cache)
    sweep = stored_lr_range_test(cached, config.model, 16, config.lr_range, 0, cache)
    rows = train_trial(cached, config, 16, sweep.chosen_lr, sweep.method)
    result = export_run(
        config, cached, [sweep], rows, select_best(rows, "val_accuracy", "max"), new_run_id()
    )
    return Path(result.path)


@pytest.fixture(scope="session")
def prefect_database(tmp_path_factory) -> Path:
    """A Prefect SQLite database with every migration applied, made once per test run.

    Migrating a new database is most of a Prefect server's start (21 s -> 7 s on 2
    cores), so every server the tests start begins from a copy of this one. Under
    pytest-xdist the workers share it: the first to arrive builds it under a lock.
    """
    import fcntl

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    database = shared / "prefect-database" / "prefect.db"
    with open(shared / "prefect-database.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not database.exists():
            staging = shared / "prefect-database.tmp"
            shutil.rmtree(staging, ignore_errors=True)
            prefect = str(Path(sys.executable).parent / "prefect")
            done = subprocess.run(
                [prefect, "server", "database", "upgrade", "-y"],
                env=dict(os.environ, PREFECT_HOME=str(staging)),
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
            staging.rename(database.parent)
    return database


def prefect_home_with(database: Path, home: Path) -> Path:
    """``home`` as a PREFECT_HOME whose database starts as a copy of ``database``."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(database, home / "prefect.db")
    return home


def on_temporary_server(env: dict[str, str], database: Path, home: Path) -> Path:
    """``env`` set for a CLI run on its own temporary Prefect server, whose PREFECT_HOME
    ``home`` starts with a copy of ``database``; returns ``home``."""
    env["PREFECT_HOME"] = str(prefect_home_with(database, home))
    env.pop("PREFECT_API_URL", None)
    return home


# A `nighttune tune` that trains for real but briefly (add batch sizes and a target).
QUICK_TUNE = ("tune", "--patiences", "2", "--max-epochs", "2", "--lr-steps", "20")


@pytest.fixture(scope="session")
def prefect_harness(prefect_database, tmp_path_factory):
    """One temporary Prefect API for every test that needs flows (paid once per worker).

    Prefect's own harness, on a copy of the migrated database instead of a new one.
    """
    from unittest import mock

    from prefect.settings import temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from flows.server import unset_server_setting_updates

    folder = tmp_path_factory.mktemp("harness")
    shutil.copyfile(prefect_database, folder / "prefect-test.db")
    # The harness makes its database in a new mkdtemp() folder: hand it ours.
    with (
        mock.patch("prefect.testing.utilities.mkdtemp", return_value=str(folder)),
        temporary_settings(updates=unset_server_setting_updates()),  # as nighttune's servers
        prefect_test_harness(server_startup_timeout=120),
    ):
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


class Processes:
    """Background processes, each in its own session, all stopped by PID at the end."""

    def __init__(self) -> None:
        self.started: list[tuple[subprocess.Popen, Path]] = []

    def start(self, args: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
        out = open(log, "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started.append((proc, log))
        return proc

    def stop_all(self) -> None:
        for proc, _ in self.started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc, _ in self.started:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def logs(self) -> str:
        return "\n".join(
            f"--- {log}\n{log.read_text(errors='replace')[-3000:]}"
            for _, log in self.started
            if log.exists()
        )


def start_prefect_server(procs: Processes, root: Path, env: dict[str, str], database: Path) -> str:
    """`nighttune server` (`prefect server start` with our settings) on a free port, its
    home under ``root`` with a copy of ``database`` (see `prefect_database`); its API URL
    once up."""
    import urllib.request

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    home = prefect_home_with(database, root / "server-home")
    server_env = dict(env, PREFECT_HOME=str(home), PREFECT_API_URL=api, PYTHONPATH=str(ROOT))
    server_env.pop("PREFECT_RESULTS_LOCAL_STORAGE_PATH", None)
    procs.start(
        nighttune_cmd("server", "--host", "127.0.0.1", "--port", str(port)),
        server_env,
        root,
        root / "server.log",
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2) as reply:
                if reply.status == 200:
                    return api
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("Prefect server did not come up\n" + procs.logs())
        time.sleep(0.5)


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory, prefect_database):
    """A real Prefect server for CLI subprocesses of one module: ``{"api", "procs"}``."""
    procs = Processes()
    try:
        root = tmp_path_factory.mktemp("prefect")
        api = start_prefect_server(procs, root, dict(os.environ), prefect_database)
        yield {"api": api, "procs": procs}
    finally:
        procs.stop_all()


class MotoServer:
    """A real S3 API (moto_server) in its own process on 127.0.0.1, stopped by PID."""

    def __init__(self, log: Path, **env: str) -> None:
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
        from tasks.storage.s3 import client

        return client(self.url)

    def stop(self) -> None:
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
