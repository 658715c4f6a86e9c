"""Sizes and times as people and programs read them: human sizes in text, ISO-8601 in JSON."""

from __future__ import annotations

from datetime import datetime, timezone

_UNITS = ("KiB", "MiB", "GiB", "TiB")


def human_size(n: float) -> str:
    """512 B, 1.5 KiB, 200.0 MiB, 4.0 GiB (binary units, as `ls -lh` and the progress bar)."""
    if n < 1024:
        return f"{int(n)} B"
    value = float(n)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def iso_time(epoch: object) -> str | None:
    """Epoch seconds as ISO-8601 UTC with milliseconds ("2026-12-02T06:30:00.123Z"); None for
    anything that is not a number."""
    if isinstance(epoch, bool) or not isinstance(epoch, (int, float)):
        return None
    try:
        moment = datetime.fromtimestamp(epoch, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
