"""What nighttune puts on a person's screen: its log lines, and failures as one line.

A user's mistake is a `UserError` (exit 2, `flows.cli`). A failure of the machine or
the network — a full disk, a cut connection, an S3 timeout — is one line and exit 1
(`environmental`); Prefect's own console logs of a failed task or flow keep their
one-line message and lose the traceback (`hide_tracebacks`; its API handler still
sends it to the server, where the UI shows it). ``--verbose`` keeps every traceback.
"""

from __future__ import annotations

import logging
import sys


def console_logging() -> None:
    """Our progress lines on stderr with a timestamp; other libraries' INFO stays quiet."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    ours = logging.getLogger("nighttune")
    ours.handlers[:] = [handler]
    ours.setLevel(logging.INFO)
    ours.propagate = False


class WithoutTraceback(logging.Formatter):
    """Another formatter's lines without the traceback (the record keeps it for others:
    Prefect's API handler still sends it to the server, where the UI shows it)."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


def hide_tracebacks() -> None:
    """Prefect logs a failed task's or flow's traceback on the console (~100 lines each);
    the command ends with one line saying what failed instead (`--verbose` keeps them)."""
    for handler in logging.getLogger().handlers:
        if type(handler).__name__ == "PrefectConsoleHandler" and not isinstance(
            handler.formatter, WithoutTraceback
        ):
            handler.setFormatter(WithoutTraceback(handler.formatter))


# TensorFlow's errors for what the machine did: a full disk ("ResourceExhausted: No
# space left on device" from a SavedModel write), a file gone or unreadable.
TF_ENVIRONMENT_ERRORS = {
    "ResourceExhaustedError",
    "UnavailableError",
    "PermissionDeniedError",
    "NotFoundError",
    "DataLossError",
    "DeadlineExceededError",
}


def environmental(exc: BaseException) -> bool:
    """A failure of the machine or the network, not of nighttune: a full disk, a cut
    connection, an S3 timeout. One line says which; anything else is a bug and keeps
    its traceback."""
    module = type(exc).__module__
    return (
        isinstance(exc, OSError)
        or module.startswith(("botocore", "urllib3"))
        or (module.startswith("tensorflow") and type(exc).__name__ in TF_ENVIRONMENT_ERRORS)
    )
