"""The user's `models` module (nighttune has `nighttune.tasks.tuning.models`)."""

OWNER = "user"


def width(asked):
    return max(4, asked)
