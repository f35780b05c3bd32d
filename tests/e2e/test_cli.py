"""`nighttune` as a user runs it: a subprocess, its output and exit status."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.harness import QUICK_TUNE, nighttune_cmd, on_temporary_server
from tests.support.images import class_folder


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        nighttune_cmd(*args), env=env, capture_output=True, text=True, timeout=300
    )


def proc_info(pid: int):
    import psutil

    return psutil.Process(pid)


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


def test_a_file_with_two_mistakes_says_both(cli_env, tmp_path) -> None:
    """Every mistake of a config file at once, one error line each, exit 2."""
    config = tmp_path / "tune.yaml"
    config.write_text("batch_sizes: 32\nmax_epochs: many\n")
    result = run(cli_env, "tune", "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "nighttune: error: batch_sizes: should be a list of integers such as [32, 64, 128] "
        "(got 32)",
        "nighttune: error: max_epochs: should be an integer such as 30 (got 'many')",
    ]


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
    from tests.support.harness import ROOT

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


def test_the_temporary_server_is_ours_and_stops_with_the_command(
    prefect_database, tmp_path
) -> None:
    """No PREFECT_API_URL: a server of our own (own session, batched recorder, no
    heartbeats), gone when the block ends. With one: nothing started, heartbeats on."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_HOME,
        get_current_settings,
        temporary_settings,
    )

    from nighttune.flows.server import local_flow_settings
    from tests.support.harness import prefect_home_with

    home = prefect_home_with(prefect_database, tmp_path / "home")
    with temporary_settings(updates={PREFECT_API_URL: None, PREFECT_HOME: home}):
        with local_flow_settings():
            api = get_current_settings().api.url
            assert api and api.startswith("http://127.0.0.1:")
            assert get_current_settings().flows.heartbeat_frequency is None
            assert not get_current_settings().ui_url  # no UI there: no "View at" link
            with urllib.request.urlopen(f"{api}/admin/settings", timeout=10) as reply:
                recorder = json.load(reply)["server"]["services"]["task_run_recorder"]
            assert (recorder["batch_size"], recorder["flush_interval"]) == (100, 1)
        with pytest.raises(OSError):  # stopped: nothing answers on its port any more
            urllib.request.urlopen(f"{api}/health", timeout=2)
    with (
        temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}),
        local_flow_settings(),
    ):
        assert get_current_settings().flows.heartbeat_frequency == 180  # Prefect's default
        assert get_current_settings().ui_url == "http://127.0.0.1:4200"  # its UI's runs
        assert get_current_settings().api.url == "http://127.0.0.1:4200/api"


def test_server_settings_leave_what_the_environment_sets() -> None:
    from nighttune.flows.server import SERVER_SETTINGS, unset_server_settings

    assert unset_server_settings({}) == SERVER_SETTINGS
    name = "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE"
    assert name not in unset_server_settings({name: "1"})  # Prefect's default, by choice


def test_server_command_starts_prefect_with_the_batched_recorder(prefect_server) -> None:
    """The tests' servers are `nighttune server` (tests.support.harness): ask one its settings."""
    with urllib.request.urlopen(f"{prefect_server['api']}/admin/settings", timeout=10) as reply:
        recorder = json.load(reply)["server"]["services"]["task_run_recorder"]
    assert (recorder["batch_size"], recorder["flush_interval"]) == (100, 1)


def test_server_command_rejects_a_bad_port(cli_env) -> None:
    assert_user_error(run(cli_env, "server", "--port", "70000"), "--port", "65535")


def test_server_command_on_a_busy_port_is_one_line(cli_env) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        result = run(cli_env, "server", "--port", port)
    assert_user_error(result, f"127.0.0.1:{port} is in use", "choose another --port")


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
        [
            "preflight",
            "cache_dataset",
            "lr_sweep",
            "lr_sweep",
            "lr_bracket",
            "lr_bracket",
            "train_trial",
            "train_trial",
            "export_run",
        ]
    ), rows
    assert {state for _, state in rows} == {"COMPLETED"}, rows


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_tune_at_once_with_its_server(
    cli_env, tmp_path, prefect_database, signum: int, code: int
) -> None:
    """SIGTERM to the command, or Ctrl-C to its process group (as a terminal sends it),
    in the middle of a trial: one line, 143 / 130 within seconds, and no process of it
    left, its temporary Prefect server included; a rerun then finishes."""
    import psutil

    on_temporary_server(cli_env, prefect_database, tmp_path / "prefect-home")
    # Long enough (5,000 epochs: minutes) that the run cannot finish before the signal.
    args = [*QUICK_TUNE, "--max-epochs", "5000", "--patiences", "4000", "--batch-sizes", "32"]
    args += ["--export-to", str(tmp_path / "exports")]
    log = tmp_path / "stderr.txt"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            nighttune_cmd(*args),
            env=cli_env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            # As a terminal starts a command: a shell without job control starts its
            # background jobs (`make test &`) with SIGINT ignored, and that is inherited.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + 240
        while "trial b32: lr " not in log.read_text():  # the trial has started
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(3)  # and is training
        family = psutil.Process(proc.pid).children(recursive=True)
        assert any("uvicorn" in " ".join(child.cmdline()) for child in family)
        sent = time.monotonic()
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signum)
        else:
            os.kill(proc.pid, signum)
        try:
            assert proc.wait(timeout=60) == code, log.read_text()[-3000:]
        except subprocess.TimeoutExpired:
            states = [(p.pid, p.status(), p.cmdline()[:3]) for p in [proc_info(proc.pid)]]
            pytest.fail(f"still running 60 s after the signal: {states}\n{log.read_text()[-3000:]}")
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    stderr = log.read_text()
    assert took < 15, took
    lines = [ln for ln in stderr.splitlines() if ln.startswith("nighttune: error:")]
    assert lines == [
        "nighttune: error: interrupted; rerun the same command to resume (finished work is kept)"
    ], stderr[-3000:]
    assert "Traceback" not in stderr
    assert "Crash detected" not in stderr and "Finished in state" not in stderr, stderr
    gone, alive = psutil.wait_procs(family, timeout=10)
    assert not alive, [p.cmdline() for p in alive]
    assert not (tmp_path / "exports" / "latest.json").exists()


NOISE = ("Traceback", "ERROR", "error:", "oneDNN", "absl", "Unknown size", "telemetry")


def test_a_data_builder_that_raises_is_one_line_and_whole_in_prefects_log(
    cli_env, tmp_path, prefect_database
) -> None:
    """A user's data builder raising in the flow: the screen shows nighttune's one line
    and none of Prefect's four about the failed task and flow; Prefect's own log (the
    UI's) still has them."""
    home = on_temporary_server(cli_env, prefect_database, tmp_path / "prefect-home")
    project = Path(__file__).parents[1] / "support" / "user_project"
    config = tmp_path / "tune.yaml"
    config.write_text(f"code_dir: {project}\ndataset: {{builder: 'my_data:unreadable'}}\n")
    result = run(cli_env, "tune", "--config", str(config), "--export-to", str(tmp_path / "x"))
    assert result.returncode == 2, result.stderr[-3000:]
    said = "builder 'my_data:unreadable' raised ValueError: cannot read wine.csv"
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert errors == [f"nighttune: error: {said}: no column 'quality'"], result.stderr
    assert "Finished in state" not in result.stderr and "Task run" not in result.stderr
    with sqlite3.connect(home / "prefect.db") as db:
        logged = [message for (message,) in db.execute("SELECT message FROM log")]
    assert any(m.startswith("Task run failed with exception") and said in m for m in logged)
    assert any(m.startswith("Finished in state Failed") for m in logged), logged


def test_a_default_run_in_a_clean_environment_is_quiet(tmp_path) -> None:
    """The installed `nighttune tune`, none of the Makefile's variables set: a 2x2 digits
    grid prints its stages, the table and the winner, and none of TensorFlow's, TFDS's
    or Prefect's noise; --verbose brings back the epochs. A PREFECT_HOME whose parents do
    not exist yet is made (Prefect makes only the last folder: its server did not start)."""
    import sys

    clean = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    clean["PREFECT_HOME"] = str(tmp_path / "not" / "yet" / "prefect")
    script = str(Path(sys.executable).parent / "nighttune")
    args = ["tune", "--batch-sizes", "32,64", "--patiences", "2,4", "--max-epochs", "4"]
    args += ["--export-to", str(tmp_path / "exports"), "--cache-dir", str(tmp_path / "cache")]
    done = subprocess.run(
        [script, *args], env=clean, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    screen = done.stdout + done.stderr
    assert done.returncode == 0, screen
    assert (tmp_path / "not" / "yet" / "prefect" / "prefect.db").is_file()
    assert [word for word in NOISE if word in screen] == [], screen
    lines = screen.strip().splitlines()
    assert len(lines) <= 45, screen
    for stage in ("dataset digits: cached in", "lr sweep, batch size 64", "trial b32: 4 epochs"):
        assert stage in screen, screen
    assert "winner      batch size" in screen and "epoch 1," not in screen
    # No link to a UI that is not there (the temporary server has none, and stops):
    # where the run's record is instead.
    assert "View at" not in screen and "http://" not in screen, screen
    assert "record: report.html (named at the end); all runs: nighttune report --history" in screen
    assert "reused" not in screen  # the first run trained everything
    manifest = json.loads(next((tmp_path / "exports").glob("*/manifest.json")).read_text())
    assert list(manifest["timings"])[0] == "start-up" and manifest["timings"]["start-up"] > 0
    # The selection rule is not part of a trial: the rerun reuses every trial.
    noise = ["--select", "cheapest_within_noise"]
    again = subprocess.run(
        [script, *args, *noise],
        env=clean,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "reused      LR sweeps 2 of 2, trials 2 of 2: from the store" in again.stdout
    assert "selection   cheapest_within_noise: " in again.stdout
    assert "95% CI" in again.stdout and "p vs best" in again.stdout
    run_id = again.stdout.split("exported    ")[1].split()[0].rsplit("/", 1)[1]
    chosen = json.loads((tmp_path / "exports" / run_id / "manifest.json").read_text())
    assert chosen["selection"]["rule"] == "cheapest_within_noise"
    assert chosen["selection"]["winner"] in chosen["selection"]["p_vs_best"] | {
        chosen["selection"]["best"]: 1.0
    }
    verbose = subprocess.run(
        [script, *args, "--fresh", "--verbose"],
        env=clean,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert verbose.returncode == 0, verbose.stderr
    assert "trial b32: epoch 1, loss" in verbose.stderr


def _on_a_terminal(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run ``argv`` with a 100-column pseudo-terminal as its stdin, stdout and stderr."""
    import fcntl
    import select
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + 600
    while time.monotonic() < deadline:
        if select.select([master], [], [], 1.0)[0]:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side closed
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_on_a_terminal_long_work_is_a_bar_and_the_lines_stay(tmp_path) -> None:
    """On a terminal each sweep and trial shows as a bar (steps, epochs, the monitor,
    the patiences stopped) that is cleared before the next line: what stays reads as
    the plain screen does."""
    import sys

    # A proxy set and no NO_PROXY, as on many company machines: the temporary server is
    # still reached directly (it once waited out its 120 s start-up through the proxy).
    clean = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    clean |= {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    script = str(Path(sys.executable).parent / "nighttune")
    args = ["tune", "--batch-sizes", "32", "--patiences", "1,3", "--max-epochs", "12"]
    args += ["--export-to", str(tmp_path / "exports"), "--cache-dir", str(tmp_path / "cache")]
    status, screen = _on_a_terminal([script, *args], clean, tmp_path)
    assert status == 0, screen
    assert re.search(r"lr sweep: step \d+/50 \|", screen), screen
    assert re.search(r"trial b32: epoch \d+/12 \|.*val_accuracy 0\.\d{4}", screen), screen
    # Each bar is cleared before the next line: what is left visible is the plain screen.
    visible = [line.rsplit("\r", 1)[-1] for line in screen.replace("\r\n", "\n").split("\n")]
    assert not [line for line in visible if re.search(r"\d+/\d+ \|", line)], visible
    assert any("trial b32: " in line and "epochs in" in line for line in visible), visible
    assert any(line.startswith("winner      batch size 32") for line in visible), visible
    final = visible[[line.split()[:1] for line in visible].index(["batch"]) :]
    # The terminal's width, but for a path (never broken: it is copied whole).
    assert max(len(line) for line in final if str(tmp_path) not in line) <= 100, final
    exported = next(line.split()[1] for line in visible if line.startswith("exported"))
    last = [line for line in visible if line.strip()][-1]
    assert last == f"report      {exported}/report.html", visible[-3:]
    assert [word for word in NOISE if word in screen] == [], screen


def test_server_ui_settings_follow_host_and_port() -> None:
    """The UI's API URL: the command's own port, not this shell's PREFECT_API_URL; for a
    wildcard bind, this machine's name; PREFECT_UI_API_URL set by hand wins."""
    import socket

    from nighttune.flows.server import served_settings

    shell = {"PREFECT_API_URL": "http://127.0.0.1:4200/api"}
    assert served_settings("127.0.0.1", 54210, shell) == {
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": "54210",
        "PREFECT_UI_API_URL": "http://127.0.0.1:54210/api",
    }
    wide = served_settings("0.0.0.0", 4300, {})["PREFECT_UI_API_URL"]
    assert wide == f"http://{socket.getfqdn()}:4300/api"
    proxied = served_settings("0.0.0.0", 4300, {"PREFECT_UI_API_URL": "https://p.example/api"})
    assert "PREFECT_UI_API_URL" not in proxied


@pytest.mark.slow
def test_a_server_on_another_port_serves_a_ui_that_finds_it(
    cli_env, tmp_path, prefect_database
) -> None:
    """`nighttune server --port P` with PREFECT_API_URL naming port 4200 (a profile's
    server): the UI's settings name port P."""
    from tests.support.harness import Processes, free_port, prefect_home_with

    port = free_port()
    env = dict(cli_env, PREFECT_API_URL="http://127.0.0.1:4200/api")
    env["PREFECT_HOME"] = str(prefect_home_with(prefect_database, tmp_path / "home"))
    procs = Processes()
    try:
        procs.start(
            nighttune_cmd("server", "--port", str(port)), env, tmp_path, tmp_path / "server.log"
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                url = f"http://127.0.0.1:{port}/ui-settings"
                with urllib.request.urlopen(url, timeout=2) as reply:
                    settings = json.load(reply)
                break
            except OSError:
                assert time.monotonic() < deadline, procs.logs()
                time.sleep(0.5)
    finally:
        procs.stop_all()
    assert settings["api_url"] == f"http://127.0.0.1:{port}/api"


@pytest.mark.parametrize(
    ("api_url", "said"),
    [(None, "set PREFECT_API_URL"), ("http://127.0.0.1:9/api", "no Prefect server answers")],
)
def test_make_deploy_without_a_server_answers_at_once(cli_env, api_url, said) -> None:
    """`make deploy` first runs `deployments/pools.py --check`: no server, one line, exit 2
    (before `prefect deploy` spent a minute on a temporary server of its own)."""
    from tests.support.harness import ROOT

    assert "deployments/pools.py --check" in (ROOT / "Makefile").read_text().split("deploy:")[1]
    env = {k: v for k, v in cli_env.items() if k != "PREFECT_API_URL"}
    if api_url:
        env["PREFECT_API_URL"] = api_url
    done = subprocess.run(
        [sys.executable, "deployments/pools.py", "--check"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and said in done.stderr and "Traceback" not in done.stderr
