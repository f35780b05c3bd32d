"""Nights as the scheduler runs them, through the `nighttune` command: the champion gate
and the webhook that says why a night was not promoted."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.harness import nighttune_cmd, on_temporary_server
from tests.support.webhook import Webhook

pytestmark = pytest.mark.slow


def tune(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = nighttune_cmd("tune", "--batch-sizes", "64", "--patiences", "3", *args)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def serving(target: Path) -> str:
    return json.loads((target / "latest.json").read_text())["run_id"]


def test_a_worse_second_night_is_exported_not_served_and_said(
    cli_env, tmp_path, prefect_database
) -> None:
    on_temporary_server(cli_env, prefect_database, tmp_path / "prefect-home")
    target = tmp_path / "exports"
    with Webhook() as hook:
        common = ("--export-to", str(target), "--notify-url", hook.url)
        tune(cli_env, "--max-epochs", "15", *common)
        first = serving(target)
        assert hook.bodies == []  # a first night, promoted: nothing to tell
        # A bad night: learning rates so small that one epoch stays near chance.
        bad = tune(cli_env, "--max-epochs", "1", "--start-lr", "1e-8", "--end-lr", "1e-6", *common)
    runs = sorted(p.name for p in target.iterdir() if p.is_dir())
    assert len(runs) == 2 and serving(target) == first  # exported, not served
    second = runs[1]
    assert "champion    not promoted: test accuracy" in bad.stdout
    assert f"worse than champion {first}'s" in bad.stdout

    [body] = hook.bodies  # one POST, saying why
    assert body["run_id"] == second and body["status"] == "completed"
    assert body["events"] == ["not promoted"]
    gate = body["promotion"]
    assert gate["champion"] == first and gate["promoted"] is False
    assert gate["score"] < gate["champion_score"]
    assert body["metric"] == {"name": "test_accuracy", "value": gate["score"]}
    assert Path(body["report"].removeprefix("file://")).is_file()
    assert "secret-token" not in json.dumps(body)
    run = target / second
    manifest = (run / "manifest.json").read_text()
    page = (run / "report.html").read_text()
    assert "secret-token" not in manifest and "secret-token" not in page
    # The command line passed the URL by reference (its own environment), not as a
    # flow-run parameter: the manifest names the reference.
    assert json.loads(manifest)["config"]["notify_url"] == "env:NIGHTTUNE_NOTIFY_URL"


def test_a_grid_far_longer_than_its_budget_ends_in_time_with_what_finished(
    cli_env, tmp_path, prefect_database
) -> None:
    """A grid of many minutes (10,000 epochs, patience 9,000) under a 20 s budget: the
    first trial is cut at an epoch boundary keeping its finished patience, the other
    batch sizes never start, the run exports what finished, exits 0, and says so to the
    webhook."""
    on_temporary_server(cli_env, prefect_database, tmp_path / "prefect-home")
    target = tmp_path / "exports"
    budget = 20
    with Webhook() as hook:
        args = ["tune", "--batch-sizes", "16,32,64", "--patiences", "2,9000"]
        args += ["--max-epochs", "10000", "--time-budget", f"{budget}s"]
        args += ["--export-to", str(target), "--notify-url", hook.url]
        done = subprocess.run(
            nighttune_cmd(*args), env=cli_env, capture_output=True, text=True, timeout=600
        )
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((target / serving(target) / "manifest.json").read_text())
    flow_s = sum(s for stage, s in manifest["timings"].items() if stage != "start-up")
    assert flow_s <= budget + 60, manifest["timings"]  # the bound, export included
    rows = {(t["batch_size"], t["patience"]): t for t in manifest["trials"]}
    assert rows[(16, 2)]["status"] == "ok" and manifest["winner"]["patience"] == 2
    cut = rows[(16, 9000)]
    assert cut["status"] == "not run" and "the fit stopped after epoch" in cut["error"]
    for b in (32, 64):
        assert {rows[(b, p)]["status"] for p in (2, 9000)} == {"not run"}
        assert rows[(b, 2)]["error"].startswith("time budget: not started")
    assert "time budget 5 of 6 cells not run" in done.stdout
    [body] = hook.bodies
    assert body["events"] == ["cut by its time budget"]
