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
