"""Night over night: one row per exported run under a target, and a trend plot."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import pandas as pd

from nighttune.tasks.core.errors import UserError
from nighttune.tasks.core.logs import get_logger
from nighttune.tasks.reporting.figures import plot_history
from nighttune.tasks.runs.manifest import Manifest, parse_manifest
from nighttune.tasks.runs.reader import RunSeal
from nighttune.tasks.storage.files import write_text_atomic
from nighttune.tasks.storage.target import Target

COLUMNS = [
    "run_id",
    "date",
    "dataset",
    "model",
    "grid",
    "batch_size",
    "patience",
    "lr",
    "val_accuracy",
    "test_accuracy",
    "promoted",
    "duration_s",
]


def read_manifests(target: Target) -> list[Manifest]:
    """Every run's manifest under ``target``; one that does not parse is skipped (logged)."""
    found = []
    for sealed in target.runs(seal=RunSeal()):
        try:
            found.append(parse_manifest(sealed.text, sealed.where))
        except UserError as exc:
            get_logger().warning("history: skipped %s", exc)
    return found


def _get(mapping: Any, *keys: str) -> Any:
    """``mapping[k1][k2]...``, or None where a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _grid(config: Any) -> str:
    """``b32,64 p2,4 e8``: the grid a run searched (runs are comparable within one)."""

    def listed(key: str) -> str:
        return ",".join(map(str, _get(config, key) or []))

    return f"b{listed('batch_sizes')} p{listed('patiences')} e{_get(config, 'max_epochs')}"


def _promoted(promotion: dict[str, Any]) -> str:
    """yes / no by the champion gate; "" for runs exported before there was one."""
    found = promotion.get("promoted")
    return "" if not isinstance(found, bool) else "yes" if found else "no"


def earlier_scores(target: Target, *, run_id: str, metric: str) -> list[float]:
    """The winners' ``metric`` (``test_accuracy``, ``test_auc``) of the runs under
    ``target`` before ``run_id`` made with its dataset, model and grid, oldest first."""
    manifests = sorted(read_manifests(target), key=lambda m: m.run_id)
    tonight = next((m for m in manifests if m.run_id == run_id), None)
    if tonight is None:
        return []
    found = []
    for manifest in manifests:
        if manifest.run_id >= run_id or _setup(manifest) != _setup(tonight):
            continue
        value = _get(manifest.winner, metric)
        value = value if value is not None else _get(manifest.winner, "metrics", metric)
        if isinstance(value, int | float):
            found.append(float(value))
    return found


def past_timings(
    target: Target, *, dataset: str, model: str, runs: int = 7
) -> tuple[dict[int, float], float | None]:
    """From the last ``runs`` runs under ``target`` on ``dataset`` with ``model``: the
    median seconds an epoch took at each batch size, and the median export seconds.
    Empty when there are none (or the target cannot be read yet)."""
    try:
        manifests = sorted(read_manifests(target), key=lambda m: m.run_id)
    except UserError:
        return {}, None
    same = [m for m in manifests if _setup(m)[:2] == (dataset, model)][-runs:]
    per_epoch: dict[int, list[float]] = {}
    for manifest in same:
        for b, (epochs, seconds) in _fits((manifest.model_extra or {}).get("trials")).items():
            per_epoch.setdefault(b, []).append(seconds / epochs)
    exports = [m.timings["export"] for m in same if "export" in m.timings]
    return (
        {b: statistics.median(v) for b, v in per_epoch.items()},
        statistics.median(exports) if exports else None,
    )


def _fits(rows: Any) -> dict[int, tuple[int, float]]:
    """A run's fits from its trial rows: batch size -> (epochs, seconds) of the longest
    row (the largest patience that ran; the others are read off the same fit)."""
    longest: dict[int, tuple[int, float]] = {}
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict) or row.get("status") != "ok":
            continue
        b, epochs, seconds = (row.get(k) for k in ("batch_size", "epochs_run", "train_seconds"))
        if not (isinstance(b, int) and isinstance(epochs, int) and epochs > 0):
            continue
        if isinstance(seconds, int | float) and epochs > longest.get(b, (0, 0.0))[0]:
            longest[b] = (epochs, float(seconds))
    return longest


def _setup(manifest: Manifest) -> tuple[Any, ...]:
    """What makes runs comparable: the same data, model and grid."""
    config = manifest.config
    data = _get(config, "dataset", "builder") or _get(config, "dataset", "name")
    model = _get(config, "model", "builder") or _get(config, "model", "kind")
    return data, model, _grid(config)


def run_history(target: Target) -> pd.DataFrame:
    """Every complete run under ``target``, oldest first."""
    rows = []
    for manifest in read_manifests(target):
        winner = manifest.winner
        dataset, model, grid = _setup(manifest)
        rows.append(
            {
                "run_id": manifest.run_id,
                "date": manifest.created,
                "dataset": dataset,
                "model": model,
                "grid": grid,
                **{k: _get(winner, k) for k in ("batch_size", "patience", "lr")},
                "val_accuracy": _get(winner, "val_accuracy"),
                "test_accuracy": _get(winner, "test_accuracy"),
                "promoted": _promoted(manifest.promotion),
                "duration_s": round(sum(manifest.timings.values()), 2),
            }
        )
    if not rows:
        raise UserError(f"no exported runs under {target}")
    return pd.DataFrame(rows, columns=COLUMNS).sort_values("date").reset_index(drop=True)


def write_history(
    target: Target, out_dir: str, *, frame: pd.DataFrame | None = None
) -> tuple[Path, Path]:
    """``history.csv`` and ``history.png`` in ``out_dir`` (from ``frame`` if already read)."""
    if frame is None:
        frame = run_history(target)
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out / "history.csv", out / "history.png"
    write_text_atomic(csv_path, frame.to_csv(index=False))
    labels = [f"b{b} p{p}" for b, p in zip(frame["batch_size"], frame["patience"], strict=True)]
    dates = [str(d)[:16].replace("T", " ") for d in frame["date"]]
    setups = frame["dataset"].astype(str) + " " + frame["model"].astype(str) + " " + frame["grid"]
    accuracies = frame["test_accuracy"].astype(float).tolist()
    plot_history(dates, accuracies, labels=labels, setups=setups.tolist(), path=png_path)
    return csv_path, png_path
