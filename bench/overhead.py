"""Orchestration overhead: the `tune` flow / the same steps called as plain functions.

Same config (digits, 2 batch sizes x 2 patiences), each variant with a fresh store so
all do all the work, run in turn twice; best of two each. The Prefect API is started
before timing (as in production, where the server is already up). Two more variants
say where the flow's extra time goes: without flow-run heartbeats (Prefect joins the
heartbeat thread at the end of a run, which sleeps in 1 s steps), and also with the
tasks' tags removed (each tagged task run asks the server for a concurrency slot).
Each flow variant also counts the server's 503 answers: the SQLite-backed server
answers "database is locked" (503) when a slot request races its own writes, and
Prefect's client waits ~2 s before it asks again. The temporary server runs with the
settings `nighttune server` and `nighttune tune` give theirs (flows/server.py: the
task-run recorder writes in batches, which is what avoids those 503s); Prefect's
default, for comparison:
PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE=1 .venv/bin/python bench/overhead.py

    .venv/bin/python bench/overhead.py [--api-url http://127.0.0.1:4200/api]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nighttune.tasks.core.config import TuneConfig
from nighttune.tasks.core.config_file import load_tune_config  # noqa: E402


def config(root: Path) -> TuneConfig:
    return load_tune_config(
        None,
        {
            "batch_sizes": [32, 64],
            "patiences": [2, 4],
            "max_epochs": 10,
            "lr_range.steps": 30,
            "export_to": str(root / "exports"),
            "cache_dir": str(root / "cache"),
            "tensorboard": False,
        },
    )


def plain(cfg: TuneConfig) -> None:
    from nighttune.flows.target import export_target
    from nighttune.tasks.data.datasets import load_dataset
    from nighttune.tasks.preflight import preflight
    from nighttune.tasks.runs.export import export_run, new_run_id
    from nighttune.tasks.tuning.context import trial_context
    from nighttune.tasks.tuning.lr_range import stored_lr_range_test
    from nighttune.tasks.tuning.selection import select_best
    from nighttune.tasks.tuning.training import train_trial

    target = export_target(cfg)
    preflight(cfg, target=target)
    cached = load_dataset(cfg.dataset, cfg.cache_dir)
    sweeps = [
        stored_lr_range_test(
            cached, cfg.model, b, spec=cfg.lr_range, seed=cfg.seed, cache_dir=cfg.cache_dir
        )
        for b in cfg.batch_sizes
    ]
    run = trial_context(cfg, cached)
    rows = [
        row
        for s in sweeps
        for row in train_trial(cached, run, s.batch_size, lr=s.chosen_lr, lr_method=s.method)
    ]
    export_run(
        cfg,
        cached,
        target=target,
        objective=run.objective,
        sweeps=sweeps,
        rows=rows,
        winner=select_best(rows, "val_accuracy", "max"),
        run_id=new_run_id(),
    )


def untagged(cfg: TuneConfig):
    """The tune flow with its tasks' tags removed: no concurrency-slot requests."""
    import nighttune.flows.tune

    names = ("preflight", "cache_dataset", "lr_sweep", "train_trial", "export_run")
    saved = {name: getattr(nighttune.flows.tune, name) for name in names}
    try:
        for name, task in saved.items():
            setattr(nighttune.flows.tune, name, task.with_options(tags=set()))
        return nighttune.flows.tune.tune(cfg)
    finally:
        for name, task in saved.items():
            setattr(nighttune.flows.tune, name, task)


def without_heartbeats(run):
    """``run`` without flow-run heartbeats (what `nighttune tune` does without a server:
    see flows/server.py)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    def wrapped(cfg: TuneConfig):
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            return run(cfg)

    return wrapped


class RetryCounter:
    """Counts the Prefect API's 503 answers (each is retried by the client after ~2 s)."""

    def __init__(self) -> None:
        self.count = 0

    def __enter__(self) -> RetryCounter:
        import httpx

        self._send = send = httpx.AsyncClient.send
        counter = self

        async def counting(client: httpx.AsyncClient, request: httpx.Request, **kw: Any) -> Any:
            response = await send(client, request, **kw)
            counter.count += response.status_code == 503
            return response

        httpx.AsyncClient.send = counting  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        import httpx

        httpx.AsyncClient.send = self._send  # type: ignore[method-assign]


@contextlib.contextmanager
def server(api_url: str | None) -> Iterator[None]:
    """The given Prefect API, else a temporary SQLite-backed one (Prefect's test harness)
    with nighttune's server settings."""
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from nighttune.flows.server import unset_server_setting_updates

    if api_url:
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            yield
        return
    with (
        temporary_settings(updates=unset_server_setting_updates()),
        prefect_test_harness(server_startup_timeout=120),
    ):
        yield


def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    from prefect import flow

    from nighttune.flows.tune import tune

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--api-url",
        help="a running Prefect server to use (e.g. one on PostgreSQL); "
        "default: a temporary SQLite-backed one",
    )
    args = parser.parse_args(argv)

    variants = {
        "plain": plain,
        "flow": tune,
        "flow, no heartbeats": without_heartbeats(tune),
        "flow, no heartbeats, untagged tasks": without_heartbeats(untagged),
    }
    with tempfile.TemporaryDirectory() as tmp, server(args.api_url):
        flow(lambda: None, name="warm-up")()
        times: dict[str, list[float]] = {name: [] for name in variants}
        retries: dict[str, list[int]] = {name: [] for name in variants}
        for _ in range(2):
            for name, fn in variants.items():
                cfg = config(Path(tmp) / f"{len(times[name])}-{name}")  # fresh store
                with RetryCounter() as counter:
                    start = time.perf_counter()
                    fn(cfg)
                    times[name].append(time.perf_counter() - start)
                retries[name].append(counter.count)
    plain_s = min(times["plain"])

    def runs(name: str) -> str:
        """Every run of a variant as its ratio to plain, with the 503 retries it met."""
        return ", ".join(
            f"{seconds / plain_s:.2f} ({count} 503s)"
            for seconds, count in zip(times[name], retries[name], strict=True)
        )

    print(f"plain functions: best {plain_s:.1f} s; flow runs / plain (the server's 503 retries):")
    for name in list(variants)[1:]:
        print(f"  {name:<38} {runs(name)}")
    rows = [
        (
            "orchestration: tune flow / the same steps as plain functions",
            f"{min(times['flow']) / plain_s:.2f} best; runs {runs('flow')}",
            "<= 1.10",
        )
    ]
    for name in list(variants)[2:]:
        rows.append((f"  {name} / plain functions", runs(name), "-"))
    return rows


if __name__ == "__main__":
    main()
