"""A Prefect server only its team can drive, and no secret in Prefect's database (issue 34).

As the README runs it: `nighttune server` with PREFECT_SERVER_API_AUTH_STRING (on
127.0.0.1: the tests never listen beyond this machine), `make pools` / `make deploy`'s
commands, a cpu worker and `prefect deployment run` in separate processes, each client
with PREFECT_API_AUTH_STRING. One server for the module; every process is stopped by its
PID at teardown.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.harness import ROOT, Processes, nighttune_cmd, start_prefect_server
from tests.support.webhook import Webhook

BIN = Path(sys.executable).parent
# Unique per test run, so that finding one anywhere can only be a leak.
AUTH = f"nighttune:{secrets.token_hex(16)}"
TOKEN = f"hooktok{secrets.token_hex(12)}"
# A night that is cut by its time budget (and says so to the webhook), yet completes.
CUT_NIGHT = {
    "dispatch": "local",
    "batch_sizes": [64],
    "patiences": [2, 9000],
    "max_epochs": 10000,
    "time_budget": 20,
    "lr_range": {"steps": 20},
}


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


# --- the decisions, without a server


def test_off_loopback_a_server_needs_an_auth_string_or_a_trusted_network() -> None:
    from nighttune.flows.server import auth_settings, check_auth, is_loopback
    from nighttune.tasks.core.errors import UserError

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::")
    assert not is_loopback("192.0.2.7") and not is_loopback("no-such-host.invalid")
    check_auth("127.0.0.1", trusted_network=False, environ={})
    check_auth("0.0.0.0", trusted_network=True, environ={})
    check_auth("0.0.0.0", trusted_network=False, environ={"PREFECT_SERVER_API_AUTH_STRING": AUTH})
    with pytest.raises(UserError, match="export PREFECT_SERVER_API_AUTH_STRING=.*--trusted-n"):
        check_auth("0.0.0.0", trusted_network=False, environ={"PREFECT_SERVER_API_AUTH_STRING": ""})
    # With an auth string, CSRF protection too; a value set by hand wins.
    on = {"PREFECT_SERVER_API_AUTH_STRING": AUTH}
    assert auth_settings(on) == {"PREFECT_SERVER_CSRF_PROTECTION_ENABLED": "true"}
    assert auth_settings(on | {"PREFECT_SERVER_CSRF_PROTECTION_ENABLED": "false"}) == {}
    assert auth_settings({}) == {}


def test_a_wildcard_bind_whose_name_is_loopback_is_a_warning_with_the_fix() -> None:
    from nighttune.flows.server import ui_api_warning

    warning = ui_api_warning("0.0.0.0", "http://localhost:4200/api")
    assert warning and "--ui-api-url" in warning and "PREFECT_UI_API_URL" in warning
    assert ui_api_warning("0.0.0.0", "http://192.0.2.7:4200/api") is None
    assert ui_api_warning("127.0.0.1", "http://127.0.0.1:4200/api") is None  # meant local


def test_a_webhook_comes_from_the_environment_or_a_reference() -> None:
    from nighttune.tasks.core.config import TuneConfig
    from nighttune.tasks.core.config_file import load_tune_config
    from nighttune.tasks.core.urls import redact_webhook
    from nighttune.tasks.runs.notify import by_reference, webhook_url

    url = f"https://hooks.example.com/T0/{TOKEN}"
    assert webhook_url(None, {}) is None
    assert webhook_url(None, {"NIGHTTUNE_NOTIFY_URL": url}) == url
    assert webhook_url("env:OUR_HOOK", {"OUR_HOOK": url}) == url
    assert webhook_url("env:OUR_HOOK", {}) is None  # a warning says it is not set
    assert webhook_url("env:OUR_HOOK", {"OUR_HOOK": "env:OTHER"}) is None
    assert redact_webhook("env:OUR_HOOK") == "env:OUR_HOOK"
    assert load_tune_config(None, {"notify_url": "secret:night-hook"}).notify_url
    with pytest.raises(Exception, match="env:NAME wants a name"):
        load_tune_config(None, {"notify_url": "env:no spaces"})
    environ: dict[str, str] = {}
    moved = by_reference(TuneConfig(notify_url=url), environ)
    assert moved.notify_url == "env:NIGHTTUNE_NOTIFY_URL" and environ == {
        "NIGHTTUNE_NOTIFY_URL": url
    }
    assert TOKEN not in moved.model_dump_json()


def test_a_server_off_loopback_without_an_auth_string_exits_2_in_one_line(cli_env) -> None:
    """Refused before it binds: nothing ever listens beyond this machine."""
    env = {k: v for k, v in cli_env.items() if k != "PREFECT_SERVER_API_AUTH_STRING"}
    done = subprocess.run(
        nighttune_cmd("server", "--host", "0.0.0.0", "--port", "4200"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    line = one_line(done.stderr)
    assert "PREFECT_SERVER_API_AUTH_STRING" in line and "--trusted-network" in line
    assert done.stdout == ""


# --- a secured server, as the team runs it


@pytest.fixture(scope="module")
def secured(tmp_path_factory, prefect_database) -> Iterator[dict]:
    """`nighttune server` with an auth string; pools and deployments made with it; one
    cpu worker whose machine holds the webhook (NIGHTTUNE_NOTIFY_URL) in its
    environment."""
    root = tmp_path_factory.mktemp("secured")
    hook = Webhook(path=f"/hooks/T0/{TOKEN}")
    env = dict(os.environ)
    env.update(
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        NIGHTTUNE_CODE_DIR=str(ROOT),
        NIGHTTUNE_EXPORT_TO=str(root / "exports"),
        NIGHTTUNE_TIMEZONE="UTC",
        PYTHONPATH=str(ROOT),
    )
    for name in ("PREFECT_RESULTS_LOCAL_STORAGE_PATH", "PREFECT_API_AUTH_STRING"):
        env.pop(name, None)
    procs = Processes()
    try:
        server_env = dict(env, PREFECT_SERVER_API_AUTH_STRING=AUTH)
        api = start_prefect_server(procs, root, server_env, prefect_database)
        env.update(PREFECT_API_URL=api, PREFECT_API_AUTH_STRING=AUTH)
        for args in (
            [str(BIN / "python"), "deployments/pools.py"],
            [str(BIN / "prefect"), "--no-prompt", "deploy"]
            + ["--prefect-file", "deployments/prefect.yaml", "--all"],
        ):
            done = subprocess.run(
                args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180
            )
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        home = root / "cpu-1"
        home.mkdir()
        worker_env = dict(env, HOME=str(home), PREFECT_HOME=str(home / ".prefect"))
        worker_env["NIGHTTUNE_NOTIFY_URL"] = hook.url  # the worker machine's secret
        worker_env.pop("NIGHTTUNE_CACHE_DIR", None)
        procs.start(
            [str(BIN / "prefect"), "worker", "start", "--pool", "cpu", "--name", "cpu-1"],
            worker_env,
            home,
            root / "cpu-1.log",
        )
        from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: api, PREFECT_API_AUTH_STRING: AUTH}):
            yield {"root": root, "env": env, "api": api, "procs": procs, "hook": hook}
    finally:
        from nighttune.flows.server import drain_prefect_workers

        drain_prefect_workers()  # this process's events (the Secret block's) before the stop
        procs.stop_all()
        hook.close()


def status_of(url: str, *, auth: str | None = None, method: str = "GET") -> int:
    request = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    request.add_header("Content-Type", "application/json")
    if auth is not None:
        request.add_header("Authorization", "Basic " + b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.slow
def test_the_api_asks_for_the_auth_string_and_csrf_is_on(secured) -> None:
    api = secured["api"]
    assert status_of(f"{api}/admin/settings") == 401
    assert status_of(f"{api}/admin/settings", auth="nighttune:wrong") == 401
    assert status_of(f"{api}/admin/settings", auth=AUTH) == 200
    # (a state-changing request meets the CSRF check first: refused either way)
    assert status_of(f"{api}/work_pools/filter", method="POST") in (401, 403)
    assert status_of(f"{api}/health") == 200  # open to load balancers' probes
    # Logged in, a state-changing request without Prefect's CSRF token is refused.
    assert status_of(f"{api}/work_pools/filter", auth=AUTH, method="POST") == 403
    with urllib.request.urlopen(api.removesuffix("/api") + "/ui-settings", timeout=30) as r:
        ui = json.load(r)
    assert ui["auth"] == "BASIC" and ui["csrf_enabled"] is True


@pytest.mark.slow
@pytest.mark.parametrize(("auth", "said"), [(None, "wants its auth"), ("x:y", "refused")])
def test_a_missing_or_wrong_auth_string_is_one_line(secured, auth, said) -> None:
    """`make deploy` and `make worker-cpu/gpu` check first (deployments/pools.py --check),
    as `nighttune tune` does: exit 2, one line. Prefect's own worker stops at once."""
    env = {k: v for k, v in secured["env"].items() if k != "PREFECT_API_AUTH_STRING"}
    if auth:
        env["PREFECT_API_AUTH_STRING"] = auth
    run = {"env": env, "cwd": ROOT, "capture_output": True, "text": True, "timeout": 120}
    check = subprocess.run([str(BIN / "python"), "deployments/pools.py", "--check"], **run)
    assert check.returncode == 2 and said in one_line(check.stderr), check.stderr
    assert "PREFECT_API_AUTH_STRING" in check.stderr
    tune = subprocess.run(nighttune_cmd("tune", "--dispatch", "deployments"), **run)
    assert tune.returncode == 2, tune.stderr
    assert said in one_line(tune.stderr) and "PREFECT_API_AUTH_STRING" in tune.stderr
    worker = subprocess.run([str(BIN / "prefect"), "worker", "start", "--pool", "cpu"], **run)
    assert worker.returncode == 1 and "401 Unauthorized" in worker.stdout + worker.stderr
    assert "Traceback" not in worker.stdout + worker.stderr
    # Prefect's own `deployment run` fails at once, though with its traceback.
    started = subprocess.run([str(BIN / "prefect"), "deployment", "run", "tune/manual"], **run)
    assert started.returncode == 1 and "401 Unauthorized" in started.stdout + started.stderr
    for text in (check.stderr, tune.stderr, worker.stdout, started.stdout, started.stderr):
        assert AUTH not in text


def wait_final(flow_run_id: str, timeout: float, procs: Processes):
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            if run.state is not None and run.state.is_final():
                return run
            assert time.monotonic() < deadline, f"run not final: {run.state}\n{procs.logs()}"
            time.sleep(1)


@pytest.mark.slow
def test_runs_with_a_webhook_leave_its_token_and_the_auth_string_nowhere(secured, tmp_path) -> None:
    """A CLI run with --notify-url (its night fails: nothing fits a 1 s budget) and a
    deployment run through the worker (its webhook in the worker's environment; the
    night is cut by its budget, completes, and says so): both notifications arrive, and
    neither the token nor the auth string is in Prefect's database files, the server's
    or the worker's log, the export folders or on the screen."""
    hook, root, env = secured["hook"], secured["root"], secured["env"]
    cli_exports = tmp_path / "exports"
    cli = subprocess.run(
        nighttune_cmd("tune", "--batch-sizes", "64", "--patiences", "2", "--max-epochs", "2")
        + ["--time-budget", "1s", "--export-to", str(cli_exports), "--notify-url", hook.url],
        env=dict(env, NIGHTTUNE_CACHE_DIR=str(tmp_path / "cache"), HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 1 and "every trial failed" in cli.stderr, cli.stderr[-3000:]
    assert [b["status"] for b in hook.bodies] == ["failed"]

    started = subprocess.run(
        [str(BIN / "prefect"), "deployment", "run", "tune/manual"]
        + ["-p", f"config={json.dumps(CUT_NIGHT)}"],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stdout + started.stderr
    run_id = next(
        line.split("UUID:")[1].strip() for line in started.stdout.splitlines() if "UUID:" in line
    )
    run = wait_final(run_id, 420, secured["procs"])
    assert run.state.is_completed(), f"{run.state}\n{secured['procs'].logs()}"
    assert hook.bodies[-1]["events"] == ["cut by its time budget"], hook.bodies

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        (cli_run,) = [r for r in client.read_flow_runs() if r.deployment_id is None]
    assert cli_run.parameters["config"]["notify_url"] == "env:NIGHTTUNE_NOTIFY_URL"

    time.sleep(2)  # the recorder writes at least once a second: everything is in the DB
    places = [*(root / "server-home").glob("prefect.db*"), root / "server.log"]
    places += [root / "cpu-1.log", *[p for p in (root / "exports").rglob("*") if p.is_file()]]
    places += [p for p in cli_exports.rglob("*") if p.is_file()]
    assert any(p.name == "manifest.json" for p in places)
    for path in places:
        data = path.read_bytes()
        assert TOKEN.encode() not in data, path
        assert AUTH.encode() not in data, path
    for text in (cli.stdout, cli.stderr, started.stdout, started.stderr):
        assert TOKEN not in text and AUTH not in text


@pytest.mark.slow
def test_a_secret_block_names_the_webhook(secured) -> None:
    """notify_url: secret:NAME reads a Prefect Secret block where the flow runs."""
    from prefect.blocks.system import Secret

    from nighttune.flows.secrets import secret_block
    from nighttune.tasks.runs.notify import webhook_url

    url = "https://hooks.example.com/T0/from-a-block"
    Secret(value=url).save("night-hook", overwrite=True)
    assert webhook_url("secret:night-hook", read_secret=secret_block) == url
    # A missing block: a warning, no notification; the run goes on.
    assert webhook_url("secret:no-such-block", read_secret=secret_block) is None
