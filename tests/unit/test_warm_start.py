"""Nights that learn: tonight's carry-over decided from made-up earlier nights (pure),
and read back from the manifests an export writes."""

from __future__ import annotations

import json

import pytest

from nighttune.tasks.runs.manifest import parse_manifest
from nighttune.tasks.runs.warm_start import (
    LOST_NIGHTS,
    REVISIT_AFTER,
    Night,
    night_of,
    plan,
    setup_fingerprint,
)

SETUP = "a" * 16
GRID = (32, 64, 128)


def night(
    number: int,
    *,
    lost: tuple[int, ...] = (),
    ran: tuple[int, ...] = GRID,
    factor: float = 1.0,
    bracket: bool = False,
    setup: str = SETUP,
    examples: int = 50_000,
) -> Night:
    return Night(
        run_id=f"2026120{number}-000000-aaaaaa",
        setup=setup,
        train_examples=examples,
        ran=frozenset(ran),
        lost=frozenset(lost),
        winner_factor=factor,
        bracket=bracket,
    )


def tonight(nights: list[Night], *, width: int = 1, center: float | None = None, **kw):
    return plan(
        nights,
        setup=kw.get("setup", SETUP),
        train_examples=kw.get("examples", 50_000),
        batch_sizes=GRID,
        width=width,
        center=center,
    )


def test_a_first_night_starts_wide() -> None:
    warm = tonight([])
    assert warm.nights == [] and warm.left_out == {} and warm.lr_center is None
    assert warm.lines() == ["no earlier night of this dataset and model: starting wide"]


def test_a_batch_size_that_lost_clearly_three_nights_running_is_left_out() -> None:
    nights = [night(i, lost=(32,)) for i in range(1, LOST_NIGHTS + 1)]
    warm = tonight(nights)
    assert list(warm.left_out) == [32]
    assert all(n.run_id in warm.left_out[32] for n in nights)
    assert any("batch size 32 left out" in line for line in warm.lines())


def test_two_losses_or_a_broken_streak_keep_it() -> None:
    assert tonight([night(1, lost=(32,)), night(2, lost=(32,))]).left_out == {}
    streak_broken = [night(1, lost=(32,)), night(2), night(3, lost=(32,)), night(4, lost=(32,))]
    assert tonight(streak_broken).left_out == {}


def test_a_left_out_batch_size_comes_back_after_its_nights_out_and_goes_again_if_it_loses() -> None:
    nights = [night(i, lost=(32,)) for i in range(1, 4)]
    for i in range(4, 4 + REVISIT_AFTER):
        assert 32 in tonight(nights).left_out, f"night {i}"
        nights.append(night(i, ran=(64, 128)))
    back = tonight(nights)
    assert 32 not in back.left_out and 32 in back.back
    nights.append(night(8, lost=(32,)))  # it lost again: its last three runs all lost
    assert 32 in tonight(nights).left_out
    nights[-1] = night(8)  # it did not: it stays
    assert tonight(nights).left_out == {}


def test_another_setup_or_a_much_larger_dataset_starts_wide_again() -> None:
    nights = [night(i, lost=(32,), factor=0.5) for i in range(1, 4)]
    other = tonight(nights, setup="b" * 16)
    assert other.nights == [] and other.left_out == {} and other.lr_center is None
    grown = tonight(nights, examples=120_000)  # 2.4x the nights' training split
    assert grown.nights == [] and grown.left_out == {}
    assert tonight(nights, examples=90_000).left_out  # 1.8x: still comparable


def test_the_bracket_is_centred_on_the_recent_winners_median_multiple() -> None:
    nights = [night(1, factor=3.0), night(2, factor=1 / 3), night(3, factor=1 / 3)]
    warm = tonight(nights, width=3)
    assert warm.lr_center == pytest.approx(1 / 3) and warm.width is None
    assert "centred on 0.333 x" in warm.bracket_why
    assert tonight([night(1), night(2), night(3, factor=3.0)]).lr_center is None  # median 1


def test_a_centre_set_in_the_config_is_kept() -> None:
    nights = [night(i, factor=1 / 3, bracket=True) for i in range(1, 4)]
    warm = tonight(nights, width=3, center=2.0)
    assert warm.lr_center is None and warm.width is None and warm.bracket_why == ""


def test_brackets_that_agreed_three_nights_narrow_to_their_multiple_until_the_revisit() -> None:
    nights = [night(i, factor=1 / 3, bracket=True) for i in range(1, 4)]
    warm = tonight(nights, width=3)
    assert warm.width == 1 and warm.lr_center == pytest.approx(1 / 3)
    assert "narrowed" in warm.bracket_why
    for i in range(4, 4 + REVISIT_AFTER):  # width 1 nights: no rungs, winners at 1/3
        nights.append(night(i, factor=1 / 3))
    again = tonight(nights, width=3)
    assert again.width is None and again.lr_center == pytest.approx(1 / 3)
    agreed_on_one = [night(i, bracket=True) for i in range(1, 4)]
    narrowed = tonight(agreed_on_one, width=3)
    assert narrowed.width == 1 and narrowed.lr_center is None  # the suggestion itself


def test_brackets_that_disagreed_do_not_narrow() -> None:
    nights = [night(1, factor=3.0, bracket=True), *(night(i, bracket=True) for i in (2, 3))]
    assert tonight(nights, width=3).width is None


def test_the_setup_fingerprint_changes_with_the_model_and_the_data_shape_only() -> None:
    base = {
        "source": "fashion_mnist/3.0.1",
        "input_shape": (28, 28, 1),
        "class_names": ["a", "b"],
        "model": {"kind": "mlp", "hidden_units": 128},
        "trial_shape": {"monitor": "val_accuracy"},
    }
    same = setup_fingerprint(**base)
    assert setup_fingerprint(**base) == same
    assert setup_fingerprint(**base | {"model": {"kind": "mlp", "hidden_units": 64}}) != same
    assert setup_fingerprint(**base | {"input_shape": (32, 32, 1)}) != same


def manifest_text(**extra: object) -> str:
    return json.dumps(
        {
            "run_id": "20261201-000000-aaaaaa",
            "files": {},
            "class_names": ["a", "b"],
            "input_shape": [8, 8, 1],
            "winner": {"batch_size": 64, "patience": 3, "lr_factor": 0.5},
            **extra,
        }
    )


def test_a_night_is_read_from_what_an_export_writes() -> None:
    rows = [
        {"batch_size": b, "patience": p, "status": "ok"} for b in (32, 64, 128) for p in (3, 6)
    ] + [{"batch_size": 256, "patience": 3, "status": "not run"}]
    selection = {
        "test": "McNemar",
        "alpha": 0.05,
        "p_vs_best": {"b32 p3": 0.001, "b32 p6": 0.01, "b64 p6": 0.9, "b128 p3": 0.01},
    }
    found = night_of(
        parse_manifest(
            manifest_text(
                warm_start={"setup": SETUP, "train_examples": 1000},
                trials=rows,
                selection=selection,
                lr_sweeps={"32": {"rungs": []}, "64": {"rungs": [{"rung": 0}]}},
            ),
            "m",
        )
    )
    assert found is not None
    assert found.ran == {32, 64, 128}  # 256 did not run
    assert found.lost == {32}  # 128 p6 has no p: not counted as lost
    assert found.winner_factor == 0.5 and found.bracket
    untested = parse_manifest(
        manifest_text(
            warm_start={"setup": SETUP, "train_examples": 1000},
            trials=rows,
            selection=selection | {"test": None},
        ),
        "m",
    )
    assert night_of(untested).lost == frozenset()  # type: ignore[union-attr]
    assert night_of(parse_manifest(manifest_text(trials=rows), "m")) is None  # before nights


def test_a_batch_size_the_hurdle_stopped_lost_that_night() -> None:
    """Every cell of b128 stopped by the hurdle: lost, with or without a paired test;
    b64 with one cell stopped and one the test cannot tell from the best: not lost."""
    hurdle = "hurdle: behind b32's val_accuracy 0.9000 by epoch 10, the fit stopped there"
    rows = [
        {"batch_size": 32, "patience": 3, "status": "ok"},
        {"batch_size": 32, "patience": 6, "status": "ok"},
        {"batch_size": 64, "patience": 3, "status": "ok"},
        {"batch_size": 64, "patience": 6, "status": "not run", "error": hurdle},
        {"batch_size": 128, "patience": 3, "status": "not run", "error": hurdle},
        {"batch_size": 128, "patience": 6, "status": "not run", "error": hurdle},
        {"batch_size": 256, "patience": 3, "status": "not run", "error": "time budget: ..."},
    ]
    selection = {"test": "McNemar", "alpha": 0.05, "p_vs_best": {"b32 p6": 0.5, "b64 p3": 0.4}}
    for chosen in (selection, None):
        found = night_of(
            parse_manifest(
                manifest_text(
                    warm_start={"setup": SETUP, "train_examples": 1000},
                    trials=rows,
                    selection=chosen,
                ),
                "m",
            )
        )
        assert found is not None
        assert found.ran == {32, 64, 128} and found.lost == {128}
