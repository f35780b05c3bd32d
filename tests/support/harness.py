"""The tests' harness: the repository, CLI commands, and real servers in their own processes
(Prefect, moto_server), each stopped by PID. Fixtures over these live in conftest.py."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from nighttune.tasks.core.config import TuneConfig
from nighttune.tasks.core.config_file import load_tune_config

ROOT = Path(__file__).resolve().parents[2]


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


def nighttune_cmd(*args: str) -> list[str]:
    """Run the CLI with this interpreter (the console script may not be on PATH)."""
    return [sys.executable, "-m", "nighttune.flows.cli", *args]


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
        from nighttune.tasks.storage.s3 import client

        return client(self.url)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._log.close()


def small_config(tmp_path: Path, **extra) -> TuneConfig:
    """A tune config that trains for real, briefly: two batch sizes, two patiences."""
    return load_tune_config(
        None,
        {
            "batch_sizes": [32, 64],
            "patiences": [2, 3],
            "max_epochs": 5,
            "lr_range.steps": 20,
            "export_to": str(tmp_path / "exports"),
            "cache_dir": str(tmp_path / "cache"),
            **extra,
        },
    )
