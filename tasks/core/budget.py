"""A night's time: ``time_budget`` and ``deadline`` as one end time, and what fits before it.

Pure arithmetic on wall-clock seconds (``time.time()``), so that a run's end means the
same on every machine that reads it. `RunClock` is the end and the time kept for the
export; `trial_fits` decides whether a batch size is worth starting. The flow does
the rest (`flows/tune.py`): it starts batch sizes while they fit, and each trial stops
at the epoch boundary where the next epoch would not end in time
(`tasks.tuning.training`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from nighttune.tasks.core.records import TrialResult, rows_without_result

DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$")
DEADLINE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
EXPORT_RESERVE_S = 30.0  # kept for the export when no earlier run says how long it takes
MIN_EXPORT_RESERVE_S = 10.0


def parse_duration(value: object) -> float:
    """Seconds from ``5400``, ``"5400"``, ``"90m"``, ``"2h"``, ``"1h30m"`` or ``"45s"``."""
    if isinstance(value, bool):
        raise ValueError("give seconds or a duration like 90m, 2h, 1h30m")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        found = DURATION.match(text) if text else None
        if found is None or not any(found.groups()):
            raise ValueError("give seconds or a duration like 90m, 2h, 1h30m")
        hours, minutes, seconds_part = (float(g) if g else 0.0 for g in found.groups())
        seconds = hours * 3600 + minutes * 60 + seconds_part
    if not seconds > 0:
        raise ValueError("must be more than 0 seconds")
    return seconds


def check_deadline(value: str) -> str:
    """``HH:MM`` (24-hour clock), as given."""
    if not DEADLINE.match(value):
        raise ValueError("give a time of day as HH:MM, e.g. 06:30")
    return value


def next_deadline(deadline: str, timezone: str, now: datetime) -> datetime:
    """The first ``HH:MM`` in ``timezone`` after ``now`` (an aware datetime): today's if it
    is still ahead, else tomorrow's."""
    hour, minute = (int(part) for part in deadline.split(":"))
    local = now.astimezone(ZoneInfo(timezone))
    at = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return at if at > local else at + timedelta(days=1)


@dataclass(frozen=True)
class RunClock:
    """When a run must be done (wall-clock seconds) and how much of that the export keeps."""

    ends_at: float
    export_reserve: float

    @property
    def stop_at(self) -> float:
        """When training must have stopped for the export to end by ``ends_at``."""
        return self.ends_at - self.export_reserve

    def left(self, now: float) -> float:
        """Seconds of training time left at ``now``."""
        return self.stop_at - now


def run_clock(
    started: float,
    time_budget: float | None,
    deadline: str | None,
    *,
    timezone: str,
    export_s: float | None = None,
) -> RunClock | None:
    """The clock of a run started at ``started`` (``time.time()``): the earlier of the
    budget's end and the deadline (in ``timezone``); None when neither is set. The export
    keeps twice what earlier exports took (``export_s``), at least `MIN_EXPORT_RESERVE_S`,
    at most a quarter of the time there is."""
    ends = []
    if time_budget is not None:
        ends.append(started + time_budget)
    if deadline is not None:
        now = datetime.fromtimestamp(started).astimezone()
        ends.append(next_deadline(deadline, timezone, now).timestamp())
    if not ends:
        return None
    ends_at = min(ends)
    reserve = 2 * export_s if export_s is not None else EXPORT_RESERVE_S
    reserve = min(max(reserve, MIN_EXPORT_RESERVE_S), (ends_at - started) / 4)
    return RunClock(ends_at=ends_at, export_reserve=reserve)


def trial_fits(left_s: float, epoch_s: float | None, patience: int) -> bool:
    """Whether a trial is worth starting with ``left_s`` seconds: room for the smallest
    patience to stop (``patience + 1`` epochs) at ``epoch_s`` an epoch, when known."""
    if left_s <= 0:
        return False
    return epoch_s is None or left_s >= (patience + 1) * epoch_s


def planned_epochs(
    left_s: float, epoch_s: float | None, *, max_epochs: int, trials_left: int
) -> int:
    """How many epochs a trial's schedule is planned for, so that it anneals before the
    time budget ends: an equal share of the seconds left for each trial still to run
    (this one included), at ``epoch_s`` an epoch (earlier runs' figure), at most
    ``max_epochs``, at least one. ``max_epochs`` when no earlier run timed an epoch: the
    fit is then stopped at an epoch boundary (`TimeBudgetCut`), annealed or not.

    An annealed schedule cut in the middle has not annealed: a one-cycle fit stopped at
    its peak trains at its highest rate when it stops."""
    if epoch_s is None or epoch_s <= 0:
        return max_epochs
    share = max(left_s, 0.0) / max(trials_left, 1)
    return max(1, min(max_epochs, int(share // epoch_s)))


def planned_order(batch_sizes: tuple[int, ...], epoch_s: dict[int, float]) -> list[int]:
    """Batch sizes cheapest epoch first where earlier runs timed them (more cells finish
    in a short night), the rest after them in the config's order."""
    known = sorted((b for b in batch_sizes if b in epoch_s), key=lambda b: (epoch_s[b], b))
    return known + [b for b in batch_sizes if b not in epoch_s]


def not_run_rows(patiences: tuple[int, ...], batch_size: int, why: str) -> list[TrialResult]:
    """The rows of a batch size the time budget left out: one per patience."""
    return rows_without_result(patiences, batch_size, status="not run", error=f"time budget: {why}")
