"""Store rows as the page shows them: a display state, the reason, what to do, opaque ids.

The page groups a file's many store states into the few its readers (artists, editors) think
in, and says for every failure why and what to do next. File and output ids are hashes of the
store's key: a request names a file by id, never by a path, and the server looks the id up.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from runwatchd.lifecycle.states import RETRYABLE_STATES, FileState
from runwatchd.service.web.source import Progress
from runwatchd.store.record import FileRecord

S = FileState
IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
               ".webp": "image/webp", ".gif": "image/gif"}


class Display(StrEnum):
    """The states the page shows, in the order a file goes through them."""

    WAITING = "waiting"  # waiting to settle
    UPLOADING = "uploading"
    UPLOADED = "uploaded"  # done: no rule applies
    GENERATING = "generating"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ATTENTION = "attention"  # needs someone to act


DISPLAY: dict[str, Display] = {
    S.UPLOADING: Display.UPLOADING, S.UPLOADED: Display.UPLOADED,
    S.TO_SUBMIT: Display.GENERATING, S.SUBMITTING: Display.GENERATING,
    S.RUNNING: Display.GENERATING, S.RETRY: Display.GENERATING,
    S.SUCCEEDED: Display.SUCCEEDED,
    S.TASK_FAILED: Display.FAILED, S.INVALID: Display.FAILED, S.FAILED: Display.FAILED,
    S.ATTENTION: Display.ATTENTION, S.AWAITING_CREDITS: Display.ATTENTION,
    S.NO_SIDECAR: Display.ATTENTION,
}
# Shown whatever their age: they are moving, or someone has to act.
_ALWAYS_SHOWN = frozenset({Display.WAITING, Display.UPLOADING, Display.GENERATING,
                           Display.ATTENTION})

_ADVICE: dict[str, str] = {
    S.INVALID: "The file cannot be used as it is. Replace it with a fixed version (a changed "
               "file is picked up again by itself).",
    S.TASK_FAILED: "Runway's generation did not succeed. Change the prompt or the file, or retry "
                   "(a retry spends credits again).",
    S.FAILED: "A passing problem (network, Runway busy): it is tried again by itself. Retry to try "
              "at once.",
    S.ATTENTION: "The generation request may have reached Runway without an answer. Look for the "
                 "task in Runway's dashboard before you retry: a retry submits it again and may "
                 "be billed twice.",
    S.AWAITING_CREDITS: "The Runway organization is out of credits. Add credits, then ask the "
                        "admin to reload runwatchd, or retry.",
    S.NO_SIDECAR: "Uploaded, but the .runway.json beside the file could not be written. Make the "
                  "folder writable for runwatchd, then retry.",
}


def file_id(path: str) -> str:
    """The opaque id of a store key (surrogate-escaped bytes of a name hash like any other)."""
    return hashlib.sha256(os.fsencode(path)).hexdigest()[:24]


def display_of(state: str) -> Display:
    return DISPLAY.get(state, Display.ATTENTION)


def image_type(name: str) -> str | None:
    return IMAGE_TYPES.get(Path(name).suffix.lower())


def reason_of(record: FileRecord) -> str | None:
    """Why a file failed or waits, in one line; None when nothing is wrong."""
    if display_of(record.state) not in (Display.FAILED, Display.ATTENTION):
        return None
    if record.state == S.TASK_FAILED and record.failure:
        code = f" ({record.failure_code})" if record.failure_code else ""
        return f"{record.failure}{code}"
    if record.error:
        return record.error
    if record.state == S.AWAITING_CREDITS:
        return "no credits left"
    if record.state == S.ATTENTION:
        return "the generation request got no answer"
    return record.state.replace("_", " ")


def advice_of(record: FileRecord, now: float) -> str | None:
    text = _ADVICE.get(record.state)
    if text is None:
        return None if display_of(record.state) != Display.ATTENTION else (
            f"Unknown state {record.state!r}: ask the admin.")
    if record.state == S.FAILED and record.next_attempt:
        wait = max(0, int(record.next_attempt - now))
        text += f" Next try in about {wait // 60} min {wait % 60} s."
    return text


SETTLING = "settling"  # the state a file waiting to settle is shown in (it has no row yet)
DISPLAY[SETTLING] = Display.WAITING


def settling_record(path: str, now: float) -> FileRecord:
    """A file still being written (or just written): no store row describes this version."""
    return FileRecord(path=path, state=SETTLING, updated_at=now)


def file_row(record: FileRecord, *, progress: Progress | None, node: str,
             folders: Iterable[Path], now: float) -> dict[str, Any]:
    """The page's view of one file: the JSON object /api/files lists."""
    fid = file_id(record.path)
    display = display_of(record.state)
    outputs = [
        {"n": n, "name": name, "url": f"/api/files/{fid}/outputs/{n}",
         "thumb": f"/api/files/{fid}/outputs/{n}/thumb" if image_type(name) else None}
        for n, name in enumerate(record.outputs)
    ]
    task = None
    if record.task_id or record.endpoint:
        task = {"id": record.task_id, "endpoint": record.endpoint, "rule": record.rule_name,
                "status": record.task_status}
    sent = None
    if progress is not None and display is Display.UPLOADING:
        sent = {"sent": progress.sent, "total": progress.total}
    return {
        "id": fid,
        "path": record.path,
        "name": Path(record.path).name,
        "folder": _folder_of(record.path, folders),
        # A store shared by several hosts may say whose file it is; one host's store does not.
        "node": getattr(record, "node", None) or node,
        "state": record.state,
        "display": str(display),
        "updated_at": record.updated_at,
        "size": record.size,
        "progress": sent,
        "runway_uri": record.runway_uri,
        "task": task,
        "outputs": outputs,
        "thumb": f"/api/files/{fid}/thumb" if image_type(record.path) else None,
        "reason": reason_of(record),
        "advice": advice_of(record, now),
        "retryable": display in (Display.FAILED, Display.ATTENTION)
        and record.state in RETRYABLE_STATES,
    }


def select(records: Iterable[FileRecord], waiting: Iterable[str], *, now: float,
           query: str = "", display: str = "", since: float = 0.0,
           limit: int = 500) -> tuple[list[FileRecord], int]:
    """The files to list, newest first: (the first `limit`, how many matched in all). A file
    in motion or needing attention is listed however old its last change; a file settling
    again (it is being replaced) is listed as settling."""
    settling = {path: settling_record(path, now) for path in waiting}
    needle = query.casefold()
    chosen = [
        record for record in [*(r for r in records if r.path not in settling),
                              *settling.values()]
        if (record.updated_at >= since or display_of(record.state) in _ALWAYS_SHOWN)
        and (not display or display_of(record.state) == display)
        and (not needle or needle in record.path.casefold())
    ]
    chosen.sort(key=lambda r: (r.updated_at, r.path), reverse=True)
    return chosen[:limit], len(chosen)


def totals(counts: Mapping[str, int], waiting: int) -> dict[str, int]:
    """Files per display state, over every file the store knows, plus those settling."""
    out = {str(d): 0 for d in Display}
    for state, n in counts.items():
        out[display_of(state)] += n
    out[Display.WAITING] += waiting
    return out


def _folder_of(path: str, folders: Iterable[Path]) -> str | None:
    best: Path | None = None
    p = Path(path)
    for root in folders:
        if (root == p.parent or root in p.parents) and (
                best is None or len(root.parts) > len(best.parts)):
            best = root
    return str(best) if best is not None else None
