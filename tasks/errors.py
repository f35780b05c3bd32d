"""The two kinds of failure nighttune distinguishes.

`UserError` (and its subclasses) means the input is wrong: the CLI prints its
one-line message and exits 2, before any training starts. `TrialFailed` means a
single trial broke; its row records the reason and the grid goes on.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user gave is wrong; the message says what and how to fix it."""


class ConfigError(UserError):
    """A configuration value (flag, YAML key, dataset spec) is invalid."""


class DatasetUnavailable(UserError):
    """A dataset cannot be found or prepared from here (unknown name, offline, empty folder)."""


class TrialFailed(Exception):
    """One trial raised or diverged; the grid records it and continues."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
