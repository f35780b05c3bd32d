"""Finding an exported run and making sure it is whole: local folders and S3.

A model reference is one of
- ``<target>/latest`` (or the target folder itself): the run ``latest.json`` names;
- ``<target>/<run-id>``: that run's folder;
- ``s3://bucket/prefix/latest`` or ``s3://bucket/prefix/<run-id>``: downloaded once
  into ``<cache>/runs/<bucket>/<prefix hash>/<run-id>/`` and reused from there.
Every file listed in the run's ``manifest.json`` is checked against its sha256
before the run is used; a run that does not match is refused with one line.
Also where runs go: `check_target` and `run_cache_dir`. Nothing here imports
TensorFlow, so a wrong path or target is reported at once.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tasks import s3
from tasks.config import TuneConfig
from tasks.errors import ConfigError, UserError
from tasks.files import sha256_file, staged_dir
from tasks.logs import get_logger

MANIFEST = "manifest.json"
LATEST = "latest.json"


def run_cache_dir(uri: s3.S3Uri, run_id: str, cache_dir: str | None = None) -> Path:
    """Local home of an S3 run: ``<cache>/runs/<bucket>/<prefix hash>/<run-id>``."""
    from tasks.data import resolve_cache_dir  # (imports Prefect: only when needed)

    prefix = hashlib.sha256(uri.prefix.encode()).hexdigest()[:12]
    return resolve_cache_dir(cache_dir) / "runs" / uri.bucket / prefix / run_id


def check_target(config: TuneConfig) -> None:
    """Fail before training when the export target cannot work (bad URI, no bucket, keys)."""
    if s3.is_s3(config.export_to):
        s3.check_bucket(s3.S3Uri.parse(config.export_to), config.s3_endpoint_url)
    elif "://" in config.export_to:
        raise ConfigError(
            f"export target {config.export_to!r}: give a local folder (./exports) "
            "or s3://bucket/prefix"
        )


class RunUnavailable(UserError):
    """The model reference does not lead to a whole, verified run."""


def verify_run(run_dir: Path) -> dict[str, Any]:
    """The run's manifest, if every file it lists is present with its sha256."""
    try:
        manifest = json.loads((run_dir / MANIFEST).read_text())
        files = manifest["files"]
    except FileNotFoundError:
        raise RunUnavailable(
            f"{run_dir} is not an exported run (no {MANIFEST}); give a run folder, "
            "<target>/latest or s3://bucket/prefix/latest"
        ) from None
    except (ValueError, KeyError, TypeError):
        raise RunUnavailable(f"{run_dir / MANIFEST} is damaged; export the run again") from None
    for rel, digest in files.items():
        path = run_dir / rel
        if not path.is_file():
            raise RunUnavailable(f"run {run_dir.name}: {rel} is missing; export the run again")
        if sha256_file(path) != digest:
            raise RunUnavailable(
                f"run {run_dir.name}: {rel} does not match the manifest's checksum; "
                "the run was changed or damaged — export it again"
            )
    return manifest


def resolve_run(ref: str, cache_dir: str | None = None, endpoint_url: str | None = None) -> Path:
    """A verified local folder for the run ``ref`` names (see the module docstring)."""
    return open_run(ref, cache_dir, endpoint_url)[0]


def open_run(
    ref: str, cache_dir: str | None = None, endpoint_url: str | None = None
) -> tuple[Path, dict[str, Any]]:
    """`resolve_run`, and the manifest its verification read (every file hashed once)."""
    if s3.is_s3(ref):
        return _resolve_s3(ref, cache_dir, endpoint_url)
    path = Path(ref).expanduser()
    if path.name == "latest" and not path.exists():
        path = path.parent
    if (path / LATEST).is_file() and not (path / MANIFEST).is_file():
        try:
            latest = json.loads((path / LATEST).read_text())
            path = path / latest["run_id"]
        except (ValueError, KeyError, TypeError):
            raise RunUnavailable(f"{path / LATEST} is damaged; export again") from None
    if not path.exists():
        raise RunUnavailable(
            f"model {ref!r} does not exist; give a run folder, <target>/latest or "
            "s3://bucket/prefix/latest"
        )
    return path.resolve(), verify_run(path)


def _resolve_s3(
    ref: str, cache_dir: str | None, endpoint_url: str | None
) -> tuple[Path, dict[str, Any]]:
    uri = s3.S3Uri.parse(ref)
    parent, _, last = uri.prefix.rpartition("/")
    target = s3.S3Uri(uri.bucket, parent)
    client = s3.client(endpoint_url)
    if last == "latest":
        text = s3.get_text(client, uri.bucket, target.key(LATEST))
        if text is None:
            raise RunUnavailable(f"{target.child(LATEST)} does not exist: nothing exported there")
        run_id = json.loads(text)["run_id"]
    else:
        run_id = last
    local = run_cache_dir(target, run_id, cache_dir)
    if local.is_dir():
        try:
            manifest = verify_run(local)
            get_logger().info("model: %s already downloaded (%s)", target.child(run_id), local)
            return local, manifest
        except RunUnavailable:
            get_logger().warning("model: local copy %s is damaged; downloading again", local)
    text = s3.get_text(client, uri.bucket, target.key(run_id, MANIFEST))
    if text is None:
        raise RunUnavailable(f"{target.child(run_id)} is not a complete exported run")
    manifest = json.loads(text)
    if local.exists():
        import shutil

        shutil.rmtree(local)
    with staged_dir(local) as staging:
        (staging / MANIFEST).write_text(text)
        for rel in manifest["files"]:
            s3.download(client, uri.bucket, target.key(run_id, rel), staging / rel)
        verify_run(staging)
    get_logger().info("model: downloaded %s into %s", target.child(run_id), local)
    return local, manifest
