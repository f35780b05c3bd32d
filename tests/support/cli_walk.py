"""Runs many `nighttune` command lines in one process, for `tests/e2e/test_cli_walk.py`.

``python -m tests.support.cli_walk CASES.json RESULTS.json``: each case is ``{"argv":
[...], "cwd": folder}``; each runs `flows.cli.main` in its folder (also HOME and the
cache), with stdout and stderr caught. A case that raises out of `main` is recorded with
its traceback: that is what a user would have seen. One process, because most of a
command line's time is importing; the cases share it as they would share nothing else.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback


class WouldExec(Exception):
    """`nighttune server` got as far as replacing itself with the Prefect server."""


def _no_exec(path: str, argv: list[str], env: object) -> None:
    raise WouldExec(" ".join(argv))


def run_case(argv: list[str], cwd: str) -> dict[str, object]:
    from nighttune.flows.cli import main

    os.chdir(cwd)
    os.environ.update(HOME=cwd, NIGHTTUNE_CACHE_DIR=os.path.join(cwd, "cache"))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status: object = main(argv)
        except BaseException:  # noqa: BLE001 - what escapes main is the finding
            status = "raised"
            err.write(traceback.format_exc())
    return {"status": status, "stdout": out.getvalue(), "stderr": err.getvalue()}


if __name__ == "__main__":
    os.execve = _no_exec  # type: ignore[assignment]  # a server must not replace the walk
    cases_file, results_file = sys.argv[1:3]
    with open(cases_file) as fh:
        cases = json.load(fh)
    results = [run_case(case["argv"], case["cwd"]) for case in cases]
    with open(results_file, "w") as fh:
        json.dump(results, fh)
