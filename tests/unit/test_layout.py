"""The shape of the code that the import contract (make lint) does not see."""

from __future__ import annotations

import ast

from tests.support.harness import ROOT


def test_only_the_settings_module_touches_the_environment() -> None:
    """Environment variables are read in `tasks.core.settings` and passed down from there."""
    readers = []
    for path in (ROOT / "tasks").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                if isinstance(node.value, ast.Name) and node.value.id == "os":
                    readers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert readers and all(r.startswith("tasks/core/settings.py:") for r in readers), readers


MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60


def _sources() -> list:
    return sorted([*(ROOT / "tasks").rglob("*.py"), *(ROOT / "flows").rglob("*.py")])


def test_short_pieces() -> None:
    """No module of the product over 300 lines, no function over 60 (decorators excluded)."""
    long_modules, long_functions = [], []
    for path in _sources():
        text = path.read_text()
        name = str(path.relative_to(ROOT))
        if (lines := len(text.splitlines())) > MAX_MODULE_LINES:
            long_modules.append(f"{name}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{name}:{node.lineno} {node.name}: {length} lines")
    assert long_modules == [] and long_functions == []


def test_prefect_lives_in_the_flows_and_two_library_modules() -> None:
    """The flows wrap the library; under tasks/ only dispatch and the run logger import Prefect."""
    importers = set()
    for path in (ROOT / "tasks").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            if any(n == "prefect" or n.startswith("prefect.") for n in names):
                importers.add(str(path.relative_to(ROOT)))
    assert importers == {"tasks/dispatch/deployments.py", "tasks/core/logs.py"}
