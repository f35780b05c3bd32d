"""Children hand their results to the parent through the export target, not a local disk.

Workers may be on other machines: a child run publishes its LR sweep, rows and models
under the export target (``<export_to>/.work/trials/b<batch>-<fp>/``, staged and
verified like every stored result), and the parent reads them from there. With an
``s3://`` target the entry is built locally and uploaded (every object verified,
``meta.json`` last); the parent downloads it into its cache and verifies it again.
The folder is keyed by everything the trial depends on, so a parent that is rerun
finds finished children's work and does not start them again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from nighttune.tasks.core.code import code_version, load_builder
from nighttune.tasks.core.config import TuneConfig
from nighttune.tasks.core.errors import BuilderError, UnsafePath
from nighttune.tasks.core.records import LRSweep, TrialResult, sweep_files, values_file
from nighttune.tasks.data.datasets import resolve_cache_dir
from nighttune.tasks.storage import s3
from nighttune.tasks.storage.files import discard_dir, safe_join, safe_relpath, staged_dir
from nighttune.tasks.storage.store import META, Entry, Slot
from nighttune.tasks.tuning.training import trial_key

WORK = ".work"


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


def handoff_slot(config: TuneConfig, batch_size: int) -> Slot:
    """Where a child's result for ``batch_size`` is kept under the work root."""
    key = trial_key(config.trial, batch_size)  # the one key of a trial: see TrialSpec
    return Slot(work_root(config), "trials", f"b{batch_size}", key)


def cut_short(rows: list[TrialResult] | list[dict[str, Any]]) -> bool:
    """Whether a batch size's result was cut by a time budget: never reused, as a cut
    fit is never reused from the store."""
    statuses = [r.status if isinstance(r, TrialResult) else r.get("status") for r in rows]
    return "not run" in statuses


def publish_trial(
    config: TuneConfig, batch_size: int, *, sweep: LRSweep, rows: list[TrialResult]
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
                    values = Path(values_file(row.model_path))
                    if values.is_file():  # the paired test's input travels with the model
                        shutil.copyfile(values, staging / values.name)
                row = row.model_copy(update={"model_path": name})
            published.append(row.model_dump())
        from nighttune.tasks.reporting.histories import trial_histories

        history = trial_histories(rows).get(batch_size)
        return {"sweep": sweep.model_dump(exclude={"path"}), "rows": published, "history": history}

    slot = handoff_slot(config, batch_size)
    before = slot.read()  # a fresh result, or one a time budget cut, replaces what is there
    replace = config.fresh or (before is not None and cut_short(before.data["rows"]))
    entry = slot.get_or_build(build, replace)
    if s3.is_s3(config.export_to):  # upload every file, verified; meta.json (the seal) last
        uri, prefix = _remote(config, entry.path)
        client = s3.client(config.s3_endpoint_url)
        for rel in [*sorted(entry.files), META]:
            s3.upload_verified(client, entry.path / rel, bucket=uri.bucket, key=f"{prefix}/{rel}")
    return entry.path


def reusable_result(
    config: TuneConfig, batch_size: int
) -> tuple[LRSweep, list[TrialResult]] | None:
    """Parent side, before starting a child: a published result that may stand in for
    it. None with ``fresh`` (the child trains again, and replaces what is published),
    and for a result a time budget cut."""
    if config.fresh:
        return None
    published = read_published(config, batch_size)
    if published is None or cut_short(published[1]):
        return None
    return published


def read_published(config: TuneConfig, batch_size: int) -> tuple[LRSweep, list[TrialResult]] | None:
    """Parent side: the child's verified result, or None if there is none (yet)."""
    slot = handoff_slot(config, batch_size)
    entry = slot.read()
    if entry is None and s3.is_s3(config.export_to):
        entry = _download_entry(config, slot)
    if entry is None:
        return None
    data = entry.data
    folder = entry.path
    sweep = LRSweep.model_validate(data["sweep"]).model_copy(update={"path": str(folder)})
    rows = []
    for row in data["rows"]:
        model = row["model_path"] and safe_join(folder, row["model_path"], "published model file")
        rows.append(TrialResult.model_validate(dict(row, model_path=str(model) if model else None)))
    return sweep, rows


def _download_entry(config: TuneConfig, slot: Slot) -> Entry | None:
    """Fetch a child's published entry from S3 into the local mirror; None if not there."""
    entry = slot.path
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
            s3.download(client, uri.bucket, f"{prefix}/{rel}", local=destination)
        (staging / META).write_text(text)
    return slot.read()


def expected_code(config: TuneConfig) -> dict[str, str]:
    """The sha256 of each builder's module (model and data) as the parent imports it:
    what every child must train with."""
    found: dict[str, str] = {}
    for spec in (config.model, config.dataset):
        if spec.builder:
            load_builder(spec.builder, spec.code_path)
            found[spec.builder] = code_version(spec.builder).get("sha256", "")
    return found


def check_code(config: TuneConfig, expected: dict[str, str]) -> None:
    """Child side: refuse, in one line, to train with builders other than the parent's
    (a worker whose checkout or image holds another version of the module)."""
    for ref, digest in expected_code(config).items():
        want = expected.get(ref)
        if want is not None and want != digest:
            raise BuilderError(
                f"builder {ref!r}: this worker's module (sha256 {digest[:12]}) differs from "
                f"the one the run started with ({want[:12]}); give the workers the same code "
                "(the deployment's pull step, or the image)"
            )
