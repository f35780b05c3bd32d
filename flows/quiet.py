"""TensorFlow's import-time chatter kept off a person's screen.

Importing TensorFlow 2.21 writes, from C++ and straight to file descriptor 2, lines no
environment variable silences (``TF_CPP_MIN_LOG_LEVEL`` is set and still they come):
absl's "All log messages before absl::InitializeLog() is called are written to
STDERR" and oneDNN's "custom operations are on", twice each, and a CPU-feature note.
`install` (done when `flows` is imported: the CLI, and every worker's flow run) puts a
finder on ``sys.meta_path`` that runs TensorFlow's first import with fd 2 pointed at a
temporary file; what it caught is then written back except those known lines, so
anything else TensorFlow says at import (or an import that fails) still shows.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from types import ModuleType
from typing import Any

NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|I0000 .*\] oneDNN custom operations are on"
    r"|I0000 .*cpu_feature_guard.*This TensorFlow binary is optimized"
    r"|To enable the following instructions: .* in other operations, rebuild TensorFlow)"
)


@contextlib.contextmanager
def native_stderr_filtered() -> Iterator[None]:
    """File descriptor 2 caught while the block runs; then written back without `NOISE`."""
    try:
        fd = sys.__stderr__.fileno() if sys.__stderr__ else 2
    except (OSError, ValueError):  # no real stderr (an embedded interpreter)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            kept = [
                line
                for line in sink.read().decode("utf-8", "replace").splitlines(keepends=True)
                if not NOISE.match(line)
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _Loader(importlib.abc.Loader):
    """TensorFlow's own loader, its module run with fd 2 filtered."""

    def __init__(self, inner: importlib.abc.Loader) -> None:
        self.inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with native_stderr_filtered():
            self.inner.exec_module(module)
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _Finder)]

    def __getattr__(self, name: str) -> Any:  # resource readers and the like
        return getattr(self.inner, name)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` as the import system would, with `_Loader` around it, until
    it has been imported (a library's ``find_spec("tensorflow")`` does not import it)."""

    searching = False

    def find_spec(
        self, name: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != "tensorflow" or self.searching:
            return None
        self.searching = True  # the real spec, found without this finder
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.searching = False
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


def install() -> None:
    """Filter TensorFlow's first import in this process (nothing if it is imported)."""
    if "tensorflow" not in sys.modules and not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
