"""The shape of the code that the import contract (make lint) does not see."""

from __future__ import annotations

import ast

from tests.conftest import ROOT


def test_only_the_settings_module_touches_the_environment() -> None:
    """Environment variables are read in `tasks.core.settings` and passed down from there."""
    readers = []
    for path in (ROOT / "tasks").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                if isinstance(node.value, ast.Name) and node.value.id == "os":
                    readers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert readers and all(r.startswith("tasks/core/settings.py:") for r in readers), readers
