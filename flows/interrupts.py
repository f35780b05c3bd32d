"""Ctrl-C and SIGTERM: stop at once, say so in one line, leave nothing running.

SIGINT raises `KeyboardInterrupt` and SIGTERM raises `Interrupted` in the main
thread; the command's ``finally`` blocks (the temporary Prefect server's stop among
them) run as the exception unwinds, and `flows.cli` prints one line and exits
128 + the signal's number (130, 143). Python runs a signal's handler only when the
main thread is back in Python, which a long TensorFlow call can delay; so the C
level's wakeup byte also wakes a watchdog thread, which, if the process is still
there after `GRACE_S`, runs the registered cleanups itself and ends the process.
Whatever finished is already in the store (staged and renamed), so a rerun resumes.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable

GRACE_S = 10.0
MESSAGE = "interrupted; rerun the same command to resume (finished work is kept)"

_cleanups: list[Callable[[], None]] = []
_said = threading.Event()


class Interrupted(BaseException):
    """A SIGTERM (or SIGINT) arrived: unwind, like `KeyboardInterrupt`."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def on_interrupt(cleanup: Callable[[], None]) -> Callable[[], None]:
    """Have the watchdog run ``cleanup`` if it has to end the process; returns it."""
    _cleanups.append(cleanup)
    return cleanup


def forget(cleanup: Callable[[], None]) -> None:
    if cleanup in _cleanups:
        _cleanups.remove(cleanup)


def say_once() -> None:
    """Print `MESSAGE` once, whoever gets there first (the command or the watchdog)."""
    if not _said.is_set():
        _said.set()
        print(f"nighttune: error: {MESSAGE}", file=sys.stderr, flush=True)


def install() -> None:
    """SIGTERM raises `Interrupted`; the watchdog listens for SIGINT and SIGTERM."""
    if threading.current_thread() is not threading.main_thread():
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd)
    signal.signal(signal.SIGTERM, _raise)
    threading.Thread(
        target=_watch, args=(read_fd,), name="nighttune-interrupts", daemon=True
    ).start()


def _raise(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def _watch(read_fd: int) -> None:
    while True:
        data = os.read(read_fd, 64)
        caught = [n for n in data if n in (signal.SIGINT, signal.SIGTERM)]
        if caught:
            break
    time.sleep(GRACE_S)
    for cleanup in list(_cleanups):
        try:
            cleanup()
        except Exception:  # noqa: S110 - ending anyway; nothing left to report to
            pass
    say_once()
    os._exit(128 + caught[0])


def signal_of(exc: BaseException) -> int | None:
    """The signal behind ours or Prefect's termination exception (SIGTERM in a flow)."""
    if isinstance(exc, Interrupted):
        return exc.signum
    if "prefect.exceptions" in sys.modules:
        from prefect.exceptions import TerminationSignal

        if isinstance(exc, TerminationSignal):
            return int(exc.signal)
    return None
