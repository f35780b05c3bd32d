"""`nighttune` as a user runs it: a subprocess, its output and exit status."""

from __future__ import annotations

import subprocess

from tests.conftest import nighttune_cmd
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
    with (
        temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}),
        _local_flow_settings(),
    ):
        assert get_current_settings().flows.heartbeat_frequency == 180  # Prefect's default
