"""Every option of every command, given a wrong type, an empty or a malformed value.

The cases are generated from the CLI itself (click's parameters), so a new option is
walked as soon as it exists. Each must exit 2 with one ``nighttune: error:`` line that
names the option or its setting, and nothing else on the screen: no traceback, and no
work started (nothing written under the case's folder). The cases run one after
another in one subprocess (`tests.support.cli_walk`): most of a command's time is imports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_origin

import pytest
import typer

from nighttune.flows.cli import app
from nighttune.flows.flags import LR_FIND_FLAGS, TUNE_FLAGS
from tests.support.harness import ROOT
from tests.support.images import class_folder

# Required options, set to values that work, so that the option under test is the only
# thing wrong ({run}, {images} and {tmp} are filled in per case).
REQUIRED = {
    "predict": ("--model", "{run}", "--images", "{images}"),
    "lr-find": ("--out", "{tmp}/lr"),
    "report": ("--history", "{tmp}/exports"),
    "data prepare": ("fashion_mnist", "--from", "{tmp}/sources"),
}
# Were a bad value accepted, tune would train: keep that short, so the failure is fast.
SMALL = {"tune": ("--batch-sizes", "32", "--patiences", "1", "--max-epochs", "1")}


def _bad_values(param: Any) -> Iterator[tuple[str, str]]:
    """(label, value) pairs that must be refused for ``param`` (a typer option)."""
    kind = param.type_descriptor.annotation
    yield "empty", ""
    yield "blank", "  "
    if kind is int:
        yield "text", "x"
        yield "fraction", "1.5"
        yield "negative", "-1"
    elif kind is float:
        yield "text", "x"
        yield "nan", "nan"
        yield "infinite", "inf"
    elif get_origin(kind) is Literal:
        yield "not-a-choice", "bogus"
    elif param.metavar and "," in param.metavar:  # comma lists: INTEGER,INTEGER / H,W
        yield "text", "x"
        yield "trailing-comma", "32,"
        yield "negative", "-4,8"


def _without(args: list[str], option: str) -> list[str]:
    """``args`` less ``option`` and its value."""
    if option not in args:
        return args
    at = args.index(option)
    return args[:at] + args[at + 2 :]


def walk(group: Any = None, prefix: str = "") -> Iterator[tuple[str, str, str, str]]:
    """(command, option, label, value) for every option of every command, subcommands
    (``data prepare``) too; arguments are not options and are left out."""
    for name, sub in (group or typer.main.get_command(app)).commands.items():
        if hasattr(sub, "commands"):
            yield from walk(sub, f"{prefix}{name} ")
            continue
        for param in sub.params:
            if getattr(param, "is_flag", True) or param.name == "help":
                continue
            for label, value in _bad_values(param):
                yield prefix + name, param.opts[0], label, value


CASES = sorted(set(walk()))


def test_the_walk_covers_every_command() -> None:
    assert {case[0] for case in CASES} == {
        "tune",
        "cache",
        "lr-find",
        "predict",
        "report",
        "server",
        "data prepare",
    }
    assert len(CASES) > 100


# The settings a generated flag sets: its error may name the setting, not the flag.
KEYS = {f.name: f.keys for f in (*TUNE_FLAGS, *LR_FIND_FLAGS)}


def _case_id(case: tuple[str, str, str, str]) -> str:
    return "{} {} {}".format(*case[:3])


@pytest.fixture(scope="module")
def outcomes(exported_run, tmp_path_factory) -> dict[str, tuple[Path, list[str], dict]]:
    """Every case run once, in one subprocess, each in its own folder."""
    root = tmp_path_factory.mktemp("walk")
    images = class_folder(root / "img", per_class=1)
    planned: dict[str, tuple[Path, list[str]]] = {}
    for case in CASES:
        command, option, _, value = case
        folder = root / _case_id(case).replace(" ", "_").lstrip("-")
        folder.mkdir()
        fill = {"run": str(exported_run), "images": str(images), "tmp": str(folder)}
        given = [a.format(**fill) for a in REQUIRED.get(command, ()) + SMALL.get(command, ())]
        argv = [*command.split(), *_without(given, option), option, value]
        planned[_case_id(case)] = folder, argv
    cases_file, results_file = root / "cases.json", root / "results.json"
    cases_file.write_text(json.dumps([{"argv": a, "cwd": str(f)} for f, a in planned.values()]))
    env = dict(
        os.environ, PYTHONPATH=str(ROOT), HTTPS_PROXY="http://127.0.0.1:9", NO_PROXY="127.0.0.1"
    )
    subprocess.run(
        [sys.executable, "-m", "tests.support.cli_walk", str(cases_file), str(results_file)],
        env=env,
        check=True,
        timeout=900,
    )
    results = json.loads(results_file.read_text())
    return {cid: (*planned[cid], result) for cid, result in zip(planned, results, strict=True)}


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_a_bad_value_is_one_line_and_exit_2(case, outcomes) -> None:
    folder, argv, result = outcomes[_case_id(case)]
    out, err = result["stdout"], result["stderr"]
    lines = [line for line in err.splitlines() if line.strip()]
    assert result["status"] == 2, f"{argv}: exit {result['status']}\n{out[-2000:]}{err[-2000:]}"
    assert len(lines) == 1 and lines[0].startswith("nighttune: error:"), err[-2000:]
    assert any(name in lines[0] for name in (case[1], *KEYS.get(case[1], ()))), lines[0]
    assert "Traceback" not in out + err
    written = [p for p in folder.rglob("*") if p.is_file()]
    assert not written, written
