"""Nights that learn, for real on digits: three nights under one target, then a
fourth that leaves out the batch size that lost clearly in each, and a changed model
that starts wide again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.harness import small_config

pytestmark = pytest.mark.slow


def manifest(result) -> dict:
    return json.loads((Path(result.export.path) / "manifest.json").read_text())


def test_a_batch_size_that_lost_three_nights_running_is_left_out_until_the_model_changes(
    prefect_harness, tmp_path
) -> None:
    from nighttune.flows.tune import tune

    # Batch size 512 takes 3 steps an epoch of digits' 1,257 training images: after
    # 3 epochs it is far behind 16 (0.87 vs 0.96 on 270 validation images, McNemar
    # p < 0.001). The same config three times is three nights (the store gives the
    # second and third their trials back: the nights are what the target holds).
    config = small_config(tmp_path, batch_sizes=[16, 512], patiences=[1], max_epochs=3)
    nights = [tune(config) for _ in range(3)]
    first = manifest(nights[0])
    assert first["warm_start"]["nights"] == []
    assert first["selection"]["p_vs_best"]["b512 p1"] < 0.05
    assert manifest(nights[2])["warm_start"]["nights"] == [n.run_id for n in nights[:2]]
    assert all(r.status == "ok" for n in nights for r in n.rows)

    fourth = tune(config)
    carried = manifest(fourth)["warm_start"]
    assert carried["nights"] == [n.run_id for n in nights]
    assert list(carried["left_out"]) == ["512"]
    by_size = {r.batch_size: r for r in fourth.rows}
    assert by_size[16].status == "ok" and by_size[512].status == "not run"
    assert by_size[512].error.startswith("warm start: lost clearly on each of its last 3 nights")
    report = (Path(fourth.export.path) / "report.html").read_text()
    assert "Batch size 512 left out" in report

    other_model = small_config(
        tmp_path, batch_sizes=[16, 512], patiences=[1], max_epochs=3, **{"model.hidden_units": [64]}
    )
    wide = tune(other_model)
    assert manifest(wide)["warm_start"]["nights"] == []
    assert manifest(wide)["warm_start"]["setup"] != carried["setup"]
    assert {r.batch_size for r in wide.rows if r.status == "ok"} == {16, 512}
    off = tune(config.model_copy(update={"warm_start": False}))
    assert {r.batch_size for r in off.rows if r.status == "ok"} == {16, 512}
