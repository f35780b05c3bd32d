"""Finding an exported run and making sure it is whole: local folders and S3.

A model reference is one of
- ``<target>/latest`` (or the target folder itself): the run ``latest.json`` names;
- ``<target>/<run-id>``: that run's folder;
- ``s3://bucket/prefix/latest`` or ``s3://bucket/prefix/<run-id>``: downloaded once
  into ``<cache>/runs/<bucket>/<prefix hash>/<run-id>/`` and reused from there.
The manifest and ``latest.json`` are parsed and bounded (`tasks.runs.manifest`) and every
name they give is joined by `tasks.storage.files.safe_join` before anything is read,
downloaded or removed; every file listed in the manifest is checked against its
sha256 before the run is used. A run that does not pass is refused with one line.
Also where runs go: `check_target` and `run_cache_dir`. Only `load_run_model` imports
TensorFlow, after the run is found, so a wrong path or target is reported at once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nighttune.tasks.core.code import import_for_loading
from nighttune.tasks.core.config import TuneConfig
from nighttune.tasks.core.errors import (
    ConfigError,
    IntegrityError,
    RunUnavailable,
    UserError,
    first_line,
)
from nighttune.tasks.core.logs import get_logger
from nighttune.tasks.runs.latest import served_run_id
from nighttune.tasks.runs.manifest import (
    LATEST,
    MANIFEST,
    MAX_MANIFEST_BYTES,
    Manifest,
    check_run_id,
    parse_manifest,
)
from nighttune.tasks.storage import s3
from nighttune.tasks.storage.files import (
    discard_dir,
    read_bounded,
    safe_join,
    sha256_file,
    staged_dir,
)


def run_cache_dir(uri: s3.S3Uri, run_id: str, cache_dir: str | None = None) -> Path:
    """Local home of an S3 run: ``<cache>/runs/<bucket>/<prefix hash>/<run-id>``."""
    from nighttune.tasks.data.datasets import (
        resolve_cache_dir,  # (imports Prefect: only when needed)
    )

    prefix = hashlib.sha256(uri.prefix.encode()).hexdigest()[:12]
    return safe_join(resolve_cache_dir(cache_dir) / "runs" / uri.bucket / prefix, run_id, "run id")


URL_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:/")


def check_target(config: TuneConfig) -> None:
    """Fail before training when the export target cannot work (bad URI, no bucket, keys,
    a file where the folder should be)."""
    if s3.is_s3(config.export_to):
        s3.check_bucket(s3.S3Uri.parse(config.export_to), config.s3_endpoint_url)
    elif URL_LIKE.match(config.export_to):  # s3:/b, S3://b, http://…: not a folder meant
        raise ConfigError(
            f"export target {config.export_to!r}: give a local folder (./exports) "
            "or s3://bucket/prefix"
        )
    else:
        from nighttune.tasks.storage.files import check_writable_dir

        check_writable_dir(Path(config.export_to).expanduser(), "export target (--export-to)")


def verify_run(run_dir: Path) -> Manifest:
    """The run's manifest, if it parses and every file it lists is present with its sha256."""
    try:
        text = read_bounded(run_dir / MANIFEST, MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        raise RunUnavailable(
            f"{run_dir} is not an exported run (no {MANIFEST}); give a run folder, "
            "<target>/latest or s3://bucket/prefix/latest"
        ) from None
    except OSError as exc:
        raise RunUnavailable(f"cannot read {run_dir / MANIFEST}: {exc.strerror}") from None
    manifest = parse_manifest(text, str(run_dir / MANIFEST))
    for rel, digest in manifest.files.items():
        path = safe_join(run_dir, rel, "manifest file name")
        if not path.is_file():
            raise RunUnavailable(f"run {run_dir.name}: {rel} is missing; export the run again")
        if sha256_file(path) != digest:
            raise IntegrityError(
                f"run {run_dir.name}: {rel} does not match the manifest's checksum; "
                "the run was changed or damaged — export it again"
            )
    return manifest


def resolve_run(ref: str, cache_dir: str | None = None, endpoint_url: str | None = None) -> Path:
    """A verified local folder for the run ``ref`` names (see the module docstring)."""
    return open_run(ref, cache_dir, endpoint_url)[0]


def open_run(
    ref: str, cache_dir: str | None = None, endpoint_url: str | None = None
) -> tuple[Path, Manifest]:
    """`resolve_run`, and the manifest its verification read (every file hashed once)."""
    if s3.is_s3(ref):
        return _resolve_s3(ref, cache_dir, endpoint_url)
    path = Path(ref).expanduser()
    if path.name in ("latest", LATEST) and not path.is_dir():
        path = path.parent
    if (path / LATEST).is_file() and not (path / MANIFEST).is_file():
        try:
            run_id = served_run_id(str(path))
        except OSError as exc:
            raise RunUnavailable(f"cannot read {path / LATEST}: {exc.strerror}") from None
        assert run_id is not None  # the file is there
        path = safe_join(path, run_id, f"run id in {path / LATEST}")
    if not path.is_dir():
        what = "is a file, not a run folder" if path.exists() else "does not exist"
        raise RunUnavailable(
            f"model {ref!r} {what}; give a run folder, <target>/latest or s3://bucket/prefix/latest"
        )
    return path.resolve(), verify_run(path)


def _resolve_s3(ref: str, cache_dir: str | None, endpoint_url: str | None) -> tuple[Path, Manifest]:
    uri = s3.S3Uri.parse(ref)
    parent, _, last = uri.prefix.rpartition("/")
    target = s3.S3Uri(uri.bucket, parent)
    client = s3.client(endpoint_url)
    if last in ("latest", LATEST):
        served = served_run_id(target.child(), endpoint_url, client)
        if served is None:
            raise RunUnavailable(f"{target.child(LATEST)} does not exist: nothing exported there")
        run_id = served
    else:
        try:
            run_id = check_run_id(last)
        except ValueError as exc:
            raise RunUnavailable(f"model {ref!r}: {exc}") from None
    local = run_cache_dir(target, run_id, cache_dir)
    if local.is_dir():
        try:
            manifest = verify_run(local)
            get_logger().info("model: %s already downloaded (%s)", target.child(run_id), local)
            return local, manifest
        except UserError:
            get_logger().warning("model: local copy %s is damaged; downloading again", local)
    manifest_key = target.key(run_id, MANIFEST)
    text = s3.get_text(client, uri.bucket, manifest_key, max_bytes=MAX_MANIFEST_BYTES)
    if text is None:
        raise RunUnavailable(f"{target.child(run_id)} is not a complete exported run")
    # Every name is checked before the first download: nothing lands outside the copy.
    manifest = parse_manifest(text, target.child(run_id, MANIFEST))
    discard_dir(local)  # inside the cache: run_cache_dir checked the run id
    with staged_dir(local) as staging:
        (staging / MANIFEST).write_text(text)
        for rel in manifest.files:
            destination = safe_join(staging, rel, "manifest file name")
            try:
                s3.download(client, uri.bucket, target.key(run_id, rel), local=destination)
            except s3.ObjectMissing:
                raise RunUnavailable(
                    f"{target.child(run_id)} is incomplete: {rel}, listed in its manifest, "
                    "is not in the bucket; export the run again"
                ) from None
        verify_run(staging)
    get_logger().info("model: downloaded %s into %s", target.child(run_id), local)
    return local, manifest


@dataclass(frozen=True)
class RunAccess:
    """What loading an exported run needs besides its reference: the cache an S3 run is
    downloaded into (None: the default cache), the S3 endpoint, and the folder a user's
    builder module is imported from (None: the working directory)."""

    cache_dir: str | None = None
    endpoint_url: str | None = None
    code_dir: str | None = None


# The default cache, the S3 endpoint the environment names, builders from the working directory.
DEFAULT_ACCESS = RunAccess()


def load_run_model(ref: str, access: RunAccess = DEFAULT_ACCESS) -> tuple[Any, Manifest]:
    """The run's model (loaded with ``safe_mode=True``) and its verified manifest, which
    must agree with the model on the input shape and the number of classes. A run made
    by a user's builder has that builder's module imported first, from
    ``access.code_dir``, for the custom objects it registers."""
    run, manifest = open_run(ref, access.cache_dir, access.endpoint_url)  # before TensorFlow
    import keras

    builder = manifest.model.get("builder")
    if isinstance(builder, str):
        code = manifest.model.get("code") or {}
        warning = import_for_loading(builder, access.code_dir or ".", code.get("sha256"))
        if warning:
            get_logger().warning("model %s: %s", ref, warning)

    try:
        model = keras.models.load_model(run / "model.keras", safe_mode=True)
    except Exception as exc:
        reason = first_line(exc)
        if "safe_mode" in reason or "lambda" in reason.lower():
            reason = "it holds code (a Lambda layer) that safe_mode refuses to run"
        raise RunUnavailable(f"model {ref!r} will not load: {reason[:300]}") from None
    takes = tuple(getattr(model, "input_shape", ())[1:])
    gives = tuple(getattr(model, "output_shape", ())[1:])
    classes = len(manifest.class_names)
    if takes != tuple(manifest.input_shape) or (classes and gives != (classes,)):
        raise RunUnavailable(
            f"model {ref!r}: its manifest says input {list(manifest.input_shape)} and "
            f"{len(manifest.class_names)} classes, the model takes {list(takes)} and gives "
            f"{list(gives)}; the run was changed — export it again"
        )
    return model, manifest
