"""Night over night: one row per exported run under a target, and a trend plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from tasks import s3
from tasks.errors import UserError
from tasks.files import write_text_atomic
from tasks.plots import plot_history
from tasks.runs import MANIFEST

COLUMNS = [
    "run_id",
    "date",
    "dataset",
    "model",
    "batch_size",
    "patience",
    "lr",
    "val_accuracy",
    "test_accuracy",
    "duration_s",
]


def _manifests(target: str, endpoint_url: str | None) -> list[dict[str, Any]]:
    if s3.is_s3(target):
        uri = s3.S3Uri.parse(target)
        client = s3.client(endpoint_url)
        prefix = uri.key() + "/" if uri.prefix else ""
        found = []
        try:
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=uri.bucket, Prefix=prefix, Delimiter="/"
            )
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    text = s3.get_text(client, uri.bucket, common["Prefix"] + MANIFEST)
                    if text:
                        found.append(json.loads(text))
        except s3.S3Error:
            raise
        except Exception as exc:
            raise s3.explain(exc, uri.bucket, "list the runs") from None
        return found
    root = Path(target).expanduser()
    if not root.is_dir():
        raise UserError(f"export target {target} does not exist; give the --export-to of tune")
    found = []
    for path in sorted(root.glob(f"*/{MANIFEST}")):
        if ".tmp-" in path.parent.name:
            continue  # a run still being written
        try:
            found.append(json.loads(path.read_text()))
        except ValueError:
            continue
    return found


def run_history(target: str, endpoint_url: str | None = None) -> pd.DataFrame:
    """Every complete run under ``target`` (folder or s3://), oldest first."""
    rows = []
    for manifest in _manifests(target, endpoint_url):
        winner = manifest.get("winner", {})
        config = manifest.get("config", {})
        rows.append(
            {
                "run_id": manifest.get("run_id"),
                "date": manifest.get("created"),
                "dataset": config.get("dataset", {}).get("name"),
                "model": config.get("model", {}).get("kind"),
                "batch_size": winner.get("batch_size"),
                "patience": winner.get("patience"),
                "lr": winner.get("lr"),
                "val_accuracy": winner.get("val_accuracy"),
                "test_accuracy": winner.get("test_accuracy"),
                "duration_s": round(sum(manifest.get("timings", {}).values()), 2),
            }
        )
    if not rows:
        raise UserError(f"no exported runs under {target}")
    return pd.DataFrame(rows, columns=COLUMNS).sort_values("date").reset_index(drop=True)


def write_history(
    target: str, out_dir: str, endpoint_url: str | None = None, frame: pd.DataFrame | None = None
) -> tuple[Path, Path]:
    """``history.csv`` and ``history.png`` in ``out_dir`` (from ``frame`` if already read)."""
    if frame is None:
        frame = run_history(target, endpoint_url)
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out / "history.csv", out / "history.png"
    write_text_atomic(csv_path, frame.to_csv(index=False))
    labels = [f"b{b} p{p}" for b, p in zip(frame["batch_size"], frame["patience"], strict=True)]
    dates = [str(d)[:16].replace("T", " ") for d in frame["date"]]
    plot_history(dates, frame["test_accuracy"].astype(float).tolist(), labels, png_path)
    return csv_path, png_path
