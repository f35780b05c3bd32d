"""The two kinds of failure nighttune distinguishes.

`UserError` (and its subclasses) means the input is wrong: the CLI prints its
one-line message and exits 2, before any training starts. `TrialFailed` means a
single trial broke; its row records the reason and the grid goes on.
"""

from __future__ import annotations

import re
import reprlib


class UserError(Exception):
    """Something the user gave is wrong; the message says what and how to fix it."""


class ConfigError(UserError):
    """A configuration value (flag, YAML key, dataset spec) is invalid."""


class DatasetUnavailable(UserError):
    """A dataset cannot be found or prepared from here (unknown name, offline, empty folder)."""


class UnsafePath(UserError):
    """A path from outside (manifest, ``latest.json``, a bucket) that would leave its folder."""


class TrialFailed(Exception):
    """One trial raised or diverged; the grid records it and continues."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_REPR = reprlib.Repr()  # (keyword arguments only from Python 3.12)
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, 60, 60
_REPR.maxtuple = _REPR.maxlist = _REPR.maxdict = _REPR.maxset = 6


def short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to about ``limit`` characters without ever building it whole
    (a YAML alias bomb's repr would be exponential in the file's size)."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clean_tf_message(text: str) -> str:
    """A TensorFlow error message without its op noise (``{{function_node ...}}``,
    ``[Op:...]``): what a person needs of it."""
    return re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:.*$", "", text).strip()
