"""Killed and resumed: `nighttune tune` SIGKILLed at each point of `KILL_POINTS`, then
rerun; and two runs at once sharing one cache and one export target.

The command is the real CLI in its own process group (`tests.support.counting_cli`, which
also logs every sweep and fit as it starts), talking to a real Prefect server. It is
killed when a line of its own progress output appears (and, for the cache and the
export, once the folder being written exists), then the same command runs again.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.harness import ROOT
from tests.support.reliability import ALL_WORK, KILL_POINTS, KillPoint

pytestmark = pytest.mark.slow

GRID = ("--batch-sizes", "32,64", "--patiences", "2,25", "--max-epochs", "25", "--lr-steps", "20")
# --verbose: the kill points are per-epoch and per-step lines, off the default screen.
GRID = (*GRID, "--verbose")
STORES = ("datasets", "sweeps", "trials")


def command(tmp: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tests.support.counting_cli",
        "tune",
        *GRID,
        "--export-to",
        str(tmp / "exports"),
        "--cache-dir",
        str(tmp / "cache"),
    ]


def environment(tmp: Path, api: str) -> dict[str, str]:
    return dict(
        os.environ,
        HOME=str(tmp),
        PYTHONPATH=str(ROOT),
        PREFECT_API_URL=api,
        NIGHTTUNE_WORK_LOG=str(tmp / "work.log"),
    )


def start(tmp: Path, env: dict[str, str]) -> subprocess.Popen:
    """The command in its own process group, stdout and stderr together on a pipe."""
    return subprocess.Popen(
        command(tmp),
        env=env,
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def run_and_kill(tmp: Path, env: dict[str, str], kill: KillPoint, timeout: float = 240) -> str:
    """Start the command; SIGKILL its process group at ``kill``; return what it printed."""
    proc = start(tmp, env)
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if kill.log in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + timeout
        while not seen.wait(0.005):
            assert proc.poll() is None, "ended before the kill point:\n" + "".join(lines)[-3000:]
            assert time.monotonic() < deadline, "kill point never came:\n" + "".join(lines)[-3000:]
        while kill.path and not list(tmp.glob(kill.path)):
            assert proc.poll() is None, f"{kill.path} never appeared:\n" + "".join(lines)[-3000:]
            assert time.monotonic() < deadline, f"{kill.path} never appeared"
            time.sleep(0.002)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        reader.join(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "".join(lines)[-3000:]
    return "".join(lines)


def finished_work(cache: Path) -> list[str]:
    """The sweeps and trials the store holds as finished (``meta.json`` written last)."""
    done = []
    for kind, store in (("sweep", "sweeps"), ("trial", "trials")):
        for entry in sorted((cache / store).glob("*/meta.json")):
            done.append(f"{kind} {entry.parent.name.split('-')[0]}")
    return sorted(done)


def work_log(tmp: Path) -> list[str]:
    path = tmp / "work.log"
    return path.read_text().splitlines() if path.exists() else []


def leftovers(tmp: Path) -> list[Path]:
    folders = [tmp / "cache" / store for store in STORES] + [tmp / "exports"]
    return [
        p
        for folder in folders
        if folder.is_dir()
        for p in folder.iterdir()
        if ".tmp-" in p.name or ".trash-" in p.name
    ]


@pytest.mark.parametrize("kill", KILL_POINTS, ids=lambda k: k.id)
def test_killed_run_resumes_without_redoing_finished_work(
    kill: KillPoint, prefect_server, tmp_path
) -> None:
    from nighttune.tasks.core.config import DatasetSpec
    from nighttune.tasks.data.datasets import load_dataset
    from nighttune.tasks.runs.reader import verify_run

    env = environment(tmp_path, prefect_server["api"])
    output = run_and_kill(tmp_path, env, kill)

    # What the kill left: exactly the work finished before it, and no latest.json.
    assert finished_work(tmp_path / "cache") == sorted(kill.done_before), output[-3000:]
    assert not (tmp_path / "exports" / "latest.json").exists()
    if kill.path:  # killed while that folder was being written: it is still there, unpublished
        assert list(tmp_path.glob(kill.path))
    started_before = work_log(tmp_path)

    rerun = subprocess.run(
        command(tmp_path),
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "winner      batch size" in rerun.stdout

    # The rerun did exactly what had not finished: nothing twice.
    redone = work_log(tmp_path)[len(started_before) :]
    assert sorted(redone) == sorted(w for w in ALL_WORK if w not in kill.done_before)

    latest = json.loads((tmp_path / "exports" / "latest.json").read_text())
    run = tmp_path / "exports" / latest["run_id"]
    assert latest["uri"] == run.as_uri()
    assert verify_run(run).run_id == latest["run_id"]
    assert f"exported    {run}" in rerun.stdout
    table = [ln for ln in rerun.stdout.splitlines() if ln.strip().startswith(("32 ", "64 "))]
    assert len(table) == 4  # one line per (batch size, patience)
    assert load_dataset(DatasetSpec(), tmp_path / "cache").cache_hit  # whole and verified
    assert leftovers(tmp_path) == []


def test_two_runs_at_once_to_one_target_both_export_intact(prefect_server, tmp_path) -> None:
    from nighttune.tasks.runs.reader import verify_run

    env = environment(tmp_path, prefect_server["api"])
    procs = [start(tmp_path, env) for _ in range(2)]
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output[-3000:]
        # On a lasting server the screen links the run's page in its UI, which is there.
        ui = prefect_server["api"].removesuffix("/api")
        link = re.search(rf"View at ({re.escape(ui)}/runs/flow-run/[0-9a-f-]+)", output)
        assert link and "record: report.html" not in output, output[:2000]
        request = urllib.request.Request(link.group(1), headers={"Accept": "text/html"})
        with urllib.request.urlopen(request, timeout=10) as page:  # as a browser asks
            assert page.status == 200 and b"<html" in page.read(2000).lower()

    exports = tmp_path / "exports"
    runs = sorted(p for p in exports.iterdir() if p.is_dir())
    assert len(runs) == 2
    manifests = [verify_run(run) for run in runs]  # every file matches its manifest
    assert manifests[0].dataset == manifests[1].dataset
    latest = json.loads((exports / "latest.json").read_text())
    assert latest == {"run_id": runs[-1].name, "uri": runs[-1].as_uri()}  # the newer one
    assert leftovers(tmp_path) == []
