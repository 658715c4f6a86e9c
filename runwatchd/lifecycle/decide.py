"""A settled file's fate, decided without touching anything: Facts in, one Action out.

FileProcessor (processor.py) observes a file into Facts (facts.py), asks decide() what to do
and applies the answer. decide() reads no file, no clock and no store, so each case is one row
of a table test (tests/lifecycle/test_decide.py). In the order decide() asks:

    our own output ........................................ Skip(OUR_OUTPUT)
    media.check_file refused it ........................... Invalid(message)
    unchanged since it was found invalid .................. Skip(UNCHANGED_INVALID)
    its row holds a generation for this version ........... EnsureTaskSidecar(row)
    touched, but the content of its generation ............ TakeNewVersion(row)
    its rules file is broken .............................. WaitForRules(message)
    its rule cannot take this kind of media ............... Invalid(message)
    uploaded, the sidecar could not be written then ....... WriteSidecarFromJournal(.., then)
    a matching sidecar with a task (not `retry`) .......... AdoptSidecar(row) | Skip(HAS_TASK)
    a matching sidecar, no rule ........................... RecordFromSidecar(row) | Skip(DONE)
    a matching sidecar with a fresh URI, a rule ........... Submit(uploaded)
    anything else ......................................... Upload(attempts, submit)

scan_verdict() answers the reconcile scan's question about each file it finds (look at it, or
leave it) from the journal's signature row, the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

from runwatchd.lifecycle import sidecar
from runwatchd.lifecycle.facts import Facts, FileStat, Uploaded, might_be_same_content, same_version
from runwatchd.lifecycle.states import FAILURE_STATES, TASK_STATES, FileState, TaskStatus
from runwatchd.store.record import FileRecord

S = FileState


class SkipWhy(StrEnum):
    """Why a file needs nothing."""

    OUR_OUTPUT = "our_output"  # an event the folder filter could not know was ours
    UNCHANGED_INVALID = "unchanged_invalid"  # reported once; a chmod changes ctime, so retried
    HAS_TASK = "has_task"  # its matching sidecar shows a task, and the journal knows the file
    DONE = "done"  # uploaded, its sidecar matches, no rule: nothing more to do


@dataclass(frozen=True)
class Skip:
    why: SkipWhy


@dataclass(frozen=True)
class Invalid:
    """A permanent problem: recorded and reported once, skipped until the file changes."""

    message: str


@dataclass(frozen=True)
class WaitForRules:
    """Its rules file is broken: fail (retried after a backoff) rather than generate with the
    rule further up that the broken one meant to override."""

    message: str


@dataclass(frozen=True)
class EnsureTaskSidecar:
    """The journal knows this version's generation: make the sidecar say so."""

    record: FileRecord


@dataclass(frozen=True)
class TakeNewVersion:
    """Touched (or rewritten, identical): `record` is its row for the new version; the
    generation stands."""

    record: FileRecord


@dataclass(frozen=True)
class AdoptSidecar:
    """Believe a matching sidecar with a task (the journal lost it, or never had it): record
    `record`, and follow its task when it is still running."""

    record: FileRecord


@dataclass(frozen=True)
class RecordFromSidecar:
    """A matching sidecar and no rule: the journal records `record`; nothing is uploaded."""

    record: FileRecord


@dataclass(frozen=True)
class Submit:
    """Submit the rule's generation with this fresh upload."""

    uploaded: Uploaded


@dataclass(frozen=True)
class Upload:
    """Upload the file (again), carrying its failed attempts on; then submit if `submit`."""

    attempts: int
    submit: bool


@dataclass(frozen=True)
class WriteSidecarFromJournal:
    """Uploaded earlier, but the sidecar could not be written (read-only folder, full disk):
    write `sidecar` from the journal's `record` without uploading again, then do `then`."""

    sidecar: Mapping[str, Any]
    record: FileRecord
    then: RecordFromSidecar | Submit


Action = (Skip | Invalid | WaitForRules | EnsureTaskSidecar | TakeNewVersion | AdoptSidecar
          | RecordFromSidecar | Submit | Upload | WriteSidecarFromJournal)


def decide(f: Facts) -> Action:
    """What to do with one settled file, from what observe() found (see the module docstring)."""
    if f.is_output:
        return Skip(SkipWhy.OUR_OUTPUT)
    if f.stat is None or f.invalid is not None:
        return Invalid(f.invalid or f"{f.path.name}: cannot be read")
    st, row = f.stat, f.record
    same = row is not None and same_version(row, st)
    if row is not None and same:
        if row.state == S.INVALID and row.ctime_ns == st.st_ctime_ns:
            return Skip(SkipWhy.UNCHANGED_INVALID)
        if row.state in TASK_STATES:
            return EnsureTaskSidecar(row)
    if row is not None and might_be_same_content(row, st) and f.digest == row.sha256:
        return TakeNewVersion(replace(row, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns,
                                      inode=st.st_ino))
    if f.broken_rules is not None:
        return WaitForRules(f"waiting: {f.broken_rules}")
    if f.rule is not None and f.media_problem is not None:
        return Invalid(f.media_problem)
    if (row is not None and same and row.state == S.NO_SIDECAR and row.runway_uri
            and row.sha256 and row.uploaded_at and not sidecar.uri_stale(row.uploaded_at, f.now)):
        data = sidecar.build_sidecar(
            f.path, runway_uri=row.runway_uri, size=st.st_size, mtime_ns=st.st_mtime_ns,
            uploaded_at=datetime.fromtimestamp(row.uploaded_at, UTC), sha256=row.sha256)
        then = _with_sidecar(f, st, data, same=True, forced=False)
        assert isinstance(then, (RecordFromSidecar, Submit))  # the sidecar just built matches
        return WriteSidecarFromJournal(data, row, then)
    forced = row is not None and same and row.state == S.RETRY
    return _with_sidecar(f, st, f.sidecar, same=same, forced=forced)


def _with_sidecar(f: Facts, st: FileStat, data: Mapping[str, Any] | None, *, same: bool,
                  forced: bool) -> Action:
    row = f.record
    if data is not None and sidecar.sidecar_matches(data, st, f.path.name):
        if "task" in data and not forced:
            if row is None or not same:  # a new state dir, or copied with its sidecar
                return AdoptSidecar(adopted_record(f, st, data))
            return Skip(SkipWhy.HAS_TASK)
        if f.rule is None:
            if row is None or not same or row.state != S.UPLOADED:
                return RecordFromSidecar(record_from_sidecar(f.path, st, data, S.UPLOADED))
            return Skip(SkipWhy.DONE)
        uploaded_at = _epoch(data["uploaded_at"])
        if not sidecar.uri_stale(uploaded_at, f.now):
            return Submit(Uploaded(uri=data["runway_uri"], uploaded_at=uploaded_at,
                                   sha256=data["file"]["sha256"], size=st.st_size,
                                   mtime_ns=st.st_mtime_ns, inode=st.st_ino,
                                   ctime_ns=st.st_ctime_ns))
    return Upload(attempts=row.attempts if row is not None and same else 0,
                  submit=f.rule is not None)


def record_from_sidecar(path: Path, st: FileStat, data: Mapping[str, Any],
                        state: FileState) -> FileRecord:
    """The journal row a matching sidecar describes, in `state`."""
    return FileRecord(
        path=str(path), state=state, size=st.st_size, mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns, inode=st.st_ino, sha256=data["file"]["sha256"],
        runway_uri=data["runway_uri"], uploaded_at=_epoch(data["uploaded_at"]),
    )


_ADOPTED_STATE = {TaskStatus.SUCCEEDED: S.SUCCEEDED, TaskStatus.FAILED: S.TASK_FAILED,
                  TaskStatus.CANCELLED: S.TASK_FAILED, TaskStatus.NEEDS_ATTENTION: S.ATTENTION}


def adopted_record(f: Facts, st: FileStat, data: Mapping[str, Any]) -> FileRecord:
    """The row for a matching sidecar that shows a task, in the state its status means."""
    task = data["task"]
    status = task.get("status")
    state = _ADOPTED_STATE.get(status, S.ATTENTION)
    if state == S.ATTENTION and status != TaskStatus.NEEDS_ATTENTION and task.get("id"):
        state = S.RUNNING  # PENDING, THROTTLED, RUNNING: follow it again
    record = record_from_sidecar(f.path, st, data, state)
    record.endpoint, record.rule_name = task.get("endpoint"), task.get("rule")
    record.task_id, record.task_status = task.get("id"), status
    record.outputs = list(task.get("outputs") or [])
    record.failure, record.failure_code = task.get("failure"), task.get("failure_code")
    if state == S.ATTENTION:
        record.error = task.get("failure") or "needs attention"
    if state == S.RUNNING and f.rule is not None and f.output_dir is not None:
        record.output_dir = str(f.output_dir)
    return record


def _epoch(text: str) -> float:
    return sidecar.parse_time(text).timestamp()


# -- the reconcile scan ---------------------------------------------------------------------------

class ScanPolicy(StrEnum):
    """What a scan is for."""

    RUN = "run"  # the daemon's scans: a failed file waits for its backoff
    SCAN = "scan"  # `runwatchd scan`: a failure recorded earlier is reported again
    NAMED = "named"  # files named on purpose (`runwatchd retry`): the processor decides


# Files whose row is in one of these states, unchanged, need nothing at a scan.
_SETTLED_STATES = frozenset({S.UPLOADED, S.SUCCEEDED, S.TASK_FAILED, S.ATTENTION, S.INVALID,
                             S.RUNNING, S.SUBMITTING})
# ... unless their sidecar was deleted (the user wants the file processed again); these have none
# to check (an invalid file never had one; a task in flight gets it back from the journal).
_NO_SIDECAR_CHECK = frozenset({S.INVALID, S.RUNNING, S.SUBMITTING})

# (state, size, mtime_ns, inode) of a journal row, as Store.signature() gives it.
RowSignature = tuple[str, int | None, int | None, int | None]


class ScanFacts(NamedTuple):
    """One file a scan found. `sidecar_exists`, `next_attempt` and `error` cost a stat or a row
    read: fill them only when wants_sidecar_check() / wants_record() say they matter. A
    NamedTuple, not a frozen dataclass: one is made per file of every scan (100,000 at a
    restart), and a frozen dataclass's __init__ costs a setattr call per field."""

    policy: ScanPolicy
    row: RowSignature | None
    size: int
    mtime_ns: int
    inode: int
    now: float  # epoch seconds, to compare with next_attempt
    sidecar_exists: bool = True
    next_attempt: float | None = None  # of the file's row (a failed one)
    error: str | None = None  # of the file's row (a failure reported again)


@dataclass(frozen=True)
class Look:
    """Send it to settle and a worker."""


@dataclass(frozen=True)
class Pass:
    """Nothing to do."""


@dataclass(frozen=True)
class PassUntil:
    """A failed file whose backoff stands: nothing now, look again at `when` (epoch seconds)."""

    when: float


@dataclass(frozen=True)
class PassFailed:
    """Nothing to do, but a failure recorded earlier that `scan` reports (and exits 1 for)."""

    reason: str


ScanVerdict = Look | Pass | PassUntil | PassFailed


def _unchanged(f: ScanFacts) -> str | None:
    """The row's state when the row describes the file as found, else None."""
    if f.policy == ScanPolicy.NAMED or f.row is None:
        return None
    return f.row[0] if f.row[1:] == (f.size, f.mtime_ns, f.inode) else None


def wants_sidecar_check(f: ScanFacts) -> bool:
    """Whether scan_verdict() reads `sidecar_exists` for this file."""
    state = _unchanged(f)
    return state in _SETTLED_STATES and state not in _NO_SIDECAR_CHECK


def wants_record(f: ScanFacts) -> bool:
    """Whether scan_verdict() reads `next_attempt` or `error` (from the file's row)."""
    state = _unchanged(f)
    return ((state == S.FAILED and f.policy == ScanPolicy.RUN)
            or (state in FAILURE_STATES and f.policy == ScanPolicy.SCAN))


def scan_verdict(f: ScanFacts) -> ScanVerdict:
    """Whether a scanned file goes to the candidate table. A journal row describing the file
    unchanged answers without reading the sidecar (a rescan of 100k finished files is cheap)."""
    state = _unchanged(f)
    if state is None:
        return Look()
    if state == S.FAILED and f.policy == ScanPolicy.RUN:
        if f.next_attempt and f.next_attempt > f.now:
            return PassUntil(f.next_attempt)  # its backoff stands
        return Look()
    if state not in _SETTLED_STATES:
        return Look()
    if state not in _NO_SIDECAR_CHECK and not f.sidecar_exists:
        return Look()  # the sidecar was deleted: the user wants the file processed again
    if f.policy == ScanPolicy.SCAN and state in FAILURE_STATES:
        # Not retried (the file did not change), but not a success either.
        return PassFailed(f"{f.error or state} (recorded earlier; the file did not change)")
    return Pass()
