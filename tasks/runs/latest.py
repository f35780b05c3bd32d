"""``latest.json``: which run a target serves, moved only forward.

Run ids sort by start time. The pointer is replaced by a compare-and-swap
(`Target.swap`: a lock and an atomic rename in a folder, a conditional PUT in a
bucket) after comparing, so an older run that finishes later never takes it back.
"""

from __future__ import annotations

import json

from nighttune.tasks.core.errors import UserError
from nighttune.tasks.runs.manifest import LATEST, MAX_LATEST_BYTES, parse_latest
from nighttune.tasks.storage.target import Conflict, Target


def served_run_id(target: Target) -> str | None:
    """The run id the ``latest.json`` of ``target`` names; None when there is none. A
    damaged one raises `UserError` saying so; a local one that cannot be read raises the
    `OSError`."""
    text = target.read_text(LATEST, max_bytes=MAX_LATEST_BYTES)
    return None if text is None else parse_latest(text, target.location(LATEST)).run_id


def point_latest(target: Target, run_id: str, *, run_uri: str) -> bool:
    """Make ``<target>/latest.json`` name ``run_id`` unless it names a newer run already.

    Read, compare, and write only if the pointer is still the one read, so two runs
    finishing together leave the newer one named, whichever finished last. Returns
    whether the pointer now names it.
    """
    for _ in range(LATEST_ATTEMPTS):
        found = target.read_versioned(LATEST, max_bytes=MAX_LATEST_BYTES)
        if _current_run_id(found.text if found else None) > run_id:
            return False
        try:
            target.swap(
                LATEST, _latest_text(run_id, run_uri), version=found.version if found else None
            )
            return True
        except Conflict:
            continue  # another run wrote it meanwhile: compare again
    raise OSError(
        f"{target.location(LATEST)} kept changing under {LATEST_ATTEMPTS} attempts to write it"
    )


LATEST_ATTEMPTS = 8


def _current_run_id(text: str | None) -> str:
    """The run id a ``latest.json`` names; "" when there is none or it is damaged."""
    if text is None:
        return ""
    try:
        return parse_latest(text, LATEST).run_id
    except UserError:
        return ""


def _latest_text(run_id: str, uri: str) -> str:
    return json.dumps({"run_id": run_id, "uri": uri}, indent=2)
