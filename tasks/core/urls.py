"""Endpoint and webhook URLs: what may be one, and how one is shown.

An endpoint URL can carry credentials (``http://key:secret@host``): it is refused
wherever it comes from, and every message shows it through `redact`. A webhook URL
often *is* a secret (the token is its path or query): it is accepted as given and
shown only as scheme and host (`redact_webhook`), or named by reference
(`webhook_reference`) and read where the flow runs, so that it never becomes a flow-run
parameter.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit, urlunsplit


def _split(url: str) -> tuple[SplitResult, str] | None:
    """(the parts, ``host[:port]``) of ``url``; None if it does not parse (a port that
    is not a number included)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    return parts, f"{host}:{port}" if port else host


def _web(parts: SplitResult) -> bool:
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def endpoint_problem(url: str) -> str | None:
    """Why ``url`` cannot be an S3 endpoint, or None. Never repeats a credential."""
    found = _split(url)
    if found is None:
        return "give http(s)://host[:port] (got a URL that does not parse)"
    parts, _ = found
    if not _web(parts):
        return f"give http(s)://host[:port] (got {redact(url)!r})"
    if parts.username or parts.password or parts.query:
        return (
            f"must not carry credentials or a query string (got {redact(url)!r} with them "
            "removed); put keys in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or a profile"
        )
    return None


def redact(url: str | None) -> str | None:
    """An endpoint URL without user:password (and without a query string)."""
    if not url:
        return url
    found = _split(url)
    if found is None:
        return "(an endpoint URL that does not parse)"
    parts, netloc = found
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# A webhook given by reference, read where the flow runs: ``env:NAME`` (a variable of
# that machine's environment) or ``secret:NAME`` (a Prefect Secret block).
REFERENCE_KINDS = ("env", "secret")


def webhook_reference(value: str | None) -> tuple[str, str] | None:
    """(kind, name) of a webhook given as ``env:NAME`` or ``secret:NAME``; None for a
    URL (or nothing)."""
    kind, colon, name = (value or "").partition(":")
    if colon and kind in REFERENCE_KINDS and not name.startswith("//"):
        return kind, name
    return None


def webhook_problem(url: str) -> str | None:
    """Why ``url`` cannot receive notifications (or name where they go), or None. Never
    repeats the URL."""
    if (reference := webhook_reference(url)) is not None:
        kind, name = reference
        wanted = "[A-Za-z_][A-Za-z0-9_]*" if kind == "env" else "[a-z0-9-]+"
        if not re.fullmatch(wanted, name):
            example = "NIGHTTUNE_NOTIFY_URL" if kind == "env" else "night-webhook"
            return f"{kind}:NAME wants a name matching {wanted}, such as {kind}:{example}"
        return None
    found = _split(url)
    if found is None:
        return "give http(s)://host[:port]/path (got a URL that does not parse)"
    if not _web(found[0]):
        return f"give http(s)://host[:port]/path (got one starting {url[:8]!r})"
    return None


def redact_webhook(url: str | None) -> str | None:
    """``https://hooks.example.com/…``: a webhook URL without its path, query or user;
    a reference (``env:NAME``, ``secret:NAME``) as it is: it holds no secret."""
    if not url or webhook_reference(url) is not None:
        return url
    found = _split(url)
    return "(a URL that does not parse)" if found is None else f"{found[0].scheme}://{found[1]}/…"
