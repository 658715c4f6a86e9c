"""`runwatchd demo` as a user runs it: a subprocess, offline, done and cleaned up in under 30 s."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path


def test_demo_runs_the_whole_flow_and_cleans_up(tmp_path: Path) -> None:
    """Exit 0; every still SUCCEEDED with its output, the clip uploaded; temp dirs removed."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNWAYML_", "RUNWATCHD_"))}
    env.update(TMPDIR=str(scratch), HOME=str(tmp_path / "home"), PYTHONDONTWRITEBYTECODE="1")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "runwatchd", "demo"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - started
    out = result.stdout
    assert 0 == result.returncode, result.stderr[-3000:]
    assert elapsed < 30
    assert re.search(r"^emulator: http://127\.0\.0\.1:\d+ ", out, re.M)
    for n in (1, 2, 3):
        assert re.search(rf"^  stills/shot{n}\.png: SUCCEEDED runway://upload/\S+ -> "
                         rf"renders/shot{n}\.png\.mp4$", out, re.M), out
    assert re.search(r"^  audio/voice\.wav: UPLOADED runway://upload/\S+$", out, re.M), out
    assert re.search(r"^done in \d+\.\d s\. One sidecar, in full:$", out, re.M), out
    assert '"status": "SUCCEEDED"' in out
    assert "emulator counted: 4 uploads, 3 tasks" in out
    hot = re.search(r"^hot folder: (\S+)$", out, re.M)
    assert hot is not None
    assert not Path(hot.group(1)).parent.exists()
    assert [] == list(scratch.iterdir())
