"""`runwatchd --version` and `--help` load no HTTP client, watcher, metrics or config code.

benchmarks/case6_cli_startup.py measures the time; this proves the cause, which does not depend
on how busy the machine is.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("httpx", "watchdog", "prometheus_client", "tomli_w", "tenacity", "runwatchd.config",
         "runwatchd.runway", "runwatchd.daemon", "runwatchd.store")
PROBE = """
import json, sys
from runwatchd.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.startswith(tuple(HEAVY)))), file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["upload", "--help"],
                                  ["completion", "bash"], ["man"]])
def test_fast_paths_import_nothing_heavy(argv: list[str]) -> None:
    """Neither --version, --help, a command's --help, completion nor man imports httpx,
    watchdog, prometheus_client, tomli_w or runwatchd's config and daemon code."""
    code = f"HEAVY = {HEAVY!r}\n{PROBE}"
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          check=True)
    assert [] == json.loads(proc.stderr.splitlines()[-1])
