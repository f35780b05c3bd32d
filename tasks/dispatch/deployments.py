"""Fanning trials out to workers: one `train-trial` deployment run per batch size.

Workers may be on other machines, so nothing travels through a local disk: a child
run publishes its LR sweep, rows and models under the export target
(``<export_to>/.work/trials/b<batch>-<fp>/``, staged and verified like every stored
result), and the parent reads them from there. With an ``s3://`` target the entry is
built locally and uploaded (every object verified, ``meta.json`` last); the parent
downloads it into its cache and verifies it again. The folder is keyed by everything
the trial depends on, so a parent that is rerun finds finished children's work and
does not start them again.

`run_deployment` does not raise when a child fails or times out: each child's final
state is checked, and a child that did not complete becomes failed rows. Idempotency
keys carry the parent run and an attempt number: a retried parent gets its running
or finished children back, and starts a failed child again under the next attempt.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from tasks.core.config import TuneConfig
from tasks.core.errors import ConfigError, UnsafePath
from tasks.core.logs import get_logger
from tasks.core.records import LRSweep, TrialResult, sweep_files
from tasks.data.datasets import resolve_cache_dir
from tasks.storage import s3
from tasks.storage.files import discard_dir, safe_join, safe_relpath, staged_dir
from tasks.storage.store import META, entry_path, get_or_build, read_entry
from tasks.tuning.lr_range import SWEEP_VERSION
from tasks.tuning.training import TRIAL_VERSION

WORK = ".work"
POLL_SECONDS = 2.0
MAX_ATTEMPTS = 3


def work_root(config: TuneConfig) -> Path:
    """Where hand-over entries are built and read: the shared export folder itself, or
    for an S3 target a local mirror (in the cache) of ``<prefix>/.work/``."""
    if s3.is_s3(config.export_to):
        uri = s3.S3Uri.parse(config.export_to)
        prefix = hashlib.sha256(uri.prefix.encode()).hexdigest()[:12]
        return resolve_cache_dir(config.cache_dir) / "handoff" / uri.bucket / prefix
    return Path(config.export_to).expanduser().resolve() / WORK


def _remote(config: TuneConfig, entry: Path) -> tuple[s3.S3Uri, str]:
    """The S3 target and the key prefix of an entry's remote copy."""
    uri = s3.S3Uri.parse(config.export_to)
    return uri, uri.key(WORK, "trials", entry.name)


def handoff_key(config: TuneConfig, batch_size: int) -> dict[str, Any]:
    """Everything a child's published result depends on (not where it is exported)."""
    relevant = config.model_dump(
        mode="json",
        exclude={
            "export_to",
            "cache_dir",
            "dispatch",
            "s3_endpoint_url",
            "trial_deployment",
            "trial_timeout_s",
        },
    )
    return {
        "config": relevant,
        "batch_size": batch_size,
        "versions": [SWEEP_VERSION, TRIAL_VERSION],
    }


def publish_trial(
    config: TuneConfig, batch_size: int, sweep: LRSweep, rows: list[TrialResult]
) -> Path:
    """Child side: copy the sweep files, rows and models into the shared folder."""

    def build(staging: Path) -> dict[str, Any]:
        if sweep.path:
            for name in sweep_files(batch_size):
                shutil.copyfile(Path(sweep.path) / name, staging / name)
        published = []
        for row in rows:
            if row.model_path:
                name = Path(row.model_path).name
                if not (staging / name).exists():
                    shutil.copyfile(row.model_path, staging / name)
                row = row.model_copy(update={"model_path": name})
            published.append(row.model_dump())
        from tasks.reporting.histories import trial_histories

        history = trial_histories(rows).get(batch_size)
        return {"sweep": sweep.model_dump(exclude={"path"}), "rows": published, "history": history}

    key = handoff_key(config, batch_size)
    entry, meta, _ = get_or_build(work_root(config), "trials", f"b{batch_size}", key, build)
    if s3.is_s3(config.export_to):  # upload every file, verified; meta.json (the seal) last
        uri, prefix = _remote(config, entry)
        client = s3.client(config.s3_endpoint_url)
        for rel in [*sorted(meta["files"]), META]:
            s3.upload_verified(client, entry / rel, uri.bucket, f"{prefix}/{rel}")
    return entry


def read_published(config: TuneConfig, batch_size: int) -> tuple[LRSweep, list[TrialResult]] | None:
    """Parent side: the child's verified result, or None if there is none (yet)."""
    key = handoff_key(config, batch_size)
    entry = entry_path(work_root(config), "trials", f"b{batch_size}", key)
    meta = read_entry(entry, key)
    if meta is None and s3.is_s3(config.export_to):
        meta = _download_entry(config, entry, key)
    if meta is None:
        return None
    data = meta["data"]
    sweep = LRSweep.model_validate(data["sweep"]).model_copy(update={"path": str(entry)})
    rows = []
    for row in data["rows"]:
        model = row["model_path"] and safe_join(entry, row["model_path"], "published model file")
        rows.append(TrialResult.model_validate(dict(row, model_path=str(model) if model else None)))
    return sweep, rows


def _download_entry(config: TuneConfig, entry: Path, key: dict[str, Any]) -> dict | None:
    """Fetch a child's published entry from S3 into the local mirror; None if not there."""
    uri, prefix = _remote(config, entry)
    client = s3.client(config.s3_endpoint_url)
    text = s3.get_text(client, uri.bucket, f"{prefix}/{META}")
    if text is None:
        return None
    try:
        files = json.loads(text)["files"]
        names = [safe_relpath(rel, "published file name") for rel in dict(files)]
    except (ValueError, KeyError, TypeError):
        raise UnsafePath(f"s3://{uri.bucket}/{prefix}/{META} is not a published result") from None
    discard_dir(entry)
    with staged_dir(entry) as staging:
        for rel in names:
            destination = safe_join(staging, rel, "published file name")
            s3.download(client, uri.bucket, f"{prefix}/{rel}", destination)
        (staging / META).write_text(text)
    return read_entry(entry, key)


def check_deployment(name: str) -> None:
    """Refuse at once if the trial deployment or its work pool is missing."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise ConfigError(
            "dispatch 'deployments' needs a Prefect server: set PREFECT_API_URL "
            "(make server; make pools deploy)"
        )
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(name)
        except ObjectNotFound:
            raise ConfigError(
                f"deployment '{name}' not found on {url}; create it with `make deploy`"
            ) from None
        pool = deployment.work_pool_name or "(none)"
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            raise ConfigError(
                f"work pool '{pool}' of deployment '{name}' not found on {url}; "
                "create it with `make pools`"
            ) from None


def _failed_rows(config: TuneConfig, batch_size: int, error: str) -> list[TrialResult]:
    return [
        TrialResult(
            batch_size=batch_size,
            patience=p,
            lr=None,
            lr_method=None,
            status="failed",
            error=error[:500],
        )
        for p in sorted(config.patiences)
    ]


def run_trials_on_deployments(
    config: TuneConfig, parent_id: str
) -> tuple[list[LRSweep], list[TrialResult]]:
    """Start (or reuse) one child run per batch size, wait for all, gather their rows."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    log = get_logger()
    results: dict[int, tuple[LRSweep | None, list[TrialResult]]] = {}
    waiting: dict[int, Any] = {}
    attempts: dict[int, int] = {}

    def start(batch_size: int) -> None:
        attempt = attempts.get(batch_size, 0)
        called = time.time()
        run: Any = run_deployment(
            config.trial_deployment,
            parameters={"config": config.model_dump(mode="json"), "batch_size": batch_size},
            timeout=0,
            idempotency_key=f"{parent_id}:b{batch_size}:attempt{attempt}",
            as_subflow=True,
        )
        reused = run.created is not None and run.created.timestamp() < called - 1
        if (
            reused
            and run.state is not None
            and run.state.is_final()
            and not run.state.is_completed()
        ):
            attempts[batch_size] = attempt + 1  # a failed child from an earlier try: run it again
            if attempts[batch_size] < MAX_ATTEMPTS:
                start(batch_size)
                return
        log.info(
            "batch size %d: child run %s (%s)",
            batch_size,
            run.name,
            "reused" if reused else "started",
        )
        waiting[batch_size] = run

    for batch_size in config.batch_sizes:
        published = read_published(config, batch_size)
        if published is not None:
            log.info("batch size %d: published before, reusing it", batch_size)
            results[batch_size] = published
        else:
            start(batch_size)

    deadline = time.monotonic() + config.trial_timeout_s
    with get_client(sync_client=True) as client:
        while waiting:
            for batch_size, run in list(waiting.items()):
                state = client.read_flow_run(run.id).state
                if state is None or not state.is_final():
                    continue
                del waiting[batch_size]
                published = read_published(config, batch_size) if state.is_completed() else None
                if published is not None:
                    results[batch_size] = published
                    log.info("batch size %d: child %s completed", batch_size, run.name)
                else:
                    why = f"train-trial run {run.name} ended {state.type.value}"
                    why += f": {state.message}" if state.message else ""
                    if state.is_completed():
                        why += " without publishing a result"
                    log.error("batch size %d: %s", batch_size, why)
                    results[batch_size] = (None, _failed_rows(config, batch_size, why))
            if waiting and time.monotonic() > deadline:
                for batch_size, run in waiting.items():
                    why = (
                        f"train-trial run {run.name} did not finish within "
                        f"{config.trial_timeout_s} s"
                    )
                    results[batch_size] = (None, _failed_rows(config, batch_size, why))
                break
            if waiting:
                time.sleep(POLL_SECONDS)

    sweeps = [s for b in config.batch_sizes if (s := results[b][0]) is not None]
    rows = [row for b in config.batch_sizes for row in results[b][1]]
    return sweeps, rows
