"""The champion gate's rule: promote unless tonight is worse by more than the margin."""

from __future__ import annotations

import pytest

from nighttune.tasks.core.records import Promotion
from nighttune.tasks.runs.champion import decide


@pytest.mark.parametrize(
    ("score", "champion", "direction", "margin", "promoted"),
    [
        (0.90, 0.89, "max", 0.0, True),  # better
        (0.89, 0.89, "max", 0.0, True),  # a tie is not worse
        (0.88, 0.89, "max", 0.0, False),  # worse
        (0.88, 0.89, "max", 0.02, True),  # worse, within the margin
        (0.90, 0.89, "max", -0.02, False),  # better, but not by the 0.02 required
        (0.30, 0.35, "min", 0.0, True),  # a loss: lower is better
        (0.40, 0.35, "min", 0.0, False),
        (0.40, 0.35, "min", 0.1, True),
    ],
)
def test_gate_compares_in_the_metrics_direction_with_a_margin(
    score, champion, direction, margin, promoted
):
    assert decide("gate", score, champion, direction=direction, margin=margin) is promoted


def test_nothing_to_compare_promotes_under_the_gate():
    assert decide(
        "gate", 0.5, None, direction="max", margin=0.0
    )  # no champion, or it could not be scored
    assert decide("gate", None, 0.9, direction="max", margin=0.0)  # no score tonight


def test_always_and_never_ignore_the_scores():
    assert decide("always", 0.1, 0.9, direction="max", margin=0.0)
    assert not decide("never", 0.9, 0.1, direction="max", margin=0.0)
    assert not decide("never", 0.9, None, direction="max", margin=0.0)


def test_promotion_reads_as_one_sentence():
    found = Promotion(
        policy="gate",
        promoted=False,
        reason="test accuracy 0.5 is worse",
        metric="test_accuracy",
        direction="max",
    )
    assert found.text() == "not promoted: test accuracy 0.5 is worse"
