"""Endpoint and webhook URLs: what may be one, and how one is shown.

An endpoint URL can carry credentials (``http://key:secret@host``): it is refused
wherever it comes from, and every message shows it through `redact`. A webhook URL
often *is* a secret (the token is its path or query): it is accepted as given and
shown only as scheme and host (`redact_webhook`).
"""

from __future__ import annotations

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


def webhook_problem(url: str) -> str | None:
    """Why ``url`` cannot receive notifications, or None. Never repeats the URL."""
    found = _split(url)
    if found is None:
        return "give http(s)://host[:port]/path (got a URL that does not parse)"
    if not _web(found[0]):
        return f"give http(s)://host[:port]/path (got one starting {url[:8]!r})"
    return None


def redact_webhook(url: str | None) -> str | None:
    """``https://hooks.example.com/…``: a webhook URL without its path, query or user."""
    if not url:
        return url
    found = _split(url)
    return "(a URL that does not parse)" if found is None else f"{found[0].scheme}://{found[1]}/…"
