"""The README's sample of `make run`'s screen, taken from a real run so it cannot drift.

``python -m tests.support.readme_sample`` (`make readme-sample`) runs what `make run`
runs (`nighttune tune`, no flags) in a fresh folder with a fresh cache, on an
80-column screen, and writes the end of its screen (the trials table, the winner,
the export and the report) into the README's block after `MARKER`, run ids and
folders written as ``<run-id>`` and ``./exports``. `test_the_readme_sample_is_what_make_run_prints`
runs it again and compares: every figure the sample shows is deterministic on one
machine (the table at 80 columns leaves out the seconds).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MARKER = "<!-- `make run`'s screen at 80 columns, written by `make readme-sample` -->"
REGENERATE = (
    "the README's sample is not what `make run` prints now (did the default tune "
    "change?): regenerate it with `make readme-sample`, check the figures the README's "
    "text quotes, and commit README.md"
)


def run_tune(workdir: Path, env: dict[str, str]) -> str:
    """`make run`'s command in ``workdir`` (its exports land there); its stdout."""
    env = dict(env, COLUMNS="80", HOME=str(workdir))
    env["NIGHTTUNE_CACHE_DIR"] = str(workdir / "cache")
    done = subprocess.run(
        [sys.executable, "-m", "nighttune.flows.cli", "tune"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"nighttune tune failed:\n{done.stderr[-3000:]}")
    return done.stdout


def sample(stdout: str, workdir: Path) -> str:
    """The screen from the trials table on, this run's folder and id made general."""
    text = stdout.strip("\n").replace(str(workdir), ".")
    text = re.sub(r"\b\d{8}-\d{6}-[0-9a-f]{6}\b", "<run-id>", text)
    return text + "\n"


def readme_sample(readme: str) -> str:
    """The fenced block after `MARKER` in the README's text."""
    after = readme.split(MARKER, 1)[1]
    return after.split("```\n", 1)[1].split("```", 1)[0]


def with_sample(readme: str, block: str) -> str:
    old = readme_sample(readme)
    at = readme.index(MARKER)
    return readme[:at] + readme[at:].replace(old, block, 1)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="nighttune-readme-") as tmp:
        workdir = Path(tmp)
        block = sample(run_tune(workdir, dict(os.environ)), workdir)
    README.write_text(with_sample(README.read_text(), block))
    print(f"wrote the sample in {README}:\n{block}")


if __name__ == "__main__":
    main()
