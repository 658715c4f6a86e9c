"""The long reliability soak: the scenarios of test_reliability.py at full size.

Excluded from the default run (pyproject: -m "not soak"). Run it, with its figures printed:

    .venv/bin/pytest -m soak -s tests/test_soak.py

Its last figures are in the README's Reliability section.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from test_reliability import crash_run, fault_run

pytestmark = [pytest.mark.soak, pytest.mark.timeout(1800)]

FILES = int(os.environ.get("RUNWATCHD_SOAK_FILES", "300"))
KILLS = int(os.environ.get("RUNWATCHD_SOAK_KILLS", "10"))
SEED = int(os.environ.get("RUNWATCHD_SOAK_SEED", str(int(time.time()) % 100_000)))


def report(name: str, figures: dict) -> None:
    print(f"\nsoak {name} (seed {SEED}): {json.dumps(figures, indent=2)}", flush=True)


def test_soak_network_faults(tmp_path: Path) -> None:
    """300 files through 20 % 5xx, 429 bursts, drops, timeouts, bad JSON and expired slots."""
    figures = fault_run(tmp_path, FILES, seed=SEED, deadline=600)
    report("network faults", figures)
    assert FILES == figures["files"]


def test_soak_sigkill(tmp_path: Path) -> None:
    """300 files with a generation rule, the daemon SIGKILLed 10 times at random moments."""
    figures = crash_run(tmp_path, FILES, KILLS, seed=SEED, deadline=600)
    report("SIGKILL", figures)
    assert 1 >= figures["max_tasks_per_file"]
