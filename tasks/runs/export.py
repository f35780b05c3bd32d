"""Exporting a run: the winning model, its SavedModel, reports and a manifest.

Layout under the target folder::

    <target>/<run-id>/model.keras        the winner, loadable with safe_mode=True
                      saved_model/       `model.export` (TF Serving, TFLite converters)
                      manifest.json      config, winner, every row, class names, input
                                         shape, versions, sha256 of every other file
                      report.csv, report.md, lr_sweeps/lr_sweep_b<batch>.{json,png}
    <target>/latest.json                 {"run_id", "uri"} of the run in service

Every run is exported. Before anything is written the champion gate
(`tasks.runs.champion`) scores the run in service on tonight's test split and decides
whether this run replaces it; the decision goes into the manifest and the reports.
The run folder is staged under a temporary name in its home and renamed when complete
(for ``s3://bucket/prefix`` the home is in the cache, where a later fetch of the run
would go); the target publishes it (in a bucket: every file uploaded and verified, the
manifest last); only then, and only if promoted, is ``latest.json`` swapped: a reader
never sees half an export (`tasks.storage.target`).
"""

from __future__ import annotations

import json
import platform
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from nighttune.tasks.core.config import TuneConfig
from nighttune.tasks.core.logs import get_logger
from nighttune.tasks.core.objective import Objective
from nighttune.tasks.core.records import (
    ExportResult,
    LRSweep,
    Promotion,
    Selection,
    TrialResult,
    WarmStart,
    sweep_files,
)
from nighttune.tasks.core.urls import redact, redact_webhook
from nighttune.tasks.data.datasets import CachedDataset, resolve_cache_dir
from nighttune.tasks.reporting.histories import trial_histories, write_tensorboard
from nighttune.tasks.reporting.html import (
    RunOutcome,
    confusion_matrix,
    make_plots,
    portable,
    render_html,
)
from nighttune.tasks.reporting.tables import rungs_frame, write_reports
from nighttune.tasks.runs.champion import judge
from nighttune.tasks.runs.latest import point_latest
from nighttune.tasks.runs.manifest import LATEST, MANIFEST
from nighttune.tasks.runs.reader import RunSeal
from nighttune.tasks.storage.files import file_digests, staged_dir, write_text_atomic
from nighttune.tasks.storage.target import Target
from nighttune.tasks.tuning.context import memory_budget
from nighttune.tasks.tuning.evaluation import predict_split
from nighttune.tasks.tuning.models import model_key, outputs_kind


def new_run_id(now: datetime | None = None) -> str:
    """``YYYYmmdd-HHMMSS-xxxxxx`` in UTC: sorts by time, unique across machines."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


# The distributions whose versions decide whether a saved model loads and behaves the same.
VERSIONED = ("tensorflow", "tensorflow-cpu", "keras", "tensorflow-datasets", "prefect", "numpy")


def library_versions() -> dict[str, str]:
    """Python's and each installed `VERSIONED` distribution's version, and ours."""
    versions = {"python": platform.python_version()}
    for dist in (*VERSIONED, "nighttune"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def export_run(  # noqa: PLR0913  until the run context (#32 item 3) carries config and target
    config: TuneConfig,
    cached: CachedDataset,
    *,
    target: Target,
    objective: Objective,
    sweeps: list[LRSweep],
    rows: list[TrialResult],
    winner: TrialResult,
    run_id: str,
    seconds: dict[str, float] | None = None,
    selection: Selection | None = None,
    warm_start: WarmStart | None = None,
) -> ExportResult:
    """Write the run folder, publish it to ``target``, and only then move ``latest.json``.

    ``objective``: the run's, as resolved once (`tasks.tuning.context`); ``seconds`` are
    the earlier stages' timings, ``selection`` how the winner was
    chosen (`tasks.tuning.selection.select`) and ``warm_start`` what the run carried
    over from earlier nights (`tasks.runs.warm_start`), for the reports and the manifest.
    """
    log = get_logger()
    if winner.model_path is None:
        raise ValueError(f"winner b{winner.batch_size} p{winner.patience} has no saved model")
    # The run's home: its place in a folder target; for a bucket, where a later fetch of
    # this run would land, so predict on this machine reuses it.
    final = target.home(run_id)
    promotion = judge(
        cached,
        winner,
        objective=objective,
        target=target,
        policy=config.promote,
        margin=config.promote_margin,
        code_dir=config.code_dir,
        budget=memory_budget(config.memory_budget_mb),
    )
    log.info("export: writing %s", final)
    bundle = RunBundle(
        config=config,
        cached=cached,
        sweeps=sweeps,
        rows=rows,
        winner=winner,
        run_id=run_id,
        seconds=dict(seconds or {}),
        promotion=promotion,
        selection=selection,
        warm_start=warm_start,
        tensorboard=config.tensorboard if config.tensorboard is not None else target.in_place,
    )
    with staged_dir(final) as staging:
        _write_run(staging, bundle)
    target.publish(final, run_id, seal=RunSeal())  # the manifest last
    run_uri = target.url(run_id)
    latest = target.location(LATEST)
    moved = promotion.promoted and point_latest(target, run_id, run_uri=run_uri)
    return ExportResult(
        run_id=run_id,
        uri=run_uri,
        path=str(final),
        latest=latest,
        promotion=_promoted(promotion, moved=moved, run=target.location(run_id), latest=latest),
    )


def _promoted(promotion: Promotion, *, moved: bool, run: object, latest: str) -> Promotion:
    """The gate's decision as it turned out: a run the gate passed whose pointer was
    refused (a newer run moved it meanwhile) was not promoted after all."""
    log = get_logger()
    if moved:
        log.info("export: %s complete; %s now names it", run, latest)
        return promotion
    if not promotion.promoted:
        log.info("export: %s complete; %s unchanged (%s)", run, latest, promotion.text())
        return promotion
    log.info("export: %s complete; %s names a newer run", run, latest)
    reason = f"{promotion.reason}; but {LATEST} already names a newer run"
    return promotion.model_copy(update={"promoted": False, "reason": reason})


@dataclass(frozen=True)
class RunBundle:
    """Everything one export writes from: what the writers below share."""

    config: TuneConfig
    cached: CachedDataset
    sweeps: list[LRSweep]
    rows: list[TrialResult]
    winner: TrialResult
    run_id: str
    seconds: dict[str, float]
    promotion: Promotion
    selection: Selection | None = None
    warm_start: WarmStart | None = None
    tensorboard: bool = True  # TensorBoard logs in the run (by default only in a folder)


def _write_run(staging: Path, run: RunBundle) -> None:
    started = time.perf_counter()
    model = _write_model(staging, run)
    histories = trial_histories(run.rows)
    if run.tensorboard:
        write_tensorboard(staging / "tensorboard", histories)
    confusion = None
    if run.cached.num_classes:  # a classifier: its confusion matrix on the test split
        budget = memory_budget(run.config.memory_budget_mb)
        labels, predicted = predict_split(model, run.cached, "test", budget=budget)
        confusion = confusion_matrix(labels, predicted, run.cached.num_classes)
    make_plots(
        staging / "plots",
        run.rows,
        histories,
        confusion=confusion,
        class_names=run.cached.class_names,
        monitor=run.config.monitor,
    )
    _copy_sweeps(staging / "lr_sweeps", run.sweeps)
    run.seconds["export"] = round(time.perf_counter() - started, 3)
    config_shown = portable(
        run.config.model_dump(mode="json")
        | {
            "s3_endpoint_url": redact(run.config.s3_endpoint_url),
            "notify_url": redact_webhook(run.config.notify_url),
        }
    )
    _write_pages(staging, run, config_shown)
    outputs = outputs_kind(model) if run.cached.num_classes else "values"
    _write_manifest(staging, run, config_shown=config_shown, outputs=outputs)


def _write_model(staging: Path, run: RunBundle) -> Any:
    """``model.keras`` (the winner, reloaded with safe_mode) and its SavedModel."""
    import keras

    assert run.winner.model_path is not None
    shutil.copyfile(run.winner.model_path, staging / "model.keras")
    model = keras.models.load_model(staging / "model.keras", safe_mode=True)
    model.export(str(staging / "saved_model"), format="tf_saved_model", verbose=False)
    return model


def _copy_sweeps(folder: Path, sweeps: list[LRSweep]) -> None:
    """Each sweep's record from the store, and its plot drawn again from it: a sweep
    reused from an earlier run is shown as this version draws sweeps."""
    from nighttune.tasks.reporting.figures import plot_lr_sweep

    folder.mkdir()
    for sweep in sweeps:
        if sweep.path:
            record, plot = sweep_files(sweep.batch_size)
            shutil.copyfile(Path(sweep.path) / record, folder / record)
            plot_lr_sweep(sweep, folder / plot)


def _write_pages(staging: Path, run: RunBundle, config_shown: dict[str, Any]) -> None:
    """report.csv / report.md, then report.html."""
    winner = run.winner
    chosen = run.selection
    summary = (
        f"Winner: batch size {winner.batch_size}, patience {winner.patience}, "
        f"{winner.lr_text()}; "
        f"{winner.scores_text(run.config.monitor)}.\n\n"
        + (f"Selection ({chosen.rule}): {chosen.reason}.\n\n" if chosen else "")
        + f"Champion gate: {run.promotion.text()}."
        + (f"\n\nWarm start: {'; '.join(run.warm_start.lines())}." if run.warm_start else "")
    )
    frame = write_reports(
        run.rows,
        winner,
        staging,
        title=f"nighttune run {run.run_id}",
        summary=summary,
        monitor=run.config.monitor,
        selection=chosen,
        rungs=rungs_frame(run.sweeps, run.config.monitor),
    )
    cache_dir = str(resolve_cache_dir(run.config.cache_dir))  # the folder used, not "null"
    page = render_html(
        staging,
        run_id=run.run_id,
        config=config_shown | {"cache_dir": cache_dir},
        trials=frame,
        outcome=RunOutcome(
            winner=winner,
            selection=run.selection,
            promotion=run.promotion,
            warm_start=run.warm_start,
        ),
        seconds=run.seconds,
        class_names=run.cached.class_names,
        splits=run.cached.num_examples,
    )
    write_text_atomic(staging / "report.html", page)


def _write_manifest(
    staging: Path, run: RunBundle, *, config_shown: dict[str, Any], outputs: str
) -> None:
    """``manifest.json``, written last: the sha256 of every other file of the run."""
    cached = run.cached
    manifest = {
        "run_id": run.run_id,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": config_shown,
        "timings": run.seconds,
        "dataset": {
            "source": cached.source,
            "fingerprint": cached.fingerprint,
            "num_examples": cached.num_examples,
        },
        "class_names": cached.class_names,
        "input_shape": list(cached.input_shape),
        "outputs": outputs,
        "model": model_key(run.config.model),
        "preprocessing": {
            "dtype": "float32",
            "range": [0.0, 1.0],
            "resize": "bilinear, antialiased",
        },
        "winner": _portable(run.winner),
        "promotion": run.promotion.model_dump(),
        "selection": run.selection.model_dump() if run.selection else None,
        "warm_start": run.warm_start.model_dump() if run.warm_start else None,
        "trials": [_portable(r) for r in run.rows],
        "lr_sweeps": {
            str(s.batch_size): {
                "chosen_lr": s.chosen_lr,
                "method": s.method,
                "suggestions": s.suggestions,
                "rungs": [r.model_dump() for r in s.rungs],
            }
            for s in run.sweeps
        },
        "versions": library_versions(),
        "files": {rel: d["sha256"] for rel, d in file_digests(staging).items()},
    }
    write_text_atomic(staging / MANIFEST, json.dumps(manifest, indent=2))


def _portable(row: TrialResult) -> dict[str, Any]:
    """A row without machine-local paths (the store's model files stay behind)."""
    return row.model_dump(exclude={"model_path", "fit_path"})
