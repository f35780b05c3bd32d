"""Telling someone when a night goes wrong: one JSON POST to the webhook.

The webhook's URL usually holds its token, so it is best named by reference and read
on the machine that runs the flow: ``notify_url: env:NAME`` (a variable there),
``notify_url: secret:NAME`` (a Prefect Secret block), or no ``notify_url`` and
$NIGHTTUNE_NOTIFY_URL (`webhook_url`). A plain URL still works; the command line moves
it out of the flow-run parameters (`by_reference`), and a flow run that receives one
says that Prefect now holds it (`warn_if_plain`).

A night is worth a message when it fails, when the champion gate keeps the model in
service (``--promote gate`` only: ``never`` is a choice, not news), when its time
budget left cells of the grid out, or when its score falls outside the band of the
nights before it (`outside_band`). The body is plain JSON
with a ``text`` line, so Slack, Mattermost and Teams-style incoming webhooks show it as
it is. It carries no URL with credentials, no environment, no config beyond the
dataset and model names. Posting is retried on I/O errors and 5xx/429 answers, and
never fails the run.
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

from nighttune.tasks.core.config import TuneConfig
from nighttune.tasks.core.errors import UserError, first_line
from nighttune.tasks.core.logs import get_logger
from nighttune.tasks.core.records import TuneResult
from nighttune.tasks.core.settings import environment
from nighttune.tasks.core.urls import redact_webhook, webhook_problem, webhook_reference
from nighttune.tasks.storage.target import Target

NOTIFY_URL_ENV = "NIGHTTUNE_NOTIFY_URL"  # the webhook, where no notify_url is given
ATTEMPTS = 3
BACKOFF_S = (1.0, 3.0)  # between attempts
TIMEOUT_S = 10.0
BAND_MIN_NIGHTS = 5  # fewer earlier nights: no band
BAND_NIGHTS = 14  # the trailing nights the band is taken over
BAND_MADS = 3.0


def outside_band(
    value: float | None, earlier: Sequence[float], direction: str
) -> dict[str, Any] | None:
    """The band ``value`` fell out of, or None: more than ``BAND_MADS`` median absolute
    deviations worse than the median of the last ``BAND_NIGHTS`` earlier nights (given
    oldest first; at least ``BAND_MIN_NIGHTS``), in the metric's ``direction``."""
    recent = [v for v in earlier if v is not None][-BAND_NIGHTS:]
    if value is None or len(recent) < BAND_MIN_NIGHTS:
        return None
    median = statistics.median(recent)
    mad = statistics.median(abs(v - median) for v in recent)
    worse = median - value if direction == "max" else value - median
    if worse <= BAND_MADS * mad or worse <= 0:
        return None
    bound = median - BAND_MADS * mad if direction == "max" else median + BAND_MADS * mad
    return {"median": median, "mad": mad, "nights": len(recent), "bound": bound}


def night_events(result: TuneResult, band: dict[str, Any] | None) -> list[str]:
    """What about a finished night is worth telling: "not promoted", "cut by its time
    budget", "regression"."""
    events = []
    promotion = result.export.promotion
    if promotion is not None and promotion.policy == "gate" and not promotion.promoted:
        events.append("not promoted")
    if any(row.status == "not run" for row in result.rows):
        events.append("cut by its time budget")
    if band is not None:
        events.append("regression")
    return events


def finished_message(
    result: TuneResult, events: list[str], *, band: dict[str, Any] | None, context: dict[str, Any]
) -> dict[str, Any]:
    """The body for a night that finished with ``events``."""
    winner = result.winner
    promotion = result.export.promotion
    metric = promotion.metric if promotion else f"test_{result.monitor.removeprefix('val_')}"
    value = winner.value(metric)
    shown = "n/a" if value is None else f"{value:.4f}"
    text = f"nighttune {result.run_id}: {', '.join(events)}; {metric} {shown}"
    if promotion is not None:
        text += f"; {promotion.text()}"
    if band is not None:
        text += (
            f"; below the band of the last {band['nights']} nights "
            f"(median {band['median']:.4f}, bound {band['bound']:.4f})"
        )
    return {
        "text": text,
        "source": "nighttune",
        "status": "completed",
        "events": events,
        "run_id": result.run_id,
        "winner": {"batch_size": winner.batch_size, "patience": winner.patience, "lr": winner.lr},
        "metric": {"name": metric, "value": value},
        "promotion": promotion.model_dump() if promotion else None,
        "band": band,
        "report": f"{result.export.uri.rstrip('/')}/report.html",
        **context,
    }


def failed_message(run_id: str | None, error: BaseException, context: dict[str, Any]) -> dict:
    """The body for a night that did not finish."""
    what = f"{type(error).__name__}: {first_line(error)}"[:500]
    return {
        "text": f"nighttune {run_id or 'run'}: failed; {what}",
        "source": "nighttune",
        "status": "failed",
        "events": ["failed"],
        "run_id": run_id,
        "error": what,
        **context,
    }


def post(url: str, body: dict[str, Any]) -> bool:
    """POST ``body`` as JSON to ``url``; retried; False (logged) when it never arrived."""
    log = get_logger()
    data = json.dumps(body, default=str).encode()
    shown = redact_webhook(url)
    problem = ""
    for attempt in range(ATTEMPTS):
        request = urllib.request.Request(
            url, data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
                answer.read(1024)
            log.info("notified %s: %s", shown, body.get("text", ""))
            return True
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code}"
            if exc.code < 500 and exc.code != 429:
                break  # the hook refuses this message: asking again will not help
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            problem = str(reason)[:200]
        if attempt < ATTEMPTS - 1:
            time.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
    log.warning("notification to %s not delivered (%s); the run goes on", shown, problem)
    return False


def by_reference(config: TuneConfig, environ: MutableMapping[str, str]) -> TuneConfig:
    """``config`` with a plain ``notify_url`` moved into ``environ`` (this process's
    environment, which the flow run that the command starts reads) and named there by
    reference, ``env:NIGHTTUNE_NOTIFY_URL``: the token never becomes a flow-run parameter,
    so Prefect's database and UI, the manifest and the report never hold it. A
    reference or no URL is left as it is."""
    url = config.notify_url
    if not url or webhook_reference(url) is not None:
        return config
    environ[NOTIFY_URL_ENV] = url
    return config.model_copy(update={"notify_url": f"env:{NOTIFY_URL_ENV}"})


def warn_if_plain(config: TuneConfig) -> None:
    """A plain webhook URL that reached the flow as a parameter is stored in Prefect's
    database and shown in its UI (its token too): say so, and how to avoid it."""
    if config.notify_url and webhook_reference(config.notify_url) is None:
        get_logger().warning(
            "notify_url %s is a plain URL in this flow run's parameters: Prefect's database "
            "and UI hold its token. Give notify_url env:NAME (a variable on the worker) or "
            "secret:BLOCK (a Prefect Secret block), or set %s on the worker instead",
            redact_webhook(config.notify_url),
            NOTIFY_URL_ENV,
        )


def webhook_url(
    notify_url: str | None,
    environ: Mapping[str, str] | None = None,
    *,
    read_secret: Callable[[str], str] | None = None,
) -> str | None:
    """Where notifications go: ``notify_url`` itself, the variable an ``env:NAME`` names,
    the Secret block a ``secret:NAME`` names (through ``read_secret``, which raises
    LookupError), or without a ``notify_url`` $NIGHTTUNE_NOTIFY_URL; None when there is
    none to use (a warning says why when one was named). Read on the machine that runs
    the flow, when a message is sent."""
    environ = environment() if environ is None else environ
    reference = webhook_reference(notify_url)
    if notify_url and reference is None:
        return notify_url  # a URL, checked with the config
    kind, name = reference or ("env", NOTIFY_URL_ENV)
    if kind == "env":
        value, why = environ.get(name, "").strip(), f"{name} is not set on this machine"
    else:
        value, why = _secret(name, read_secret)
    if value and (problem := _url_problem(value)):
        value, why = "", f"its value is no webhook URL ({problem})"
    if not value and (reference is not None or why.startswith("its value")):
        get_logger().warning("notify_url %s: %s; no notification", notify_url or name, why)
    return value or None


def _secret(name: str, read_secret: Callable[[str], str] | None) -> tuple[str, str]:
    """(the Secret block's value, "") or ("", why there is none)."""
    if read_secret is None:
        return "", "a Secret block is read only inside a flow run"
    try:
        return read_secret(name).strip(), f"Secret block {name!r} is empty"
    except LookupError as exc:
        return "", str(exc)


def _url_problem(value: str) -> str | None:
    if webhook_reference(value) is not None:
        return "a reference, not a URL"
    return webhook_problem(value)


def notify_finished(
    config: TuneConfig,
    result: TuneResult,
    context: dict[str, Any],
    *,
    target: Target,
    read_secret: Callable[[str], str] | None = None,
) -> list[str]:
    """Post about a finished night if it is worth telling (see `night_events`); the
    events found, posted or not (the band is read from ``target``'s earlier runs, and
    only with a webhook: see `webhook_url`)."""
    url = webhook_url(config.notify_url, read_secret=read_secret)
    if not url:
        return []
    band = None
    promotion = result.export.promotion
    if promotion is not None:
        from nighttune.tasks.runs.history import earlier_scores

        try:
            earlier = earlier_scores(target, run_id=result.run_id, metric=promotion.metric)
        except UserError as exc:  # the history cannot be read: no band tonight
            get_logger().warning("notify: no night-over-night band (%s)", exc)
            earlier = []
        band = outside_band(promotion.score, earlier, promotion.direction)
    events = night_events(result, band)
    if events:
        post(url, finished_message(result, events, band=band, context=context))
    return events


def notify_failed(
    config: TuneConfig,
    run_id: str | None,
    error: BaseException,
    *,
    context: dict[str, Any],
    read_secret: Callable[[str], str] | None = None,
) -> None:
    """Post that the night failed (when there is a webhook: see `webhook_url`)."""
    if url := webhook_url(config.notify_url, read_secret=read_secret):
        post(url, failed_message(run_id, error, context))


def context_of(config: TuneConfig) -> dict[str, Any]:
    """What a message says about the run's setup: names, not settings."""
    return {
        "dataset": config.dataset.label,
        "model": config.model.label,
        "export_to": config.export_to,
    }
