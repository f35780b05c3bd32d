"""``latest.json``: which run a target serves, moved only forward.

Run ids sort by start time. A local target's pointer is replaced under a lock; a
bucket's with a conditional PUT (If-Match / If-None-Match) after comparing, so an
older run that finishes later never takes the pointer back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nighttune.tasks.core.errors import UserError
from nighttune.tasks.runs.manifest import LATEST, MAX_LATEST_BYTES, parse_latest
from nighttune.tasks.storage import s3
from nighttune.tasks.storage.files import file_lock, read_bounded, write_text_atomic


def served_run_id(target: str, endpoint_url: str | None = None, client: Any = None) -> str | None:
    """The run id the ``latest.json`` of ``target`` (a folder or s3://bucket/prefix)
    names; None when there is none. A damaged one raises `UserError` saying so; a local
    one that cannot be read raises the `OSError`. ``client``: an S3 client to reuse."""
    if s3.is_s3(target):
        uri = s3.S3Uri.parse(target)
        client = client or s3.client(endpoint_url)
        text = s3.get_text(client, uri.bucket, uri.key(LATEST), max_bytes=MAX_LATEST_BYTES)
        where = uri.child(LATEST)
    else:
        path = Path(target).expanduser() / LATEST
        text = read_bounded(path, MAX_LATEST_BYTES).decode() if path.is_file() else None
        where = str(path)
    return None if text is None else parse_latest(text, where).run_id


def point_latest(target: Path, run_id: str, uri: str) -> bool:
    """Make ``<target>/latest.json`` name ``run_id`` unless it names a newer run already.

    Run ids sort by start time; under a lock, so two runs finishing together leave the
    newer one named, whichever finished last. Returns whether the file now names it.
    """
    with file_lock(target / ".latest.lock"):
        if _current_run_id(_read_or_none(target / LATEST)) > run_id:
            return False
        write_text_atomic(target / LATEST, _latest_text(run_id, uri))
        return True


def point_latest_s3(client: Any, uri: s3.S3Uri, run_id: str, *, run_uri: str) -> bool:
    """`point_latest` for a bucket: read, compare, and write only if the object is still
    the one read (a conditional PUT), so an older run finishing later never wins."""
    key = uri.key(LATEST)
    for _ in range(LATEST_ATTEMPTS):
        found = s3.get_versioned_text(client, uri.bucket, key, max_bytes=MAX_LATEST_BYTES)
        text, etag = found if found else (None, None)
        if _current_run_id(text) > run_id:
            return False
        try:
            s3.put_json(
                client,
                uri.bucket,
                key,
                text=_latest_text(run_id, run_uri),
                if_match=etag,
                if_absent=found is None,
            )
            return True
        except s3.Conflict:
            continue  # another run wrote it meanwhile: compare again
    raise OSError(f"{uri.child(LATEST)} kept changing under {LATEST_ATTEMPTS} attempts to write it")


LATEST_ATTEMPTS = 8


def _read_or_none(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


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
