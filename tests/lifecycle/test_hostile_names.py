"""File names the processor must survive without a traceback (issue 13 item 7): names that are
not UTF-8 (stored in the journal and read back as the same path), and names so long that
`<name>.runway.json` would exceed NAME_MAX (reported once as invalid, never uploaded)."""

from __future__ import annotations

import logging
import os
from typing import Any

from pipeline_helpers import Rig, task_part

from runwatchd.lifecycle import sidecar
from runwatchd.lifecycle.states import Outcome


def test_a_name_that_is_not_utf8_is_uploaded_with_its_sidecar(rig: Rig) -> None:
    """b'caf\\xe9.png' (Latin-1): uploaded once, sidecar written, its row read back by path."""
    name = os.fsdecode(b"caf\xe9.png")
    shot = rig.still(name)
    assert os.fsencode(shot).endswith(b"caf\xe9.png")
    assert Outcome.UPLOADED == rig.processor().process(rig.job(shot)).outcome
    record = rig.journal.get(shot)
    assert ("uploaded", str(shot)) == (record.state if record else None,
                                       record.path if record else None)
    assert sidecar.read_sidecar(shot) is not None
    assert str(shot) in rig.journal.signatures()
    assert Outcome.SKIPPED == rig.processor().process(rig.job(shot)).outcome
    assert 1 == rig.stats()["uploads_completed"]


def test_a_name_that_is_not_utf8_gets_its_generation(rig: Rig) -> None:
    """Through a scan-mode daemon with a rule: one task, SUCCEEDED, the output downloaded."""
    shot = rig.still(os.fsdecode(b"r\xf6ck.png"))
    code, _ = rig.scan()
    assert (0, "SUCCEEDED", 1) == (code, task_part(shot)["status"],
                                   rig.stats()["tasks_created"])
    code, _ = rig.scan()
    assert (0, 1) == (code, rig.stats()["tasks_created"])


def test_a_name_too_long_for_its_sidecar_is_invalid_and_never_uploaded(rig: Rig,
                                                                        caplog: Any) -> None:
    """A 255-byte name: reported once as invalid with the reason, never uploaded."""
    shot = rig.still("a" * 251 + ".png")
    assert 255 == len(os.fsencode(shot.name))
    with caplog.at_level(logging.WARNING):
        first = rig.processor().process(rig.job(shot))
        again = rig.processor().process(rig.job(shot))
    record = rig.journal.get(shot)
    assert (Outcome.INVALID, "invalid") == (first.outcome, record.state if record else None)
    assert "too long for its sidecar" in (record.error if record else "")
    assert Outcome.INVALID == again.outcome  # as any invalid file: looked at, not said again
    assert 0 == rig.stats()["uploads_completed"]
    assert 1 == sum("too long for its sidecar" in r.getMessage() for r in caplog.records)
