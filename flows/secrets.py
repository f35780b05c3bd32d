"""Secrets a flow reads where it runs, from Prefect (the tasks do not import Prefect)."""

from __future__ import annotations


def secret_block(name: str) -> str:
    """The value of the Prefect Secret block ``name``; LookupError (one line) when it
    cannot be read: no such block, or the server refuses."""
    from prefect.blocks.system import Secret

    from nighttune.tasks.core.errors import first_line

    try:
        block = Secret.load(name)  # called from sync code: the block, not a coroutine
        value = block.get()  # type: ignore[union-attr]
    except Exception as exc:  # noqa: BLE001 - said as the reason; a notification never fails a run
        why = f"Secret block {name!r} could not be read ({first_line(exc)[:200]})"
        raise LookupError(why) from None
    return str(value)
