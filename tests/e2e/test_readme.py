"""The README's sample of `make run`'s screen is what `make run` prints."""

from __future__ import annotations

import os

import pytest

from tests.support.harness import on_temporary_server
from tests.support.readme_sample import README, REGENERATE, readme_sample, run_tune, sample


@pytest.mark.slow
def test_the_readme_sample_is_what_make_run_prints(tmp_path, prefect_database) -> None:
    """A real `nighttune tune` (no flags, as `make run`) on digits at 80 columns: its
    table, winner, export and report lines, run ids and folders made general, are the
    README's block (every figure there is deterministic: the seconds are left out)."""
    env = dict(os.environ)
    on_temporary_server(env, prefect_database, tmp_path / "prefect-home")
    workdir = tmp_path / "run"
    workdir.mkdir()
    printed = sample(run_tune(workdir, env), workdir)
    shown = readme_sample(README.read_text())
    assert (
        "winner      batch size" in shown and "report      ./exports/<run-id>/report.html" in shown
    )
    assert printed == shown, f"{REGENERATE}\n--- README.md\n{shown}--- make run\n{printed}"
