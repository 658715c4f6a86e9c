"""The task part of a sidecar: what the journal knows about a file's generation, written beside it.

The journal is written first where a crash between the two writes must be repaired from it (the
task id after a POST), the sidecar first where the journal's state is what a restart repairs
again (a final status, "needs attention"); ensure_task_sidecar() is that repair.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runwatchd.lifecycle import sidecar
from runwatchd.lifecycle.states import FileState, TaskStatus
from runwatchd.store.record import FileRecord

log = logging.getLogger(__name__)

# (estimatedCost.credits, cost.credits) of a task reply, each an int or None.
Credits = tuple[int | None, int | None]


def credits_of(reply: Mapping[str, Any]) -> Credits:
    """(estimated, final) credits of a create or task reply; None where absent or not an int.

    The model routers (/v1/generate/*) answer a create with the estimate inside `routing`
    ({"id", "routing": {"estimatedCost": {"credits"}, "model", ...}}, the SDK's
    VideoCreateResponse and siblings); every other reply carries it at the top."""
    def number(block: object, key: str) -> int | None:
        inner = block.get(key) if isinstance(block, dict) else None
        value = inner.get("credits") if isinstance(inner, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    estimated = number(reply, "estimatedCost")
    if estimated is None:
        estimated = number(reply.get("routing"), "estimatedCost")
    return estimated, number(reply, "cost")


def sidecar_status(record: FileRecord) -> str | None:
    """The task status a sidecar shows for a journal row; None if the row has no task part."""
    state = record.state
    if state == FileState.ATTENTION:
        return TaskStatus.NEEDS_ATTENTION
    if state == FileState.RUNNING:
        return record.task_status or TaskStatus.PENDING
    if state == FileState.SUCCEEDED:
        return TaskStatus.SUCCEEDED
    if state == FileState.TASK_FAILED:
        return record.task_status or TaskStatus.FAILED
    return None


def write_task_sidecar(path: Path, record: FileRecord, status: str, *,
                       failure: str | None = None, code: str | None = None,
                       credits: Credits = (None, None)) -> bool:
    """Rewrite the sidecar with the task part as the journal knows it; False if not written
    (the media file is gone, or the folder cannot be written: the journal keeps the state).

    `credits`: (estimated, final) from the latest task reply. The journal has no room for them,
    so one the reply lacks (the estimate is gone once a task ends) is kept from the sidecar."""
    old: dict[str, Any] = {}
    if record.rule_name is None or None in credits:
        old = (sidecar.read_sidecar(path) or {}).get("task") or {}
        if old.get("id") != record.task_id:
            old = {"rule": old.get("rule")}  # credits of another task are not this one's
    # A row from before rule names were journaled: keep the sidecar's.
    rule_name = record.rule_name if record.rule_name is not None else old.get("rule")
    task: dict[str, Any] = {
        "id": record.task_id, "endpoint": record.endpoint, "rule": rule_name,
        "status": str(status), "outputs": list(record.outputs), "failure": failure,
        "failure_code": code,
        "credits_estimated": _credit(credits[0], old.get("credits_estimated")),
        "credits": _credit(credits[1], old.get("credits")),
    }
    if not path.exists():
        log.info("%s is gone; its task %s is %s (no sidecar written)", path, record.task_id,
                 status)
        return False
    try:
        data = sidecar.build_sidecar(
            path, runway_uri=record.runway_uri or "", uploaded_at=datetime.fromtimestamp(
                record.uploaded_at or 0, tz=UTC),
            size=record.size or 0, mtime_ns=record.mtime_ns or 0, sha256=record.sha256 or "",
            task=task,
        )
        sidecar.write_sidecar(path, data)
    except OSError as e:
        log.error("%s: cannot write sidecar: %s (state kept in the journal)", path, e.strerror or e)
        return False
    except ValueError as e:  # a journal row without upload facts: nothing true to write
        log.error("%s: cannot write sidecar: %s", path, e)
        return False
    return True


def _credit(new: int | None, old: object) -> int | None:
    if new is not None:
        return new
    return old if isinstance(old, int) and not isinstance(old, bool) else None


def ensure_task_sidecar(path: Path, record: FileRecord) -> None:
    """Make the sidecar say what the journal knows about the file's task (after a crash
    between the two writes, or when the user deleted the sidecar)."""
    status = sidecar_status(record)
    if status is None:
        return
    data = sidecar.read_sidecar(path)
    task = (data or {}).get("task") or {}
    try:
        st = os.stat(path)
    except OSError:
        return
    if (data is not None and sidecar.sidecar_matches(data, st, path.name)
            and task.get("id") == record.task_id and task.get("status") == status):
        return
    write_task_sidecar(path, record, status, failure=record.failure or (
        record.error if record.state == FileState.ATTENTION else None), code=record.failure_code)
