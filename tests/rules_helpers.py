"""Small helpers for the tests of runwatchd.generation.rules: a rule, a media file, problems."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runwatchd.generation import rules
from runwatchd.generation.rules import Rule

URI = "runway://upload/abc"


def rule(endpoint: str = "image_to_video", **request: Any) -> Rule:
    """A valid rule for `endpoint` with `request`."""
    table: dict[str, Any] = {"endpoint": endpoint, "request": request}
    parsed, problems = rules.parse_rule(table, "test", "rule")
    assert [] == problems
    assert parsed is not None
    return parsed


def media(tmp_path: Path, name: str) -> Path:
    """A 600-byte file named `name` under tmp_path."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * 600)
    return path


def problems(table: dict[str, Any]) -> list[str]:
    """Every problem parse_rule finds in `table` (and no rule when there are some)."""
    parsed, found = rules.parse_rule(table, "test", "rule")
    assert (parsed is None) == bool(found)
    return found
