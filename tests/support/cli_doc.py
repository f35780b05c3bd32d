"""``docs/command-line.md``: every command's ``--help``, generated from the CLI itself.

``python -m tests.support.cli_doc`` writes it (`make docs`); `test_cli_doc_is_current`
fails when the page and the CLI disagree, so the page lists every option there is.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from typer._click.core import Context

from nighttune.flows.cli import app

DOC = Path(__file__).resolve().parents[2] / "docs" / "command-line.md"
WIDTH = 88

INTRO = """\
# Command line

Every command and option as `nighttune COMMAND --help` prints them; generated from the
CLI by `make docs`, so it cannot fall behind. Back to the [README](../README.md); the
settings behind the flags are explained in [configuration](configuration.md).

Exit status: 0 done; 2 the input is wrong (one line on stderr says what and how to fix
it, no traceback); 1 anything else (e.g. every trial failed). A flag overrides the
same key of `--config`; an empty value (`--out ""`) is refused, not read as a default.
"""


def _help(command, name: str, parent: Context | None = None) -> tuple[str, Context]:
    ctx = Context(command, info_name=name, parent=parent, terminal_width=WIDTH)
    ctx.max_content_width = WIDTH
    return command.get_help(ctx), ctx


def render() -> str:
    group = typer.main.get_command(app)
    top, ctx = _help(group, "nighttune")
    parts = [INTRO, "```", top, "```"]
    for name, sub in group.commands.items():  # type: ignore[attr-defined]
        parts += ["", f"## nighttune {name}", "", "```", _help(sub, name, ctx)[0], "```"]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    DOC.write_text(render())
    sys.stdout.write(f"wrote {DOC}\n")
