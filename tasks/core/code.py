"""The user's own code: a builder named ``module:function``, imported from known folders.

The module is searched for in the folders given (the config's ``code_dir``, then the
config file's own folder), then in the working directory, then on the usual path.
Those folders stay on ``sys.path`` once a builder is imported from them, so the
objects the module registers with Keras (custom layers) can be loaded later.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator

from nighttune.tasks.core.errors import BuilderError, first_line

BUILDER_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def builder_problem(ref: str) -> str | None:
    """Why ``ref`` is not a ``module:function`` name; None when it is one."""
    if BUILDER_PATTERN.match(ref):
        return None
    return "must be module:function, e.g. my_models:build (a Python module and a function in it)"


def _builder_ref(value: str) -> str:
    if problem := builder_problem(value):
        raise ValueError(problem)
    return value


BuilderRef = Annotated[str, AfterValidator(_builder_ref)]  # module:function
CODE_PATH_HELP = (
    "Folders searched for the builder's module before the working directory; "
    "set from code_dir and the config file's folder."
)


def search_path(dirs: Sequence[str]) -> list[str]:
    """The folders a builder's module is looked for in, in order, absolute."""
    found = [str(Path(d).expanduser().resolve()) for d in dirs]
    return [*dict.fromkeys([*found, os.getcwd()])]


def load_builder(ref: str, dirs: Sequence[str] = ()) -> Callable[..., Any]:
    """The function ``ref`` names, its module imported from ``dirs`` first (see module doc).

    Raises:
        BuilderError: ``ref`` malformed, module not found (saying where it looked), an
            import that fails (its first line), or no such function.
    """
    if problem := builder_problem(ref):
        raise BuilderError(f"builder {ref!r} {problem}")
    module_name, function_name = ref.split(":")
    folders = search_path(dirs)
    for folder in reversed(folders):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise BuilderError(
                f"builder {ref!r}: no module {module_name!r} in {', '.join(folders)} "
                "(set code_dir, or run from the project's folder)"
            ) from None
        raise BuilderError(f"builder {ref!r}: importing it failed: {first_line(exc)}") from None
    except Exception as exc:  # the user's module failed at import: say how, in one line
        raise BuilderError(
            f"builder {ref!r}: importing it failed: {type(exc).__name__}: {first_line(exc)}"
        ) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise BuilderError(
            f"builder {ref!r}: module {module_name} ({getattr(module, '__file__', '?')}) "
            f"has no function {function_name!r}"
        )
    return function


def call_builder(ref: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)``; anything it raises becomes one line naming it."""
    try:
        return function(*args, **kwargs)
    except Exception as exc:
        raise BuilderError(
            f"builder {ref!r} raised {type(exc).__name__}: {first_line(exc)[:300]}"
        ) from None


def code_version(ref: str) -> dict[str, str]:
    """What produced a run: the builder's name, its module's file and that file's sha256
    (call after `load_builder`: the module is imported)."""
    module = sys.modules.get(ref.split(":")[0])
    path = getattr(module, "__file__", None)
    if not path or not os.path.isfile(path):
        return {"builder": ref}
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return {"builder": ref, "file": os.path.basename(path), "sha256": digest}


def import_for_loading(ref: str, folder: str, expected_sha256: str | None = None) -> str | None:
    """Import the module of the builder that made a run, so the custom objects it
    registers with Keras load. Only a module found in ``folder`` is imported (a run's
    manifest comes from outside: it may not name any module on the path). Returns a
    warning when the module's file differs from the one the run was built with.

    Raises:
        BuilderError: ``ref`` malformed, or its module not in ``folder``.
    """
    import importlib.machinery

    if problem := builder_problem(ref):
        raise BuilderError(f"the run's builder {ref!r} {problem}")
    module_name = ref.split(":")[0]
    root = str(Path(folder).expanduser().resolve())
    if importlib.machinery.PathFinder.find_spec(module_name.split(".")[0], [root]) is None:
        raise BuilderError(
            f"the run was built by {ref}: no module {module_name!r} in {root}; "
            "pass --code-dir with the project's folder"
        )
    load_builder(ref, [root])
    found = code_version(ref).get("sha256")
    if expected_sha256 and found and found != expected_sha256:
        return f"{module_name} differs from the code the run was built with (sha256 changed)"
    return None
