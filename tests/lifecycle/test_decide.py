"""Tests for runwatchd.lifecycle.decide: every case of a file's fate, and of a scan's verdict, as
a table of facts written by hand (no filesystem, no clock, no store)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from runwatchd.generation.rules import Rule
from runwatchd.lifecycle import sidecar
from runwatchd.lifecycle.decide import (
    Action,
    AdoptSidecar,
    EnsureTaskSidecar,
    Invalid,
    Look,
    Pass,
    PassFailed,
    PassUntil,
    RecordFromSidecar,
    ScanFacts,
    ScanPolicy,
    ScanVerdict,
    Skip,
    SkipWhy,
    Submit,
    TakeNewVersion,
    Upload,
    WaitForRules,
    WriteSidecarFromJournal,
    decide,
    scan_verdict,
    wants_record,
    wants_sidecar_check,
)
from runwatchd.lifecycle.facts import Facts, FileStat, Uploaded
from runwatchd.lifecycle.states import FileState
from runwatchd.store.record import FileRecord

PATH = Path("/hot/shot.png")
ST = FileStat(st_size=1000, st_mtime_ns=5_000_000_000, st_ctime_ns=6_000_000_000, st_ino=42)
TOUCHED = replace(ST, st_mtime_ns=7_000_000_000, st_ctime_ns=7_000_000_000)
NOW = 2_000_000_000.0
FRESH = NOW - 3600  # an hour old: sent as it is
STALE = NOW - 23.5 * 3600  # within the hour before Runway's 24 h: uploaded again
SHA = "ab" * 32
URI = "runway://upload/abc"
RULE = Rule("image_to_video", "renders", name="hot")
OUT = Path("/hot/renders")
S = FileState


def row(state: FileState, st: FileStat = ST, **kw: Any) -> FileRecord:
    """A journal row for the file at version `st`."""
    values: dict[str, Any] = dict(size=st.st_size, mtime_ns=st.st_mtime_ns,
                                  ctime_ns=st.st_ctime_ns, inode=st.st_ino, sha256=SHA,
                                  runway_uri=URI, uploaded_at=FRESH)
    values.update(kw)
    return FileRecord(path=str(PATH), state=state, **values)


def side(uploaded_at: float = FRESH, st: FileStat = ST, **task: Any) -> dict[str, Any]:
    """A sidecar describing the file at version `st`, with a task part when `task` is given."""
    return sidecar.build_sidecar(PATH, runway_uri=URI, size=st.st_size, mtime_ns=st.st_mtime_ns,
                                 uploaded_at=datetime.fromtimestamp(uploaded_at, UTC),
                                 sha256=SHA, task=task or None)


def facts(**kw: Any) -> Facts:
    """A settled file with `ST`, no row, no sidecar, no rule, unless `kw` says otherwise."""
    return Facts(**{"path": PATH, "now": NOW, "stat": ST, **kw})


def from_sidecar(state: FileState, uploaded_at: float = FRESH, **kw: Any) -> FileRecord:
    """The row decide() builds from a matching sidecar."""
    return row(state, uploaded_at=uploaded_at, **kw)


def uploaded(uploaded_at: float = FRESH) -> Uploaded:
    return Uploaded(URI, uploaded_at, SHA, ST.st_size, ST.st_mtime_ns, ST.st_ino, ST.st_ctime_ns)


RUNNING_TASK = dict(id="t1", endpoint="image_to_video", rule="hot", status="RUNNING")

CASES = [
    pytest.param(facts(is_output=True, stat=None), Skip(SkipWhy.OUR_OUTPUT),
                 id="our own output"),
    pytest.param(facts(stat=None, invalid="shot.png: 10 bytes is too small"),
                 Invalid("shot.png: 10 bytes is too small"), id="check_file refuses it"),
    pytest.param(facts(record=row(S.INVALID, error="too small")),
                 Skip(SkipWhy.UNCHANGED_INVALID), id="unchanged since found invalid"),
    pytest.param(facts(record=row(S.INVALID, ctime_ns=1)), Upload(0, False),
                 id="invalid, chmod since: looked at again"),
    pytest.param(facts(record=row(S.RUNNING, task_id="t1")),
                 EnsureTaskSidecar(row(S.RUNNING, task_id="t1")), id="row holds its task"),
    pytest.param(facts(stat=TOUCHED, record=row(S.SUCCEEDED), digest=SHA),
                 TakeNewVersion(row(S.SUCCEEDED, TOUCHED)), id="touched, same content"),
    pytest.param(facts(stat=TOUCHED, record=row(S.SUCCEEDED), digest="cd" * 32, rule=RULE),
                 Upload(0, True), id="rewritten, new content"),
    pytest.param(facts(stat=TOUCHED, record=row(S.SUBMITTING), digest=SHA), Upload(0, False),
                 id="touched while submitting: not taken as the same content"),
    pytest.param(facts(broken_rules="the rules file x is invalid", rule=RULE),
                 WaitForRules("waiting: the rules file x is invalid"), id="broken rules file"),
    pytest.param(facts(rule=RULE, media_problem="a.wav: image_to_video takes image files"),
                 Invalid("a.wav: image_to_video takes image files"),
                 id="rule cannot take the media"),
    pytest.param(facts(record=row(S.NO_SIDECAR, attempts=2)),
                 WriteSidecarFromJournal(side(), row(S.NO_SIDECAR, attempts=2),
                                         RecordFromSidecar(from_sidecar(S.UPLOADED))),
                 id="sidecar unwritten earlier, no rule"),
    pytest.param(facts(record=row(S.NO_SIDECAR), rule=RULE, output_dir=OUT),
                 WriteSidecarFromJournal(side(), row(S.NO_SIDECAR), Submit(uploaded())),
                 id="sidecar unwritten earlier, a rule"),
    pytest.param(facts(record=row(S.NO_SIDECAR, uploaded_at=STALE, attempts=2)),
                 Upload(2, False), id="sidecar unwritten earlier, URI too old"),
    pytest.param(facts(sidecar=side(**RUNNING_TASK), rule=RULE, output_dir=OUT),
                 AdoptSidecar(from_sidecar(
                     S.RUNNING, endpoint="image_to_video", rule_name="hot", task_id="t1",
                     task_status="RUNNING", output_dir=str(OUT))),
                 id="matching sidecar with a running task, journal lost"),
    pytest.param(facts(sidecar=side(id="t1", status="SUCCEEDED", outputs=["renders/shot.mp4"])),
                 AdoptSidecar(from_sidecar(S.SUCCEEDED, task_id="t1", task_status="SUCCEEDED",
                                           outputs=["renders/shot.mp4"])),
                 id="matching sidecar with a finished task, journal lost"),
    pytest.param(facts(sidecar=side(status="NEEDS_ATTENTION", failure="a task may exist")),
                 AdoptSidecar(from_sidecar(S.ATTENTION, task_status="NEEDS_ATTENTION",
                                           failure="a task may exist",
                                           error="a task may exist")),
                 id="matching sidecar that needs attention, journal lost"),
    pytest.param(facts(record=row(S.UPLOADED), sidecar=side(**RUNNING_TASK), rule=RULE),
                 Skip(SkipWhy.HAS_TASK), id="matching sidecar with a task, journal knows"),
    pytest.param(facts(record=row(S.RETRY), sidecar=side(**RUNNING_TASK), rule=RULE),
                 Submit(uploaded()), id="retry: submits once more despite the task"),
    pytest.param(facts(sidecar=side()), RecordFromSidecar(from_sidecar(S.UPLOADED)),
                 id="matching sidecar, no rule, journal lost"),
    pytest.param(facts(record=row(S.UPLOADED), sidecar=side()), Skip(SkipWhy.DONE),
                 id="matching sidecar, no rule, journal agrees"),
    pytest.param(facts(sidecar=side(), rule=RULE), Submit(uploaded()),
                 id="matching fresh sidecar, a rule"),
    pytest.param(facts(sidecar=side(STALE), rule=RULE), Upload(0, True),
                 id="matching sidecar with a URI too old, a rule"),
    pytest.param(facts(sidecar=side(st=TOUCHED)), Upload(0, False),
                 id="sidecar of another version"),
    pytest.param(facts(), Upload(0, False), id="new file, no rule"),
    pytest.param(facts(record=row(S.FAILED, attempts=3), rule=RULE), Upload(3, True),
                 id="failed before: attempts carry on"),
]


@pytest.mark.parametrize(("given", "expected"), CASES)
def test_decide(given: Facts, expected: Action) -> None:
    """Each case of a settled file's fate gets its action."""
    assert expected == decide(given)


def scan(state: str | None = None, *, policy: ScanPolicy = ScanPolicy.RUN, changed: bool = False,
         **kw: Any) -> ScanFacts:
    """A scanned file with a row in `state` (None: no row), the row unchanged unless `changed`."""
    sig = None if state is None else (state, 1000, 5 if not changed else 6, 42)
    return ScanFacts(policy=policy, row=sig, size=1000, mtime_ns=5, inode=42, now=NOW, **kw)


SCAN_CASES = [
    pytest.param(scan(), Look(), id="no row"),
    pytest.param(scan("succeeded", changed=True), Look(), id="changed since its row"),
    pytest.param(scan("succeeded", policy=ScanPolicy.NAMED), Look(), id="named on purpose"),
    pytest.param(scan("succeeded"), Pass(), id="finished"),
    pytest.param(scan("succeeded", sidecar_exists=False), Look(), id="sidecar deleted"),
    pytest.param(scan("running", sidecar_exists=False), Pass(), id="task in flight"),
    pytest.param(scan("to_submit"), Look(), id="not settled"),
    pytest.param(scan("failed", next_attempt=NOW + 60), PassUntil(NOW + 60),
                 id="failed, backoff stands"),
    pytest.param(scan("failed", next_attempt=NOW - 1), Look(), id="failed, backoff over"),
    pytest.param(scan("failed", policy=ScanPolicy.SCAN, next_attempt=NOW + 60), Look(),
                 id="failed, scan tries again"),
    pytest.param(scan("task_failed", policy=ScanPolicy.SCAN, error="task FAILED: x"),
                 PassFailed("task FAILED: x (recorded earlier; the file did not change)"),
                 id="scan reports a failure recorded earlier"),
    pytest.param(scan("invalid", policy=ScanPolicy.SCAN, sidecar_exists=False),
                 PassFailed("invalid (recorded earlier; the file did not change)"),
                 id="scan reports an invalid file without its error"),
    pytest.param(scan("task_failed"), Pass(), id="the daemon leaves a failure alone"),
]


@pytest.mark.parametrize(("given", "expected"), SCAN_CASES)
def test_scan_verdict(given: ScanFacts, expected: ScanVerdict) -> None:
    """Each case of a scanned file gets its verdict."""
    assert expected == scan_verdict(given)


@pytest.mark.parametrize(("given", "expected"), [
    pytest.param(scan("succeeded"), (True, False), id="finished: its sidecar is checked"),
    pytest.param(scan("invalid", policy=ScanPolicy.SCAN), (False, True), id="invalid in scan"),
    pytest.param(scan("failed"), (False, True), id="failed: its backoff is read"),
    pytest.param(scan("succeeded", changed=True), (False, False), id="changed: nothing read"),
    pytest.param(scan(), (False, False), id="no row: nothing read"),
])
def test_scan_facts_read_only_when_they_matter(given: ScanFacts,
                                               expected: tuple[bool, bool]) -> None:
    """A scan stats the sidecar or reads the row only for the files whose verdict needs it."""
    assert expected == (wants_sidecar_check(given), wants_record(given))
