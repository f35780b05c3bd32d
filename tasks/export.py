"""Exporting a run: the winning model, its SavedModel, reports and a manifest.

Layout under the target folder::

    <target>/<run-id>/model.keras        the winner, loadable with safe_mode=True
                      saved_model/       `model.export` (TF Serving, TFLite converters)
                      manifest.json      config, winner, every row, class names, input
                                         shape, versions, sha256 of every other file
                      report.csv, report.md, lr_sweeps/lr_sweep_b<batch>.{json,png}
    <target>/latest.json                 {"run_id", "uri"} of the newest complete run

The run folder is staged under a temporary name and renamed when complete; only then
is ``latest.json`` replaced (atomically), so a reader never sees half an export.
"""

from __future__ import annotations

import json
import platform
import secrets
import shutil
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from tasks.config import TuneConfig
from tasks.data import CachedDataset
from tasks.errors import ConfigError
from tasks.files import file_digests, staged_dir, write_text_atomic
from tasks.logs import get_logger
from tasks.lr_range import LRSweep
from tasks.reports import write_reports
from tasks.training import TrialResult

MANIFEST = "manifest.json"
LATEST = "latest.json"


class ExportResult(BaseModel):
    """Where a run went."""

    run_id: str
    uri: str
    path: str


def new_run_id(now: datetime | None = None) -> str:
    """``YYYYmmdd-HHMMSS-xxxxxx`` in UTC: sorts by time, unique across machines."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


def local_target(target: str) -> Path:
    """The export folder for a local target; S3 targets are refused for now."""
    if "://" in target:
        raise ConfigError(
            f"export target {target!r}: only local folders are supported so far; "
            "give a path such as ./exports"
        )
    return Path(target).expanduser().resolve()


def library_versions() -> dict[str, str]:
    """Versions that decide whether a saved model loads and behaves the same."""
    versions = {"python": platform.python_version()}
    for dist in (
        "tensorflow",
        "tensorflow-cpu",
        "keras",
        "tensorflow-datasets",
        "prefect",
        "numpy",
        "nighttune",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def export_run(
    config: TuneConfig,
    cached: CachedDataset,
    sweeps: list[LRSweep],
    rows: list[TrialResult],
    winner: TrialResult,
    run_id: str,
) -> ExportResult:
    """Write the run folder, then point ``latest.json`` at it."""
    import keras

    target = local_target(config.export_to)
    final = target / run_id
    log = get_logger()
    log.info("export: writing %s", final)
    if winner.model_path is None:
        raise ValueError(f"winner b{winner.batch_size} p{winner.patience} has no saved model")
    with staged_dir(final) as staging:
        shutil.copyfile(winner.model_path, staging / "model.keras")
        model = keras.models.load_model(staging / "model.keras", safe_mode=True)
        model.export(str(staging / "saved_model"), format="tf_saved_model", verbose=False)
        (staging / "lr_sweeps").mkdir()
        for sweep in sweeps:
            for suffix in (".json", ".png"):
                name = f"lr_sweep_b{sweep.batch_size}{suffix}"
                if sweep.path:
                    shutil.copyfile(Path(sweep.path) / name, staging / "lr_sweeps" / name)
        summary = (
            f"Winner: batch size {winner.batch_size}, patience {winner.patience}, "
            f"lr {winner.lr:.3g} ({winner.lr_method}); "
            f"val accuracy {winner.val_accuracy:.4f}, test accuracy {winner.test_accuracy:.4f}."
        )
        write_reports(rows, winner, staging, f"nighttune run {run_id}", summary)
        manifest = {
            "run_id": run_id,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": config.model_dump(mode="json"),
            "dataset": {
                "source": cached.source,
                "fingerprint": cached.fingerprint,
                "num_examples": cached.num_examples,
            },
            "class_names": cached.class_names,
            "input_shape": list(cached.input_shape),
            "preprocessing": {
                "dtype": "float32",
                "range": [0.0, 1.0],
                "resize": "bilinear, antialiased",
            },
            "winner": _portable(winner),
            "trials": [_portable(r) for r in rows],
            "lr_sweeps": {
                str(s.batch_size): {
                    "chosen_lr": s.chosen_lr,
                    "method": s.method,
                    "suggestions": s.suggestions,
                }
                for s in sweeps
            },
            "versions": library_versions(),
            "files": {rel: d["sha256"] for rel, d in file_digests(staging).items()},
        }
        write_text_atomic(staging / MANIFEST, json.dumps(manifest, indent=2))
    uri = final.as_uri()
    write_text_atomic(target / LATEST, json.dumps({"run_id": run_id, "uri": uri}, indent=2))
    log.info("export: %s complete; %s now names it", final, target / LATEST)
    return ExportResult(run_id=run_id, uri=uri, path=str(final))


def _portable(row: TrialResult) -> dict[str, Any]:
    """A row without machine-local paths (the store's model files stay behind)."""
    return row.model_dump(exclude={"model_path"})


@task(name="export_run", tags=["cpu"], cache_policy=NO_CACHE)
def export_run_task(
    config: TuneConfig,
    cached: CachedDataset,
    sweeps: list[LRSweep],
    rows: list[TrialResult],
    winner: TrialResult,
    run_id: str,
) -> ExportResult:
    """Prefect task: `export_run`."""
    return export_run(config, cached, sweeps, rows, winner, run_id)
