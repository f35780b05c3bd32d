"""Shared fixtures. Every test writes under tmp: Prefect's home and results, the
dataset cache and TFDS data; nothing reaches beyond 127.0.0.1."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
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
# pytest-xdist's workers run with COLUMNS=80, which the CLI's final screen would fit
# (flows.screens.screen_width): `nighttune` in a test writes whole lines, as into any
# log, unless the test gives it a width.
os.environ.pop("COLUMNS", None)

import pytest  # noqa: E402

from nighttune.tasks.core.config import DatasetSpec  # noqa: E402
from tests.support.harness import (  # noqa: E402
    ROOT,
    MotoServer,
    Processes,
    start_prefect_server,
)


@pytest.fixture(scope="session")
def session_home() -> Path:
    return _SESSION_HOME


@pytest.fixture(scope="session")
def digits():
    """The digits dataset cached once for the session (in the session cache)."""
    from nighttune.tasks.data.datasets import load_dataset

    return load_dataset(DatasetSpec())


@pytest.fixture(scope="session")
def digits_in_blocks(tmp_path_factory):
    """Digits cached in blocks of 64 examples (20 train blocks instead of one), so that
    streaming past a memory budget reads many blocks and windows."""
    from nighttune.tasks.data import blocks
    from nighttune.tasks.data.datasets import load_dataset

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(blocks, "BLOCK_BYTES", 64 * 64)  # 64 uint8 images of 8x8
        cached = load_dataset(DatasetSpec(), tmp_path_factory.mktemp("blocks"))
    assert cached.block_rows == 64 and cached.blocks("train") == 20
    return cached


@pytest.fixture(scope="session")
def exported_run(tmp_path_factory) -> Path:
    """A real exported run (sweep, trial, export) trained on three classes of PNG files."""
    from nighttune.flows.target import export_target
    from nighttune.tasks.core.config import TuneConfig
    from nighttune.tasks.data.datasets import load_dataset
    from nighttune.tasks.runs.export import export_run, new_run_id
    from nighttune.tasks.tuning.context import trial_context
    from nighttune.tasks.tuning.lr_range import stored_lr_range_test
    from nighttune.tasks.tuning.selection import select_best
    from nighttune.tasks.tuning.training import train_trial
    from tests.support.images import class_folder

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
    sweep = stored_lr_range_test(
        cached, config.model, 16, spec=config.lr_range, seed=0, cache_dir=cache
    )
    run = trial_context(config, cached)
    rows = train_trial(cached, run, 16, lr=sweep.chosen_lr, lr_method=sweep.method)
    result = export_run(
        config,
        cached,
        target=export_target(config),
        objective=run.objective,
        sweeps=[sweep],
        rows=rows,
        winner=select_best(rows, "val_accuracy", "max"),
        run_id=new_run_id(),
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


@pytest.fixture(scope="session")
def prefect_harness(prefect_database, tmp_path_factory):
    """One temporary Prefect API for every test that needs flows (paid once per worker).

    Prefect's own harness, on a copy of the migrated database instead of a new one.
    """
    from unittest import mock

    from prefect.settings import temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from nighttune.flows.server import unset_server_setting_updates

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


@pytest.fixture(scope="session")
def s3_server(session_home: Path):
    """moto_server for the session (the test credentials are in the environment)."""
    server = MotoServer(session_home / "moto.log")
    yield server
    server.stop()


GROUPS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its folder, so ``-m unit`` (or integration, e2e) picks a group."""
    for item in items:
        group = item.path.parent.name
        if group in GROUPS:
            item.add_marker(group)
