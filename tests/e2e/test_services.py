"""The Makefile's long-lived targets (the server, the workers) stop like services: one
SIGTERM (systemctl stop, docker stop, kill) or Ctrl-C ends them, and what they
started, within seconds (`deployments/service.py`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.harness import ROOT, free_port, prefect_home_with

# A stand-in for `prefect worker start` with a flow run in flight: its first SIGTERM or
# SIGINT makes it wait for the run it started, as Prefect's worker does.
WAITS_FOR_ITS_RUN = """
import signal, subprocess, sys, time
run = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
def graceful(signum, frame):
    run.wait()
    sys.exit(0)
signal.signal(signal.SIGTERM, graceful)
signal.signal(signal.SIGINT, graceful)
print("started", run.pid, flush=True)
time.sleep(600)
"""


def _children(pid: int) -> list:
    import psutil

    return psutil.Process(pid).children(recursive=True)


def _wait_for(log: Path, text: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.2)


def _stopped_within(proc: subprocess.Popen, signum: int, *, group: bool, seconds: float) -> int:
    family = _children(proc.pid)
    sent = time.monotonic()
    (os.killpg if group else os.kill)(proc.pid, signum)
    try:
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    took = time.monotonic() - sent
    import psutil

    _, alive = psutil.wait_procs(family, timeout=5)
    assert not alive, [p.cmdline() for p in alive]
    assert took < seconds, took
    return code


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_one_signal_stops_a_command_and_the_runs_it_waits_for(tmp_path, signum) -> None:
    """A command that, asked to stop, waits for what it started (Prefect's worker and its
    flow runs): under service.py one signal ends both at once, exit 0."""
    log = tmp_path / "out.txt"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "deployments" / "service.py"), "--", sys.executable]
            + ["-c", WAITS_FOR_ITS_RUN],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _wait_for(log, "started", proc, timeout=30)
    assert _stopped_within(proc, signum, group=False, seconds=5) == 0
    assert f"service: {signal.Signals(signum).name}: stopping python" in log.read_text()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "signum", "group"),
    [
        ("worker-cpu", signal.SIGTERM, False),  # systemctl stop, docker stop, kill
        ("worker-cpu", signal.SIGINT, True),  # Ctrl-C: the terminal signals the group
        ("server", signal.SIGTERM, False),
    ],
)
def test_a_make_service_target_stops_on_one_signal(
    prefect_server, prefect_database, tmp_path, target: str, signum: int, group: bool
) -> None:
    """`make worker-cpu` against a server, `make server` on a port of its own: one signal
    to make ends it within seconds, with nothing of it left running."""
    env = dict(os.environ, HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    env["PREFECT_API_URL"] = prefect_server["api"]
    args = ["make", "-s", "--no-print-directory", target]
    ready = "started!"
    if target == "server":
        port = free_port()
        env["PREFECT_HOME"] = str(prefect_home_with(prefect_database, tmp_path / "home"))
        env.pop("PREFECT_API_URL")
        args.append(f"SERVER_PORT={port}")
        ready = f"reaches the API at http://127.0.0.1:{port}/api"
    log = tmp_path / "make.txt"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # As a terminal starts it (a background job of a script ignores SIGINT).
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    _wait_for(log, ready, proc)
    if target == "server":  # up and answering before it is stopped
        _wait_for_health(port, proc, log)
    _stopped_within(proc, signum, group=group, seconds=15)
    said = log.read_text(errors="replace")
    assert "Killed" not in said and "Traceback" not in said, said[-3000:]
    assert f"service: {signal.Signals(signum).name}: stopping" in said, said[-3000:]


def _wait_for_health(port: int, proc: subprocess.Popen, log: Path) -> None:
    import urllib.request

    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2):
                return
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
