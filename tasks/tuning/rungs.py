"""A bracket of candidate LRs and the successive halving that picks one: pure arithmetic.

A range test gives one suggestion; the best peak of an annealed schedule lies near it,
not exactly on it. The bracket is the suggestion and its multiples by ``factor`` below
and above it in turn (width 3, factor 3: s, s/3, 3s). Successive halving (Jamieson &
Talwalkar, arXiv 1502.07943; the rung structure of Ray's ASHA, Optuna's
`SuccessiveHalvingPruner`, KerasTuner's `Hyperband`) tells them apart with little
compute: every candidate gets a first rung of ``first_rung`` epochs, the best
``1/eta`` of each rung go on to one ``eta`` times longer, until one is left for the
full trial. The peers draw their candidates at random; ours start from the curve.

Unlike ASHA, a rung here is a whole schedule compressed into the rung's epochs (its
warm-up and annealing included), not the first epochs of the full one: a one-cycle
schedule's first epochs are its warm-up, which ranks candidates by how fast they climb
from a 25th of their peak, not by how well they end. Candidates are compared within a
batch size: across batch sizes, a short rung favours the small ones, which take more
steps an epoch (short-horizon bias); the full trials compare batch sizes.

This module decides; `tasks.tuning.halving` fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nighttune.tasks.core.records import LRMethod, RungResult, candidate_label


@dataclass(frozen=True)
class Candidate:
    """One candidate peak LR: ``factor`` times ``method``'s suggestion."""

    lr: float
    method: LRMethod
    factor: float

    @property
    def label(self) -> str:
        return candidate_label(self.method, self.factor)


@dataclass(frozen=True)
class Rung:
    """One rung of the plan: how many candidates fit, for how many epochs each, and how
    many of them go on (to the next rung, or, from the last, to the full trial)."""

    candidates: int
    epochs: int
    keep: int


def bracket(
    lr: float, method: LRMethod, *, width: int, factor: float, center: float = 1.0
) -> list[Candidate]:
    """``width`` candidates around ``center`` times the suggestion ``lr`` (c): ``c``
    itself, then ``c / factor``, ``c * factor``, ``c / factor**2``... in that order (the
    order breaks ties in `promote`: nearer the centre first, the lower of a pair first,
    since a rate too high diverges)."""
    found = [Candidate(lr * center, method, center)]
    power = 1
    while len(found) < width:
        for multiple in (factor**-power, factor**power):
            if len(found) < width:
                found.append(Candidate(lr * center * multiple, method, center * multiple))
        power += 1
    return found


def halving_plan(width: int, *, eta: int, first_rung: int, max_epochs: int) -> list[Rung]:
    """The short rungs before the full trial: each ``eta`` times longer than the one
    before, with ``1/eta`` of its candidates (at least one), until one candidate is left
    or the next rung would be as long as the trial itself; the last rung keeps one.
    Empty for a single candidate, or when even the first rung would be the full trial."""
    plan: list[Rung] = []
    count, epochs = width, first_rung
    while count > 1 and epochs < max_epochs:
        keep = max(count // eta, 1)
        plan.append(Rung(count, epochs, keep))
        count, epochs = keep, epochs * eta
    if plan:
        plan[-1] = Rung(plan[-1].candidates, plan[-1].epochs, 1)
    return plan


def promote(
    results: list[RungResult], *, keep: int, direction: Literal["max", "min"]
) -> list[RungResult]:
    """``results`` (one rung's, in bracket order) with the best ``keep`` marked promoted
    and every one's ``why``. A candidate whose fit failed ranks last; ties keep bracket
    order. When every fit failed, the lowest LRs go on (the likeliest to train at all)."""
    sign = -1.0 if direction == "max" else 1.0

    def rank_key(indexed: tuple[int, RungResult]) -> tuple[bool, float, float]:
        index, result = indexed
        if result.value is None:
            return True, result.lr, index
        return False, sign * result.value, index

    order = sorted(enumerate(results), key=rank_key)
    rank_of = {index: place for place, (index, _) in enumerate(order)}
    best = order[0][1]
    marked = []
    for index, result in enumerate(results):
        place = rank_of[index]
        promoted = place < keep
        marked.append(
            result.model_copy(
                update={
                    "promoted": promoted,
                    "why": _why(result, place=place, keep=keep, total=len(results), best=best),
                }
            )
        )
    return marked


def _why(result: RungResult, *, place: int, keep: int, total: int, best: RungResult) -> str:
    """``2nd of 3 after 2 epochs (0.8712; best 0.8790, steepest): stopped``."""
    where = f"{_ordinal(place + 1)} of {total} after {result.epochs} epochs"
    if result.value is None:
        score = "failed"
    elif result is best or place == 0:
        score = f"{result.value:.4f}"
    else:
        assert best.value is not None
        score = f"{result.value:.4f}; best {best.value:.4f}, {best.label}"
    verdict = "went on" if place < keep else "stopped"
    return f"{where} ({score}): {verdict}"


def _ordinal(n: int) -> str:
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(n if n < 20 else n % 10, "th")
    return f"{n}{suffix}"
