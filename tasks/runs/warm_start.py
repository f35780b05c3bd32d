"""Nights that learn: tonight's grid starts from what earlier nights of the same setup found.

A nightly run sees the same model on the same kind of data night after night, and each
night's manifest says which batch sizes a paired test told from the best and which
multiple of the range test's suggestion won. Tonight reads the earlier nights under its
export target (nothing else is kept) and, like Syne Tune's bounding box or SageMaker's
warm start but for a scheduled run:

* leaves out a batch size that lost clearly on each of its last `LOST_NIGHTS` nights
  (every cell of it below the best with a paired test's p < alpha, the selection's
  McNemar test or bootstrap), and runs it again once it has been out `REVISIT_AFTER`
  nights running, so that a change in the data can bring it back;
* centres the LR bracket on the recent winners' multiple of the suggestion (the median
  of the last `LOST_NIGHTS` winners, in log scale), unless the config sets
  ``lr_bracket.center``; and when the last `LOST_NIGHTS` brackets all crowned the same
  multiple, trains that multiple alone (width 1), with the whole bracket again every
  `REVISIT_AFTER` nights.

"The same setup" is a fingerprint of the dataset's source and shape (not its content:
a nightly dataset gains rows every night, and its content hash would start every night
wide), the model (a builder's name and the sha256 of its module), the monitor, the
suggestion rule and the schedule (a multiple means nothing under another). A night
whose training split was more than `SIZE_RATIO` times larger or smaller is not read
either: which batch size pays depends on how many steps an epoch has.

`plan` decides from `Night` records (pure); `read_nights` reads them from a target.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nighttune.tasks.core.errors import UserError
from nighttune.tasks.core.logs import get_logger
from nighttune.tasks.core.records import WarmStart, plural
from nighttune.tasks.runs.history import read_manifests
from nighttune.tasks.runs.manifest import Manifest
from nighttune.tasks.storage.store import fingerprint
from nighttune.tasks.storage.target import Target
from nighttune.tasks.tuning.hurdle import stopped_by_hurdle

LOST_NIGHTS = 3  # a batch size that lost clearly this many of its nights running is left out
REVISIT_AFTER = 4  # ... and runs again after this many nights out
SIZE_RATIO = 2.0  # nights whose training split differs more than this are not comparable
NIGHTS_READ = 30  # the most recent comparable nights read


@dataclass(frozen=True)
class Night:
    """One earlier night, as its manifest tells it."""

    run_id: str
    setup: str
    train_examples: int
    ran: frozenset[int]  # batch sizes with a finished trial
    lost: frozenset[int]  # of those, the ones every cell of which a paired test told from the best
    winner_factor: float  # the winner's LR as a multiple of the suggestion
    bracket: bool  # whether a bracket's rungs ran


def setup_fingerprint(
    *,
    source: str,
    input_shape: Sequence[int],
    class_names: Sequence[str],
    model: dict[str, Any],
    trial_shape: dict[str, Any],
) -> str:
    """The setup whose nights are comparable: the dataset's source and shape, the model
    (`tasks.tuning.models.model_key`) and what a winning multiple is relative to
    (``trial_shape``: monitor, suggestion rule, schedule)."""
    key = {
        "source": source,
        "input_shape": list(input_shape),
        "class_names": list(class_names),
        "model": model,
        "trial": trial_shape,
    }
    return fingerprint(key)[:16]


def plan(
    nights: Sequence[Night],
    *,
    setup: str,
    train_examples: int,
    batch_sizes: Sequence[int],
    width: int,
    center: float | None,
) -> WarmStart:
    """Tonight's carry-over from ``nights`` (oldest first): the batch sizes left out, the
    bracket's centre and width (``width`` / ``center``: the config's)."""
    comparable = [n for n in nights if n.setup == setup and _similar(n, train_examples)]
    comparable = comparable[-NIGHTS_READ:]
    warm = WarmStart(
        setup=setup, train_examples=train_examples, nights=[n.run_id for n in comparable]
    )
    if not comparable:
        return warm
    left_out, back = _batch_sizes(comparable, batch_sizes)
    if len(left_out) == len(batch_sizes):  # cannot happen with the grid's winners in it
        left_out = {}
    update: dict[str, Any] = {"left_out": left_out, "back": back}
    if center is None:
        update |= _bracket(comparable, width=width)
    return warm.model_copy(update=update)


def _similar(night: Night, train_examples: int) -> bool:
    small, large = sorted((max(night.train_examples, 1), max(train_examples, 1)))
    return large <= SIZE_RATIO * small


def _batch_sizes(
    nights: Sequence[Night], batch_sizes: Sequence[int]
) -> tuple[dict[int, str], dict[int, str]]:
    """Batch sizes left out tonight, and those back after their time out, with why."""
    left_out: dict[int, str] = {}
    back: dict[int, str] = {}
    for b in batch_sizes:
        ran = [n for n in nights if b in n.ran]
        recent = ran[-LOST_NIGHTS:]
        if len(recent) < LOST_NIGHTS or not all(b in n.lost for n in recent):
            continue
        out = _nights_since(nights, recent[-1])
        if out >= REVISIT_AFTER:
            back[b] = (
                f"out {plural(out, 'night')} after losing {LOST_NIGHTS} running: checked again"
            )
        else:
            left_out[b] = (
                f"lost clearly on each of its last {LOST_NIGHTS} nights "
                f"({', '.join(n.run_id for n in recent)}: every cell below the best, "
                f"paired test); back after {REVISIT_AFTER} nights out"
            )
    return left_out, back


def _bracket(nights: Sequence[Night], *, width: int) -> dict[str, Any]:
    """When the last brackets agreed, their multiple alone (width 1; every
    `REVISIT_AFTER` nights the whole bracket again); else the bracket centred on the
    recent winners' median multiple."""
    with_rungs = [n for n in nights if n.bracket][-LOST_NIGHTS:]
    agreed = len(with_rungs) == LOST_NIGHTS and all(
        math.isclose(n.winner_factor, with_rungs[0].winner_factor) for n in with_rungs
    )
    if width > 1 and agreed and _nights_since(nights, with_rungs[-1]) < REVISIT_AFTER:
        factor = with_rungs[0].winner_factor
        return {
            "lr_center": None if math.isclose(factor, 1.0) else factor,
            "width": 1,
            "bracket_why": (
                f"LR bracket narrowed to {factor:.3g} x the suggestion alone: the last "
                f"{LOST_NIGHTS} brackets all crowned it; the whole bracket runs again "
                f"after {REVISIT_AFTER} nights"
            ),
        }
    recent = nights[-LOST_NIGHTS:]
    logs = sorted(math.log(n.winner_factor) for n in recent if n.winner_factor > 0)
    center = math.exp(statistics.median(logs)) if logs else 1.0
    if math.isclose(center, 1.0):
        return {}
    return {
        "lr_center": center,
        "bracket_why": (
            f"LR bracket centred on {center:.3g} x the suggestion: the median multiple of "
            f"the last {plural(len(recent), 'winner')}"
        ),
    }


def _nights_since(nights: Sequence[Night], night: Night) -> int:
    """How many of ``nights`` came after ``night``."""
    return len(nights) - 1 - list(nights).index(night)


# --------------------------------------------------------------------------- reading


def night_of(manifest: Manifest) -> Night | None:
    """The `Night` a manifest tells (its winner, and the extra keys ``warm_start``,
    ``trials``, ``selection``, ``lr_sweeps``); None for a run exported before nights
    were read, or one whose record is not what an export writes."""
    extra = manifest.model_extra or {}
    warm = extra.get("warm_start")
    if not isinstance(warm, dict):
        return None
    setup, examples = warm.get("setup"), warm.get("train_examples")
    rows = extra.get("trials")
    if not (isinstance(setup, str) and isinstance(examples, int) and isinstance(rows, list)):
        return None
    cells: dict[int, list[str]] = {}
    behind: set[str] = set()  # cells the hurdle stopped (tasks.tuning.hurdle): they lost
    for row in rows:
        if not isinstance(row, dict):
            continue
        b, p = row.get("batch_size"), row.get("patience")
        stopped = row.get("status") == "not run" and stopped_by_hurdle(str(row.get("error")))
        if isinstance(b, int) and isinstance(p, int) and (row.get("status") == "ok" or stopped):
            cells.setdefault(b, []).append(f"b{b} p{p}")
            if stopped:
                behind.add(f"b{b} p{p}")
    factor = manifest.winner.get("lr_factor", 1.0)
    sweeps = extra.get("lr_sweeps")
    return Night(
        run_id=manifest.run_id,
        setup=setup,
        train_examples=examples,
        ran=frozenset(cells),
        lost=_lost(cells, extra.get("selection"), behind=behind),
        winner_factor=float(factor) if isinstance(factor, int | float) else 1.0,
        bracket=isinstance(sweeps, dict)
        and any(isinstance(s, dict) and s.get("rungs") for s in sweeps.values()),
    )


def _lost(cells: dict[int, list[str]], selection: Any, *, behind: set[str]) -> frozenset[int]:
    """Batch sizes every cell of which the hurdle stopped (``behind``) or the
    selection's paired test told from the best."""
    told: set[str] = set()  # cells the paired test told from the best
    if isinstance(selection, dict) and selection.get("test"):
        p_vs_best, alpha = selection.get("p_vs_best"), selection.get("alpha")
        if isinstance(p_vs_best, dict) and isinstance(alpha, int | float):
            told = {c for c, p in p_vs_best.items() if isinstance(p, int | float) and p < alpha}

    def below(cell: str) -> bool:
        return cell in behind or cell in told

    return frozenset(b for b, names in cells.items() if all(below(c) for c in names))


def read_nights(target: Target) -> list[Night]:
    """The nights under ``target`` that say what they found, oldest first; none when
    the target cannot be read yet (a first night, a bucket not made)."""
    try:
        found = sorted(read_manifests(target), key=lambda m: m.run_id)
    except UserError:
        return []
    nights = [night_of(m) for m in found]
    return [n for n in nights if n is not None]


def warm_start(
    target: Target,
    *,
    enabled: bool,
    setup: str,
    train_examples: int,
    batch_sizes: Sequence[int],
    width: int,
    center: float | None,
) -> WarmStart:
    """Tonight's `plan` from the nights under ``target`` (``enabled`` False: nothing
    carried, the setup still recorded for later nights), said on the screen."""
    if enabled:
        warm = plan(
            read_nights(target),
            setup=setup,
            train_examples=train_examples,
            batch_sizes=batch_sizes,
            width=width,
            center=center,
        )
    else:
        warm = WarmStart(setup=setup, train_examples=train_examples, enabled=False)
    log = get_logger()
    for line in warm.lines():
        log.info("warm start: %s", line)
    return warm
