"""Notifications: the night-over-night band, and posting with retries to a real local
HTTP receiver."""

from __future__ import annotations

import pytest

from nighttune.tasks.runs import notify
from nighttune.tasks.runs.notify import outside_band, post
from tests.support.webhook import Webhook


def test_the_band_needs_enough_earlier_nights():
    assert outside_band(0.1, [0.9] * 4, "max") is None  # four nights: no band yet
    assert outside_band(0.1, [0.9] * 5, "max") is not None


def test_the_band_is_three_mads_below_the_median_in_the_metrics_direction():
    nights = [0.90, 0.91, 0.89, 0.92, 0.90, 0.88]  # median 0.90, MAD 0.01
    assert outside_band(0.875, nights, "max") is None  # within 3 MADs
    band = outside_band(0.86, nights, "max")
    assert band == pytest.approx({"median": 0.90, "mad": 0.01, "nights": 6, "bound": 0.87})
    assert outside_band(0.99, nights, "max") is None  # better is never a regression
    losses = [0.30, 0.31, 0.29, 0.30, 0.32]
    assert outside_band(0.40, losses, "min") is not None  # a loss: higher is worse
    assert outside_band(0.20, losses, "min") is None


def test_the_band_covers_the_last_fourteen_nights():
    old_then_new = [0.5] * 20 + [0.9] * 14
    assert outside_band(0.6, old_then_new, "max") is not None


def test_post_retries_server_errors_and_delivers(monkeypatch):
    monkeypatch.setattr(notify, "BACKOFF_S", (0.01, 0.01))
    with Webhook(fail_first=2) as hook:
        assert post(hook.url, {"text": "hello"})
        assert hook.attempts == 3 and hook.bodies == [{"text": "hello"}]


def test_post_gives_up_quietly(monkeypatch, caplog):
    monkeypatch.setattr(notify, "BACKOFF_S", (0.01, 0.01))
    with Webhook(fail_first=5, status=404) as hook:
        assert not post(hook.url, {"text": "hello"})
        assert hook.attempts == 1  # a 4xx is not retried
    assert "not delivered (HTTP 404)" in caplog.text
    assert "secret-token" not in caplog.text  # the URL is shown as scheme and host only
    with Webhook() as hook:
        closed = hook.url
    assert not post(closed, {"text": "hello"})  # nobody listening: retried, then False
