"""One logger for plain functions: Prefect's run logger inside a run, else ``nighttune``."""

from __future__ import annotations

import logging

# `extra=` of a line for the logs (Prefect keeps it) but not the default screen: each
# epoch, each step of a sweep. `nighttune --verbose` shows them (flows.console).
DETAIL = {"nighttune_detail": True}


def progress(label: str, done: int, total: int, *, note: str) -> dict[str, object]:
    """`DETAIL`, plus where long work stands: the screen shows it as a bar
    (`flows.console.ProgressBars`) rather than as a line."""
    return DETAIL | {"nighttune_progress": (label, done, total, note)}


def get_logger() -> logging.Logger | logging.LoggerAdapter:
    """The current Prefect run's logger when there is one, else the ``nighttune`` logger."""
    try:
        from prefect.exceptions import MissingContextError
        from prefect.logging import get_run_logger

        try:
            return get_run_logger()
        except MissingContextError:
            pass
    except ImportError:  # pragma: no cover - prefect is a hard dependency
        pass
    return logging.getLogger("nighttune")
