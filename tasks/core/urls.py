"""Endpoint and webhook URLs: what may be one, and how one is shown.

An endpoint URL can carry credentials (``http://key:secret@host``): it is refused
wherever it comes from, and every message shows it through `redact`. A webhook URL
often *is* a secret (the token is its path or query): it is accepted as given and
shown only as scheme and host (`redact_webhook`).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def endpoint_problem(url: str) -> str | None:
    """Why ``url`` cannot be an S3 endpoint, or None. Never repeats a credential."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "give http(s)://host[:port] (got a URL that does not parse)"
    if parts.scheme not in ("http", "https") or not parts.hostname:
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
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(an endpoint URL that does not parse)"
    host = parts.hostname or ""
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def webhook_problem(url: str) -> str | None:
    """Why ``url`` cannot receive notifications, or None. Never repeats the URL."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "give http(s)://host[:port]/path (got a URL that does not parse)"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"give http(s)://host[:port]/path (got one starting {url[:8]!r})"
    return None


def redact_webhook(url: str | None) -> str | None:
    """``https://hooks.example.com/…``: a webhook URL without its path, query or user."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(a URL that does not parse)"
    netloc = f"{parts.hostname}:{port}" if port else (parts.hostname or "")
    return f"{parts.scheme}://{netloc}/…"
