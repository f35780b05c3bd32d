"""How long a command took to reach its flow: imports, checks, the temporary server.

`flows.cli` marks when it was imported (the first thing a `nighttune` process does) and
the tune flow takes the time once, as its ``start-up`` timing; a flow run started by a
worker or a second flow in the same process has none (its start-up is not a command's).
"""

from __future__ import annotations

import time

_started: float | None = None


def mark(at: float) -> None:
    """Count start-up from ``at`` (a `time.time()` value) for the next flow."""
    global _started
    _started = at


def take() -> float | None:
    """Seconds since the mark, once; None when there is no mark (left)."""
    global _started
    if _started is None:
        return None
    spent, _started = time.time() - _started, None
    return round(spent, 3)
