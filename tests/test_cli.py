"""`nighttune` as a user runs it: a subprocess, its output and exit status."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import QUICK_TUNE, nighttune_cmd, on_temporary_server
from tests.images import class_folder


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        nighttune_cmd(*args), env=env, capture_output=True, text=True, timeout=300
    )


def assert_user_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("nighttune: error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_help_lists_commands_and_flags(cli_env) -> None:
    top = run(cli_env, "--help")
    assert top.returncode == 0 and "tune" in top.stdout and "cache" in top.stdout
    tune = run(cli_env, "tune", "--help")
    for flag in ("--dataset", "--data-dir", "--cache-dir", "--image-size", "--seed"):
        assert flag in tune.stdout


def test_cache_on_the_offline_default_prints_splits(cli_env) -> None:
    first = run(cli_env, "cache")
    assert first.returncode == 0, first.stderr
    assert "train          1257 examples" in first.stdout
    assert "validation      270 examples" in first.stdout
    assert "(built:" in first.stdout
    second = run(cli_env, "cache")
    assert "(cache hit:" in second.stdout


def test_cache_command_on_an_image_folder(cli_env, tmp_path) -> None:
    root = class_folder(tmp_path / "pets", per_class=5)
    result = run(cli_env, "cache", "--dataset", str(root), "--image-size", "10,12")
    assert result.returncode == 0, result.stderr
    assert "classes     3: cat dog fox" in result.stdout
    assert "input       10x12x1" in result.stdout


def test_seed_mnist_example_offline_exits_2_at_once(cli_env, tmp_path) -> None:
    from tests.conftest import ROOT

    cli_env.update(HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9")
    result = run(
        cli_env,
        "tune",
        "--config",
        str(ROOT / "examples" / "seed_mnist.yaml"),
        "--data-dir",
        str(tmp_path / "tfds"),
    )
    assert_user_error(result, "mnist is not prepared", "--data-dir DIR")
    assert not (tmp_path / "exports").exists()


def test_heartbeats_are_off_only_on_the_temporary_server() -> None:
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    from flows.cli import _local_flow_settings

    with temporary_settings(updates={PREFECT_API_URL: None}), _local_flow_settings():
        assert get_current_settings().flows.heartbeat_frequency is None
        assert get_current_settings().server.ephemeral.startup_timeout_seconds == 120
        recorder = get_current_settings().server.services.task_run_recorder
        assert (recorder.batch_size, recorder.flush_interval) == (100, 1)  # flows/server.py
    with (
        temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}),
        _local_flow_settings(),
    ):
        assert get_current_settings().flows.heartbeat_frequency == 180  # Prefect's default


def test_server_settings_leave_what_the_environment_sets() -> None:
    from flows.server import SERVER_SETTINGS, unset_server_settings

    assert unset_server_settings({}) == SERVER_SETTINGS
    name = "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE"
    assert name not in unset_server_settings({name: "1"})  # Prefect's default, by choice


def test_server_command_starts_prefect_with_the_batched_recorder(prefect_server) -> None:
    """The tests' servers are `nighttune server` (tests/conftest.py): ask one its settings."""
    with urllib.request.urlopen(f"{prefect_server['api']}/admin/settings", timeout=10) as reply:
        recorder = json.load(reply)["server"]["services"]["task_run_recorder"]
    assert (recorder["batch_size"], recorder["flush_interval"]) == (100, 1)


def test_server_command_rejects_a_bad_port(cli_env) -> None:
    assert_user_error(run(cli_env, "server", "--port", "70000"), "--port", "70000")


@pytest.mark.slow
def test_tune_on_the_temporary_server_records_every_task_run(
    cli_env, tmp_path, prefect_database
) -> None:
    """The temporary server's recorder writes in batches: none of them is lost when the
    run ends and the server stops."""
    home = on_temporary_server(cli_env, prefect_database, tmp_path / "prefect-home")
    target = str(tmp_path / "exports")
    result = run(cli_env, *QUICK_TUNE, "--batch-sizes", "32,64", "--export-to", target)
    assert result.returncode == 0, result.stderr[-3000:]
    with sqlite3.connect(Path(home) / "prefect.db") as db:
        rows = db.execute(
            "SELECT task_run.name, task_run.state_type FROM task_run JOIN flow_run "
            "ON task_run.flow_run_id = flow_run.id WHERE flow_run.state_type = 'COMPLETED'"
        ).fetchall()
    names = sorted(name.rsplit("-", 1)[0] for name, _ in rows)
    assert names == sorted(
        ["cache_dataset", "lr_sweep", "lr_sweep", "train_trial", "train_trial", "export_run"]
    ), rows
    assert {state for _, state in rows} == {"COMPLETED"}, rows
