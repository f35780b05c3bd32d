"""Every error class of nighttune, and the policy they stand for.

`UserError` (and its subclasses) means the input is wrong: the CLI prints its
one-line message and exits 2, before any training starts when it can. `TrialFailed`
means a single trial broke for a reason a grid expects (out of memory, a resource,
numbers that went NaN): its row records the reason and the grid goes on
(`tasks.tuning.training.expected_failure`). Anything else is a bug and propagates.
A failure of the machine (full disk, cut connection) is not one of ours: the CLI
says it in one line, exit 1 (`flows.console`).
"""

from __future__ import annotations

import re
import reprlib


class UserError(Exception):
    """Something the user gave is wrong; the message says what and how to fix it."""


class ConfigError(UserError):
    """A configuration value (flag, YAML key, dataset spec) is invalid; a config with
    several mistakes gives one line for each (the CLI says each as its own line)."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))


class BuilderError(UserError):
    """A user's builder (``module:function``) cannot be found, fails, or returns the
    wrong thing."""


class DatasetUnavailable(UserError):
    """A dataset cannot be found or prepared from here (unknown name, offline, empty folder)."""


class UnsafePath(UserError):
    """A path from outside (manifest, ``latest.json``, a bucket) that would leave its folder."""


class S3Error(UserError):
    """A permanent S3 problem the user must fix (exit 2)."""


class ObjectMissing(S3Error):
    """A key that should be there is not."""


class RunUnavailable(UserError):
    """The model reference does not lead to a whole, verified run."""


class IntegrityError(RunUnavailable):
    """A file does not match the checksum its manifest recorded: changed or damaged."""


class DocumentInvalid(UserError):
    """A manifest or ``latest.json`` that does not parse or breaks its schema."""


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
