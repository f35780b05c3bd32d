"""Children hand their results to the parent through the export target, not a local disk.

Workers may be on other machines: a child run publishes its LR sweep, rows and models
under the export target (``<target>/.work/trials/b<batch>-<fp>/``, staged and
verified like every stored result), and the parent reads them from there. The entry is
built in the target's local home (for a bucket, in the cache) and published
(`Target.publish`: every object verified, ``meta.json`` last); the parent fetches it
into its own home and verifies it again.
The folder is keyed by everything the trial depends on, so a parent that is rerun
finds finished children's work and does not start them again.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from nighttune.tasks.core.code import code_version, load_builder
from nighttune.tasks.core.config import TrialSpec
from nighttune.tasks.core.errors import BuilderError, IntegrityError
from nighttune.tasks.core.records import LRSweep, TrialResult, sweep_files, values_file
from nighttune.tasks.storage.files import safe_join
from nighttune.tasks.storage.store import EntrySeal, Slot
from nighttune.tasks.storage.target import Target
from nighttune.tasks.tuning.training import trial_key

WORK = ".work"
SEAL = EntrySeal()


def handoff_slot(spec: TrialSpec, batch_size: int, *, target: Target) -> Slot:
    """Where a child's result for ``batch_size`` is kept: under ``<target>/.work/`` (for a
    bucket, under its local home in the cache)."""
    key = trial_key(spec, batch_size)  # the one key of a trial: see TrialSpec
    return Slot(target.home(WORK), "trials", f"b{batch_size}", key)


def _published_name(entry: Path) -> str:
    """An entry's name under the target: ``.work/trials/<entry>``."""
    return f"{WORK}/trials/{entry.name}"


def cut_short(rows: list[TrialResult] | list[dict[str, Any]]) -> bool:
    """Whether a batch size's result was cut by a time budget, or its schedule planned
    shorter by one: never reused, as a cut fit is never reused from the store (and a
    planned one is stored under its planned length)."""
    found = [r if isinstance(r, TrialResult) else TrialResult.model_validate(r) for r in rows]
    return any(r.status == "not run" or r.planned_epochs is not None for r in found)


def publish_trial(
    spec: TrialSpec,
    batch_size: int,
    *,
    target: Target,
    sweep: LRSweep,
    rows: list[TrialResult],
    fresh: bool = False,
) -> Path:
    """Child side: copy the sweep files, rows and models into an entry and publish it
    under ``target`` (every file verified, ``meta.json`` last); ``fresh``: replacing
    what is published."""

    def build(staging: Path) -> dict[str, Any]:
        if sweep.path:
            for name in sweep_files(batch_size):
                shutil.copyfile(Path(sweep.path) / name, staging / name)
        published = []
        for row in rows:
            row = row.model_copy(update={"fit_path": None})  # here: the entry (read_published)
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

    slot = handoff_slot(spec, batch_size, target=target)
    before = slot.read()  # a fresh result, or one a time budget cut, replaces what is there
    replace = fresh or (before is not None and cut_short(before.data["rows"]))
    entry = slot.get_or_build(build, replace)
    target.publish(entry.path, _published_name(entry.path), seal=SEAL)
    return entry.path


def reusable_result(
    spec: TrialSpec, batch_size: int, *, target: Target, fresh: bool = False
) -> tuple[LRSweep, list[TrialResult]] | None:
    """Parent side, before starting a child: a published result that may stand in for
    it. None with ``fresh`` (the child trains again, and replaces what is published),
    and for a result a time budget cut."""
    if fresh:
        return None
    published = read_published(spec, batch_size, target=target)
    if published is None or cut_short(published[1]):
        return None
    return published


def read_published(
    spec: TrialSpec, batch_size: int, *, target: Target
) -> tuple[LRSweep, list[TrialResult]] | None:
    """Parent side: the child's verified result, or None if there is none (yet)."""
    slot = handoff_slot(spec, batch_size, target=target)
    entry = slot.read()
    if entry is None:
        try:  # from the bucket into the local home (in a folder: already there, or not)
            fetched = target.fetch(_published_name(slot.path), seal=SEAL)
        except IntegrityError:
            fetched = None  # damaged: as if not published
        entry = slot.read() if fetched is not None else None
    if entry is None:
        return None
    data = entry.data
    folder = entry.path
    sweep = LRSweep.model_validate(data["sweep"]).model_copy(update={"path": str(folder)})
    rows = []
    for row in data["rows"]:
        model = row["model_path"] and safe_join(folder, row["model_path"], "published model file")
        found = dict(row, model_path=str(model) if model else None, fit_path=str(folder))
        rows.append(TrialResult.model_validate(found))
    return sweep, rows


def expected_code(spec: TrialSpec) -> dict[str, str]:
    """The sha256 of each builder's module (model and data) as the parent imports it:
    what every child must train with."""
    found: dict[str, str] = {}
    for part in (spec.model, spec.dataset):
        if part.builder:
            load_builder(part.builder, part.code_path)
            found[part.builder] = code_version(part.builder).get("sha256", "")
    return found


def check_code(spec: TrialSpec, expected: dict[str, str]) -> None:
    """Child side: refuse, in one line, to train with builders other than the parent's
    (a worker whose checkout or image holds another version of the module)."""
    for ref, digest in expected_code(spec).items():
        want = expected.get(ref)
        if want is not None and want != digest:
            raise BuilderError(
                f"builder {ref!r}: this worker's module (sha256 {digest[:12]}) differs from "
                f"the one the run started with ({want[:12]}); give the workers the same code "
                "(the deployment's pull step, or the image)"
            )
