"""Tests for runwatchd.runway.http_errors: Retry-After parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runwatchd.runway.http_errors import parse_retry_after


@pytest.mark.parametrize(("value", "seconds"), [
    ("5", 5.0), (" 2.5 ", 2.5), ("-3", 0.0), ("99999", 300.0), ("", None), (None, None),
    ("soon", None), ("nan", None), ("Tue, 24 Nov 2026 10:00:30 GMT", 30.0),
    ("Tue, 24 Nov 2026 09:00:00 GMT", 0.0),
])
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    """Seconds or an HTTP date, never negative, capped at RETRY_AFTER_CAP; junk gives None."""
    assert seconds == parse_retry_after(value, now=datetime(2026, 11, 24, 10, 0, tzinfo=UTC))
