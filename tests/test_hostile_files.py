"""Files in the daemon's own names that are not what they claim (issue 13): a FIFO where a
sidecar, a prompt or a rules file should be, and a huge sparse rules file. Nothing blocks,
nothing is read whole, each gets one clear reason."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from daemon_process import Setup
from helpers import drop, wait_for
from helpers import has_sidecar as done

from runwatchd import errors
from runwatchd.generation.prompts import read_prompt
from runwatchd.generation.rules_files import MAX_RULES_BYTES, load_rules_file
from runwatchd.lifecycle import sidecar


def test_a_fifo_named_like_a_sidecar_neither_blocks_the_scan_nor_signals(
        daemon_setup: Setup) -> None:
    """`a.jpg.runway.json` as a FIFO: the catch-up scan goes on (the daemon becomes ready and
    uploads the other file), and SIGTERM still ends it with 0."""
    a = drop(daemon_setup.hot / "a.jpg")
    os.mkfifo(sidecar.sidecar_path(a))
    b = drop(daemon_setup.hot / "b.jpg")
    daemon_setup.write_config()
    daemon = daemon_setup.start()  # waits for "ready:"
    assert wait_for(lambda: done(b), 20), daemon.log()
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert 0 == daemon.proc.wait(20)
    assert time.monotonic() - started < 20
    assert "not a regular file" in daemon.log()


def test_a_fifo_sidecar_reads_as_unusable_at_once(tmp_path: Path) -> None:
    """inspect_sidecar() refuses a FIFO in the sidecar's place without waiting for a writer."""
    media = drop(tmp_path / "a.jpg")
    os.mkfifo(sidecar.sidecar_path(media))
    data, problem = sidecar.inspect_sidecar(media)
    assert (None, True) == (data, "not a regular file" in (problem or ""))


def test_a_fifo_prompt_file_is_no_prompt(tmp_path: Path) -> None:
    """`shot.png.prompt.txt` as a FIFO is not a prompt file: passed over at once, not a hang."""
    media = drop(tmp_path / "shot.png")
    os.mkfifo(tmp_path / "shot.png.prompt.txt")
    assert None is read_prompt(media)


def test_a_huge_prompt_file_is_an_invalid_file(tmp_path: Path) -> None:
    """A sparse 1 GB prompt file: InvalidFile naming it, after reading at most the cap."""
    media = drop(tmp_path / "shot.png")
    with open(tmp_path / "shot.png.prompt.txt", "wb") as f:
        f.truncate(1024**3)
    with pytest.raises(errors.InvalidFile, match="shot.png.prompt.txt: cannot read"):
        read_prompt(media)


def test_a_sparse_three_gigabyte_rules_file_is_refused_unread(tmp_path: Path) -> None:
    """A 3 GB sparse rules file is refused after reading at most the cap (it was read whole)."""
    rules = tmp_path / "runwatchd.rules.toml"
    with open(rules, "wb") as f:
        f.truncate(3 * 1024**3)
    rule, problems, _version = load_rules_file(rules)
    assert (None, [f"cannot read (larger than {MAX_RULES_BYTES} bytes)"]) == (rule, problems)


def test_a_fifo_rules_file_is_refused_without_blocking(tmp_path: Path) -> None:
    """A FIFO named runwatchd.rules.toml: one problem, no hang."""
    rules = tmp_path / "runwatchd.rules.toml"
    os.mkfifo(rules)
    rule, problems, _version = load_rules_file(rules)
    assert (None, ["cannot read (not a regular file)"]) == (rule, problems)
