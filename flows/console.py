"""What nighttune puts on a person's screen: its log lines, and failures as one line.

A user's mistake is a `UserError` (exit 2, `flows.cli`). A failure of the machine or
the network — a full disk, a cut connection, an S3 timeout — is one line and exit 1
(`environmental`); Prefect's own console lines about a failed or crashed task or flow
stay off the screen, since the command says the failure once (`ForTheScreen`; its API
handler still sends them to the server, where the UI shows them). ``--verbose`` keeps
every line and every traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import Any


def console_logging() -> None:
    """Our progress lines on stderr with a timestamp; other libraries' INFO stays quiet."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    ours = logging.getLogger("nighttune")
    ours.handlers[:] = [handler]
    ours.setLevel(logging.INFO)
    ours.propagate = False
    root = logging.getLogger()
    if not root.handlers:  # (Prefect's logging, when it is set up, replaces this one)
        # Other libraries' lines, through the screen's filter. Also keeps TFDS's
        # logging.basicConfig() (called as it makes a builder) from adding a plain one.
        plain = logging.StreamHandler(sys.stderr)
        plain.addFilter(ForTheScreen())
        plain.setFormatter(WithoutTraceback(ScreenFormat()))
        root.addHandler(plain)


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


# Prefect's lines that say nothing a person needs on a good run (the UI keeps them).
ENGINE_CHATTER = ("Finished in state Completed()", "Beginning flow run", "Created task run")
# Prefect's lines as a task or flow run ends on an exception or a signal: the same
# failure once per run it passes through (a builder's error was four lines, Ctrl-C four
# "Crash detected!"), before the command says it once (`flows.cli`: one line, or the
# traceback of a bug). The API handler still sends them to the server, for the UI.
ENGINE_ENDINGS = (
    "Task run failed with",
    "Finished in state",
    "Encountered exception during execution",
    "Crash detected!",
)


class ForTheScreen(logging.Filter):
    """Drops what belongs in the logs but not on the default screen: lines marked
    `tasks.core.logs.DETAIL` (each epoch, each sweep step), Prefect's engine chatter,
    its lines about a run that failed or crashed (the command says that once), and INFO
    from libraries (absl)."""

    def filter(self, record: logging.LogRecord) -> bool:
        engine = record.name.startswith(("prefect.flow_runs", "prefect.task_runs"))
        if engine and record.getMessage().startswith((*ENGINE_CHATTER, *ENGINE_ENDINGS)):
            return False
        if record.levelno >= logging.WARNING:
            return record.name != "absl" or record.levelno >= logging.ERROR
        if getattr(record, "nighttune_detail", False):
            return False
        return engine or record.name.startswith("nighttune")


class ScreenFormat(logging.Formatter):
    """``03:53:31 dataset digits: cached in ...``; ``warning:``/``error:`` before the
    message when it is one; never a traceback (`WithoutTraceback`)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(message)s", datefmt="%H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        text = super().formatMessage(record)
        if record.levelno >= logging.WARNING:
            stamp, _, message = text.partition(" ")
            return f"{stamp} {record.levelname.lower()}: {message}"
        return text


class ProgressBars(logging.Handler):
    """Long work as one bar on a terminal instead of a line per step: records carrying
    ``nighttune_progress`` (`tasks.core.logs.progress`: each epoch, each sweep step) move
    the bar of their label; the bar is cleared before any line the screen shows, so
    the lines read as they would without it. Installed first, so it clears in time."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__()
        self.stream = stream or sys.stderr
        self.screen = ForTheScreen()
        self.bar: Any = None
        self.label = ""

    def emit(self, record: logging.LogRecord) -> None:
        state = getattr(record, "nighttune_progress", None)
        if state is None:
            if self.bar is not None and self.screen.filter(record):
                self.clear()
            return
        label, done, total, note = state
        if self.bar is None or label != self.label or done < self.bar.n:
            self.clear()
            from tqdm import tqdm

            shape = "{desc} {n}/{total} |{bar}| {elapsed}{postfix}"
            self.bar = tqdm(
                total=total, desc=label, file=self.stream, leave=False, bar_format=shape
            )
            self.label = label
        self.bar.set_postfix_str(note, refresh=False)
        self.bar.update(done - self.bar.n)

    def clear(self) -> None:
        """Take the bar off the screen (the next line is written where it was)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def close(self) -> None:
        self.clear()
        super().close()


def screen_logging(verbose: bool) -> None:
    """The console as a person reads it: `ForTheScreen` and `ScreenFormat` on Prefect's
    console handler and ours. ``verbose`` leaves Prefect's console as Prefect sets it
    (every line, tracebacks too) and lets our detail lines through."""
    # Prefect's console handler, and any other that writes to the terminal: TFDS calls
    # logging.basicConfig() when it makes a catalog builder, and when that happens before
    # Prefect sets up its logging the root keeps that plain handler instead.
    consoles = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, ProgressBars)
    ]
    for handler in [*logging.getLogger("nighttune").handlers, *consoles]:
        for f in [f for f in handler.filters if isinstance(f, ForTheScreen)]:
            handler.removeFilter(f)
        if not verbose:
            handler.addFilter(ForTheScreen())
            handler.setFormatter(WithoutTraceback(ScreenFormat()))
    for logger in (logging.getLogger(), logging.getLogger("nighttune")):
        for bars in [h for h in logger.handlers if isinstance(h, ProgressBars)]:
            bars.close()
            logger.removeHandler(bars)
        if not verbose and sys.stderr.isatty():
            logger.handlers.insert(0, ProgressBars())


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
