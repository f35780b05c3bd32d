"""The Prefect server settings nighttune runs with, on a lasting server or a temporary one.

Prefect's task-run recorder (a server service) writes each task-run event in a
transaction of its own the moment it arrives: Prefect's default batch size is 1. On
the SQLite-backed server (Prefect's default database) those commits race the request
each tagged task run makes right after emitting its first events, for a concurrency
slot: that request's transaction reads, then writes, and when the recorder has
committed in between SQLite fails it at once ("database is locked"; a busy timeout
does not apply to a read that must turn into a write). The server answers 503 and
Prefect's client waits 2 s before it asks again: 2-3 times in a digits `tune` run of
16 s. With the recorder writing in batches (up to 100 events, at least once a second)
its commits no longer follow each task's start, and the same runs met no 503
(bench/overhead.py; README, Performance). Task runs show up in the UI up to a second
later; a server that stops writes what it holds first.

Values set in the environment win, so Prefect's own defaults stay one variable away.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

SERVER_SETTINGS = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",  # seconds, a whole number
}


def unset_server_settings(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """`SERVER_SETTINGS` that ``environ`` leaves to us."""
    return {name: value for name, value in SERVER_SETTINGS.items() if name not in environ}


def unset_server_setting_updates() -> dict:
    """`unset_server_settings` as updates for `prefect.settings.temporary_settings`: how a
    temporary server, which Prefect starts with the current settings, gets them."""
    import prefect.settings

    unset = unset_server_settings()
    return {getattr(prefect.settings, name): value for name, value in unset.items()}
