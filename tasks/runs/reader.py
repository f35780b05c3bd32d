"""Finding an exported run and making sure it is whole, wherever its target is.

A model reference is one of
- ``<target>/latest`` (or a local target folder itself): the run ``latest.json`` names;
- ``<target>/<run-id>``: that run's folder;
where the target is a folder or ``s3://bucket/prefix`` (`tasks.storage.target.locate`).
A run in a bucket is fetched once into its home in the cache and reused from there.
The manifest and ``latest.json`` are parsed and bounded (`tasks.runs.manifest`) and every
name they give is joined by `tasks.storage.files.safe_join` before anything is read,
downloaded or removed; every file listed in the manifest is checked against its
sha256 before the run is used. A run that does not pass is refused with one line.
Only `load_run_model` imports TensorFlow, after the run is found, so a wrong path or
target is reported at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nighttune.tasks.core.code import import_for_loading
from nighttune.tasks.core.errors import (
    IntegrityError,
    RunUnavailable,
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
from nighttune.tasks.storage.files import read_bounded, safe_join, sha256_file
from nighttune.tasks.storage.target import MissingFile, Target, locate


def verify_run(run_dir: Path) -> Manifest:
    """The run's manifest, if it parses and every file it lists is present with its sha256."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunUnavailable(
            f"model {str(run_dir)!r} is a file, not a run folder; give a run folder, "
            "<target>/latest or s3://bucket/prefix/latest"
        )
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


@dataclass
class RunSeal:
    """A run's seal for `Target.publish` / `Target.fetch`: its manifest, which lists
    every other file with its sha256. Keeps the manifest it last verified, so that a
    fetched run is hashed once."""

    name: str = MANIFEST
    max_bytes: int = MAX_MANIFEST_BYTES
    verified: Manifest | None = None

    def files(self, text: str, where: str) -> list[str]:
        """The files the manifest lists (names checked by its parser)."""
        return list(parse_manifest(text, where).files)

    def verify(self, folder: Path) -> None:
        """`verify_run`, keeping the manifest."""
        self.verified = verify_run(folder)


def open_run(target: Target, name: str) -> tuple[Path, Manifest]:
    """A verified local folder for the run ``name`` (a run id, or ``latest``: the run the
    target's ``latest.json`` names) of ``target``, and the manifest its verification read
    (every file hashed once)."""
    if name in ("latest", LATEST):
        try:
            served = served_run_id(target)
        except OSError as exc:
            if not exc.filename:  # a network error (a timeout): not the user's to fix
                raise
            raise RunUnavailable(f"cannot read {target.location(LATEST)}: {exc.strerror}") from None
        if served is None:
            raise RunUnavailable(
                f"{target.location(LATEST)} does not exist: nothing exported there"
            )
        name = served
    else:
        try:
            check_run_id(name)
        except ValueError as exc:
            raise RunUnavailable(f"model {target.location(name)!r}: {exc}") from None
    seal = RunSeal()
    try:
        folder = target.fetch(name, seal=seal)
    except MissingFile as exc:
        raise RunUnavailable(
            f"{target.location(name)} is incomplete: {exc.rel}, listed in its manifest, "
            "is not in the bucket; export the run again"
        ) from None
    if folder is None:
        raise RunUnavailable(
            f"model {target.location(name)!r} does not exist (or is not a complete exported "
            "run); give a run folder, <target>/latest or s3://bucket/prefix/latest"
        )
    assert seal.verified is not None  # fetch verified it
    return folder, seal.verified


@dataclass(frozen=True)
class RunAccess:
    """What loading an exported run needs besides its reference, as the command line or
    the predict flow (the edge) gives it: the cache an S3 run is fetched into (None: the
    default cache), the S3 endpoint (None: the environment's), and the folder a user's
    builder module is imported from (None: the working directory)."""

    cache_dir: str | None = None
    endpoint_url: str | None = None
    code_dir: str | None = None

    def locate(self, ref: str) -> tuple[Target, str]:
        """The target ``ref`` points into, with this endpoint and cache, and the run's name."""
        return locate(ref, self.endpoint_url, cache_dir=self.cache_dir)


# The default cache, the S3 endpoint the environment names, builders from the working directory.
DEFAULT_ACCESS = RunAccess()


def resolve_run(ref: str, access: RunAccess = DEFAULT_ACCESS) -> Path:
    """A verified local folder for the run ``ref`` names (see the module docstring)."""
    return open_run(*access.locate(ref))[0]


def load_run_model(ref: str, access: RunAccess = DEFAULT_ACCESS) -> tuple[Any, Manifest]:
    """The run ``ref`` names, found through ``access`` (`load_model_of`)."""
    target, name = access.locate(ref)
    return load_model_of(target, name, code_dir=access.code_dir, ref=ref)


def load_model_of(
    target: Target, name: str, *, code_dir: str | None = None, ref: str | None = None
) -> tuple[Any, Manifest]:
    """The model of ``target``'s run ``name`` (loaded with ``safe_mode=True``) and its
    verified manifest, which must agree with the model on the input shape and the number
    of classes. A run made by a user's builder has that builder's module imported first,
    from ``code_dir`` (None: the working directory), for the custom objects it registers.
    ``ref``: how messages name the run (by default, its place in the target)."""
    ref = ref or target.location(name)
    run, manifest = open_run(target, name)  # before TensorFlow
    import keras

    builder = manifest.model.get("builder")
    if isinstance(builder, str):
        code = manifest.model.get("code") or {}
        warning = import_for_loading(builder, code_dir or ".", code.get("sha256"))
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
