"""End to end, as in production: a Prefect server, pools, `prefect deploy`, one cpu
and two gpu workers in separate processes (each with its own working directory and
home, sharing only the server and the export target), `prefect deployment run`.

Every process is started in its own session and stopped by its PID (its whole
process group) at teardown, on failure too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nighttune.flows.target import export_target
from nighttune.tasks.core.config import TuneConfig
from nighttune.tasks.core.config_file import load_tune_config
from nighttune.tasks.core.errors import ConfigError
from nighttune.tasks.storage.files import sha256_file
from tests.support.harness import ROOT, Processes, start_prefect_server

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
GRID = {"batch_sizes": [32, 64], "patiences": [2, 3], "max_epochs": 4, "lr_range": {"steps": 20}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, prefect_database) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("e2e")
    env = dict(os.environ)
    env.update(
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        NIGHTTUNE_CODE_DIR=str(ROOT),
        NIGHTTUNE_EXPORT_TO=str(root / "exports"),
        NIGHTTUNE_TIMEZONE="Europe/Berlin",
        PYTHONPATH=str(ROOT),
    )
    env.pop("PREFECT_RESULTS_LOCAL_STORAGE_PATH", None)
    procs = Processes()
    try:
        api = start_prefect_server(procs, root, env, prefect_database)
        env["PREFECT_API_URL"] = api
        for args in (
            [str(BIN / "python"), "deployments/pools.py", "--gpu-slots", "2"],
            [
                str(BIN / "prefect"),
                "--no-prompt",
                "deploy",
                "--prefect-file",
                "deployments/prefect.yaml",
                "--all",
            ],
        ):
            done = subprocess.run(
                args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180
            )
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        for name, pool in (("cpu-1", "cpu"), ("gpu-1", "gpu"), ("gpu-2", "gpu")):
            home = root / name
            home.mkdir()
            worker_env = dict(env, HOME=str(home), PREFECT_HOME=str(home / ".prefect"))
            worker_env.pop("NIGHTTUNE_CACHE_DIR", None)  # each "machine" caches at home
            procs.start(
                [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--name", name],
                worker_env,
                home,
                root / f"{name}.log",
            )
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: api}):  # this process's client
            yield {"root": root, "env": env, "api": api, "procs": procs}
    finally:
        procs.stop_all()


def wait_final(flow_run_id, timeout: float, procs: Processes):
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            if run.state is not None and run.state.is_final():
                return run
            assert time.monotonic() < deadline, f"run not final: {run.state}\n{procs.logs()}"
            time.sleep(1)


def flow_run_logs(flow_run_id) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        return client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))


def trial_runs() -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["gpu"]))
        )


def test_deployments_pools_and_schedule(cluster) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        nightly = client.read_deployment_by_name("tune/nightly")
        assert nightly.work_pool_name == "cpu" and set(nightly.tags) == {"nightly", "cpu"}
        (schedule,) = nightly.schedules
        assert schedule.schedule.cron == "0 2 * * *"
        assert schedule.schedule.timezone == "Europe/Berlin"
        assert nightly.parameters["config"]["dispatch"] == "deployments"
        TuneConfig.model_validate(nightly.parameters["config"])  # a real, valid default
        assert client.read_deployment_by_name("tune/manual").work_pool_name == "cpu"
        assert client.read_deployment_by_name("train-trial/gpu").work_pool_name == "gpu"
        assert client.read_deployment_by_name("predict/batch").work_pool_name == "gpu"
        assert client.read_concurrency_limit_by_tag("gpu").concurrency_limit == 2


def test_manual_run_fans_trials_out_to_gpu_workers(cluster) -> None:
    """A partial config at `prefect deployment run -p` (the grid only) is merged over the
    deployment's own: its dispatch (to the gpu workers) and export target stay."""
    exports = cluster["root"] / "exports"  # NIGHTTUNE_EXPORT_TO when deploying
    config = GRID
    done = subprocess.run(
        [
            str(BIN / "prefect"),
            "deployment",
            "run",
            "tune/manual",
            "-p",
            f"config={json.dumps(config)}",
        ],
        env=cluster["env"],
        cwd=cluster["root"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = next(
        line.split("UUID:")[1].strip() for line in done.stdout.splitlines() if "UUID:" in line
    )
    parent = wait_final(run_id, 420, cluster["procs"])
    assert parent.state.is_completed(), f"{parent.state}\n{cluster['procs'].logs()}"
    assert parent.work_pool_name == "cpu"

    children = trial_runs()
    assert len(children) == 2
    assert all(c.state.is_completed() and c.work_pool_name == "gpu" for c in children), [
        (c.name, c.state, c.work_pool_name) for c in children
    ]
    assert sorted(c.parameters["batch_size"] for c in children) == [32, 64]
    assert all(c.id != parent.id for c in children)
    said = "\n".join(log.message for log in flow_run_logs(parent.id))
    assert "config: batch_sizes, lr_range.steps, max_epochs, patiences from this run's " in said
    assert "dispatch, export_to" in said and "from deployment 'manual'" in said

    latest = json.loads((exports / "latest.json").read_text())
    run_dir = exports / latest["run_id"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert len(manifest["trials"]) == 4
    assert all(t["status"] == "ok" for t in manifest["trials"])
    # Each cell's per-example validation values came from its worker with its model: the
    # parent tested every other cell against the best.
    assert len(manifest["selection"]["p_vs_best"]) == 3
    for rel, digest in manifest["files"].items():
        assert sha256_file(run_dir / rel) == digest, rel
    assert (run_dir / "lr_sweeps" / "lr_sweep_b64.png").is_file()


def test_a_rerun_reuses_published_children(cluster) -> None:
    from nighttune.tasks.dispatch.deployments import run_trials_on_deployments

    config = load_tune_config(
        None, dict(GRID, export_to=str(cluster["root"] / "exports"), dispatch="deployments")
    )
    before = len(trial_runs())
    sweeps, rows = run_trials_on_deployments(
        config, parent_id="rerun-parent", target=export_target(config)
    )
    assert len(trial_runs()) == before  # nothing started: both batch sizes were published
    assert len(rows) == 4 and all(r.status == "ok" for r in rows) and len(sweeps) == 2


def test_a_failed_child_becomes_failed_rows_and_is_retried(cluster, tmp_path) -> None:
    from nighttune.tasks.dispatch.deployments import run_trials_on_deployments

    # The children cannot load this dataset: they fail, the parent does not raise.
    config = load_tune_config(
        None,
        dict(
            GRID,
            batch_sizes=[16],
            export_to=str(tmp_path),
            dispatch="deployments",
            trial_timeout_s=300,
            dataset={"name": str(tmp_path / "no-images")},
        ),
    )
    before = len(trial_runs())
    sweeps, rows = run_trials_on_deployments(
        config, parent_id="failing-parent", target=export_target(config)
    )
    assert sweeps == [] and [r.status for r in rows] == ["failed", "failed"]
    assert "ended FAILED" in rows[0].error
    assert len(trial_runs()) == before + 1
    # The same parent again (a retry): the failed child is not reused but run anew.
    _, rows = run_trials_on_deployments(
        config, parent_id="failing-parent", target=export_target(config)
    )
    assert [r.status for r in rows] == ["failed", "failed"]
    assert len(trial_runs()) == before + 2


def test_missing_deployment_is_a_clear_error(cluster) -> None:
    from nighttune.tasks.dispatch.deployments import check_deployment

    check_deployment("train-trial/gpu")
    with pytest.raises(
        ConfigError, match="deployment 'train-trial/cpu' not found on .*make deploy"
    ):
        check_deployment("train-trial/cpu")


def builder_config(tmp_path: Path) -> TuneConfig:
    """A grid of a user's model builder on a user's data builder, in modules named like
    nighttune's packages and Prefect's flow files (tests/support/named_like_us: `tasks`,
    `flows`, importing the user's `data`, `models`, `predict`, `trial` and `tune`)."""
    project = str(ROOT / "tests" / "support" / "named_like_us")
    return load_tune_config(
        None,
        dict(
            GRID,
            batch_sizes=[16, 32],
            monitor="val_accuracy",
            export_to=str(tmp_path),
            dispatch="deployments",
            trial_timeout_s=300,
            dataset={"builder": "flows:blobs", "code_path": [project]},
            model={"builder": "tasks:build", "kwargs": {"width": 8}, "code_path": [project]},
        ),
    )


def test_user_builders_train_on_the_workers(cluster, tmp_path) -> None:
    """Each gpu worker (its own process, home and cache) imports the user's model and
    data builders from the config's code_path and trains them."""
    from nighttune.tasks.dispatch.deployments import run_trials_on_deployments
    from nighttune.tasks.dispatch.handoff import expected_code

    config = builder_config(tmp_path)
    sweeps, rows = run_trials_on_deployments(
        config, parent_id="builders-parent", target=export_target(config)
    )
    assert [r.status for r in rows] == ["ok"] * 4, [r.error for r in rows]
    assert len(sweeps) == 2 and all(0.0 <= r.val_accuracy <= 1.0 for r in rows)
    started = [c for c in trial_runs() if c.parameters["config"]["export_to"] == str(tmp_path)]
    assert len(started) == 2, "one child per batch size, on the workers"
    assert all(c.state.is_completed() for c in started)
    code = expected_code(config.trial)
    assert set(code) == {"tasks:build", "flows:blobs"}
    assert all(c.parameters["code"] == code for c in started)


def test_a_worker_with_other_code_refuses_in_one_line(cluster, tmp_path, monkeypatch) -> None:
    from nighttune.tasks.dispatch.deployments import run_trials_on_deployments

    config = builder_config(tmp_path).model_copy(update={"batch_sizes": (16,)})
    # The run "started with" another version of tasks.py than the workers have.
    other = {"tasks:build": "0" * 64}
    monkeypatch.setattr("nighttune.tasks.dispatch.deployments.expected_code", lambda _spec: other)
    sweeps, rows = run_trials_on_deployments(
        config, parent_id="other-code-parent", target=export_target(config)
    )
    assert sweeps == [] and [r.status for r in rows] == ["failed", "failed"]
    assert "this worker's module" in rows[0].error and "differs from" in rows[0].error
    assert "(000000000000)" in rows[0].error


def test_a_paused_trial_pool_is_said_and_leaves_no_orphans(cluster, tmp_path, caplog) -> None:
    """With the gpu pool paused the parent warns at once, naming the pool, and at its
    timeout cancels the children it scheduled: none runs later when the pool resumes."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolUpdate

    from nighttune.tasks.dispatch.deployments import run_trials_on_deployments

    config = load_tune_config(
        None,
        dict(GRID, export_to=str(tmp_path), dispatch="deployments", trial_timeout_s=10),
    )
    with get_client(sync_client=True) as client:
        client.update_work_pool("gpu", WorkPoolUpdate(is_paused=True))
        try:
            before = {c.id for c in trial_runs()}
            sweeps, rows = run_trials_on_deployments(
                config, parent_id="paused-parent", target=export_target(config)
            )
        finally:
            client.update_work_pool("gpu", WorkPoolUpdate(is_paused=False))
        children = [c for c in trial_runs() if c.id not in before]
    assert "work pool 'gpu' is paused: 2 child run(s) wait" in caplog.text
    assert sweeps == [] and {r.status for r in rows} == {"failed"}
    assert "it never started and was cancelled" in rows[0].error
    assert len(children) == 2 and all(c.state.type.value == "CANCELLED" for c in children)
    time.sleep(3)  # the pool is resumed and the workers poll every second: nothing starts
    assert all(c.state.type.value == "CANCELLED" for c in trial_runs() if c.id not in before)


def test_the_time_budget_stops_a_running_child_or_plans_its_schedule(cluster, tmp_path) -> None:
    """Children that would train for hours are given the parent's end of training time.
    Without earlier timings (b16) the fit stops at an epoch boundary in time to publish,
    keeps the patience that finished, and the parent has its rows by that end. With
    them (b32: 20 s an epoch, said the parent's history) the child plans its annealed
    schedule to end in its share of the time, and every patience finishes. Neither
    result is ever reused. (One after the other: two children at once on a loaded
    2-core machine left the cut one too little time to publish.)"""
    from nighttune.tasks.dispatch.deployments import run_trials_on_deployments
    from nighttune.tasks.dispatch.handoff import cut_short, read_published

    config = load_tune_config(
        None,
        dict(
            GRID,
            batch_sizes=[16, 32],
            patiences=[2, 9000],
            max_epochs=9000,
            export_to=str(tmp_path),
            dispatch="deployments",
        ),
    )
    budget_s = 120.0  # a child's start and hand-over are slow on a loaded machine
    started = time.time()
    sweeps, cut = run_trials_on_deployments(
        config, "budget-parent", started + budget_s, target=export_target(config), batch_sizes=(16,)
    )
    took = time.time() - started
    assert took <= budget_s + 2 * 2.0, took  # two polls past the end at most
    assert len(sweeps) == 1 and [r.status for r in cut] == ["ok", "not run"], cut
    assert cut[1].error.startswith("time budget: the fit stopped after epoch ")
    budget_s = 90.0
    started = time.time()
    sweeps, planned = run_trials_on_deployments(
        config,
        "budget-parent",
        started + budget_s,
        target=export_target(config),
        batch_sizes=(32,),
        epoch_s={32: 20.0},
    )
    assert len(sweeps) == 1 and [r.status for r in planned] == ["ok", "ok"], planned
    children = {
        c.parameters["batch_size"]: c
        for c in trial_runs()
        if c.parameters["config"]["export_to"] == str(tmp_path)
    }
    assert all(child.state.is_completed() for child in children.values())
    assert "epochs" not in children[16].parameters  # no earlier timing: no plan
    # One child on two gpu slots: one turn, the time left at 20 s an epoch
    parent_plan = children[32].parameters["epochs"]
    assert children[32].parameters["epoch_s"] == 20.0 and 1 <= parent_plan <= 4
    epochs = planned[1].planned_epochs  # the child's own plan: its time left at its trial
    assert epochs is not None and 1 <= epochs <= parent_plan
    assert planned[1].epochs_run == epochs and planned[1].stop_epoch is None
    for batch_size in (16, 32):  # a rerun trains both again
        assert cut_short(read_published(config.trial, batch_size, target=export_target(config))[1])
