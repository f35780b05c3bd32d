"""`nighttune` with its expensive work counted, for the resume tests.

``python -m tests.support.counting_cli ARGS`` runs the real CLI. Each LR sweep and each trial
fit that starts appends one line (``sweep b32``, ``trial b64``) to the file named by
``NIGHTTUNE_WORK_LOG``, written and flushed before the work begins, so a process
killed in the middle still leaves its line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import nighttune.tasks.tuning.lr_range
import nighttune.tasks.tuning.training
from nighttune.flows.cli import main


def counted(kind: str, work: Callable[..., Any]) -> Callable[..., Any]:
    # The first three positional only: the work's keyword-only options (a sweep's ``spec``)
    # pass through ``kwargs`` whatever their names.
    def wrapper(cached: Any, subject: Any, batch_size: int, /, *args: Any, **kwargs: Any) -> Any:
        with open(os.environ["NIGHTTUNE_WORK_LOG"], "a", encoding="utf-8") as log:
            log.write(f"{kind} b{batch_size}\n")
        return work(cached, subject, batch_size, *args, **kwargs)

    return wrapper


nighttune.tasks.tuning.lr_range.lr_range_test = counted(
    "sweep", nighttune.tasks.tuning.lr_range.lr_range_test
)
nighttune.tasks.tuning.training._fit_and_evaluate = counted(
    "trial", nighttune.tasks.tuning.training._fit_and_evaluate
)

if __name__ == "__main__":
    sys.exit(main())
