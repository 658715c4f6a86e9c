"""Tests for runwatchd.generation.task_sidecar's reading of credits from Runway's replies."""

from __future__ import annotations

from typing import Any

import pytest

from runwatchd.generation.task_sidecar import credits_of


@pytest.mark.parametrize(("reply", "expected"), [
    ({"id": "t", "estimatedCost": {"credits": 25}}, (25, None)),
    ({"status": "SUCCEEDED", "cost": {"credits": 20}}, (None, 20)),
    ({"id": "t", "routing": {"estimatedCost": {"credits": 12}, "model": "gen4.5"}}, (12, None)),
    ({"id": "t", "estimatedCost": {"credits": 3}, "routing": {"estimatedCost": {"credits": 9}}},
     (3, None)),
    ({"id": "t", "routing": {"estimatedCost": {"credits": True}}}, (None, None)),
    ({"id": "t", "routing": {"estimatedCost": {"credits": "12"}}}, (None, None)),
    ({"id": "t", "routing": {"estimatedCost": 12}}, (None, None)),
    ({"id": "t", "routing": ["estimatedCost"]}, (None, None)),
    ({"id": "t", "routing": None}, (None, None)),
    ({"id": "t"}, (None, None)),
])
def test_credits_are_read_at_the_top_or_in_routing(reply: dict[str, Any],
                                                   expected: tuple[int | None, int | None]) -> None:
    """estimatedCost at the top of a reply, else in a model router's `routing` (generate/*);
    anything but a whole number there is no estimate."""
    assert expected == credits_of(reply)
