"""The long reliability soak: the scenarios of test_reliability.py at full size, several rounds.

Excluded from the default run (pyproject: -m "not soak"). Run it, with its figures printed:

    .venv/bin/pytest -m soak -s tests/test_soak.py

RUNWATCHD_SOAK_FILES (300), RUNWATCHD_SOAK_KILLS (10), RUNWATCHD_SOAK_ROUNDS (3) and
RUNWATCHD_SOAK_SEED (random, printed) change its size. Its last figures are in the README's
Reliability section.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from reliability_scenarios import crash_run, fault_run

pytestmark = [pytest.mark.soak, pytest.mark.timeout(3600)]

FILES = int(os.environ.get("RUNWATCHD_SOAK_FILES", "300"))
KILLS = int(os.environ.get("RUNWATCHD_SOAK_KILLS", "10"))
ROUNDS = int(os.environ.get("RUNWATCHD_SOAK_ROUNDS", "3"))
SEED = int(os.environ.get("RUNWATCHD_SOAK_SEED", str(random.SystemRandom().randrange(100_000))))


def report(name: str, seed: int, figures: dict) -> None:
    print(f"\nsoak {name}, seed {seed}: {json.dumps(figures)}", flush=True)


def test_soak_network_faults(tmp_path: Path) -> None:
    """300 files through 20 % 5xx, 429 bursts, drops, timeouts, bad JSON and expired slots."""
    for n in range(ROUNDS):
        figures = fault_run(tmp_path / f"round{n}", FILES, seed=SEED + n, deadline=600)
        report("network faults", SEED + n, figures)
        assert FILES == figures["files"]


def test_soak_sigkill(tmp_path: Path) -> None:
    """300 files with a generation rule, the daemon SIGKILLed 10 times at random moments."""
    for n in range(ROUNDS):
        figures = crash_run(tmp_path / f"round{n}", FILES, KILLS, seed=SEED + n, deadline=600)
        report("SIGKILL", SEED + n, figures)
        assert 1 >= figures["max_tasks_per_file"]
