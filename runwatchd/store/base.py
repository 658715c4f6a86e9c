"""The Store protocol: what the daemon, the CLI and `status` may ask of the daemon's memory.

One row (FileRecord) per media file. Every write is committed before the action it guards, so a
crash at any moment leaves a state the next start repairs. Backends: sqlite.py (one host).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from runwatchd.store.record import FileRecord

# (state, size, mtime_ns, inode) of a row: enough for a scan to skip an unchanged finished file.
Signature = tuple[str, int | None, int | None, int | None]


class Store(Protocol):
    """The daemon's memory across restarts; safe to use from many threads."""

    def take_ownership(self) -> bool:
        """Become the one process that runs a daemon on this store (repairs what a crash left,
        writes status); False when another live process owns it."""
        ...

    def close(self) -> None: ...

    def get(self, path: Path | str) -> FileRecord | None: ...

    def put(self, record: FileRecord) -> None:
        """Insert or replace the whole row (committed when this returns)."""
        ...

    def put_many(self, records: list[FileRecord]) -> None: ...

    def claim_submit(self, record: FileRecord) -> FileRecord | None:
        """Record the intent to submit (state "submitting") unless the row holds a task for the
        same content; None on success, else the row that holds it. Atomic across processes."""
        ...

    def put_unless_claimed(self, record: FileRecord) -> FileRecord | None: ...

    def update(self, path: Path | str, **changes: Any) -> FileRecord | None: ...

    def update_if(self, path: Path | str, expected_state: str, **changes: Any) -> bool: ...

    def delete(self, path: Path | str) -> None: ...

    def in_state(self, *states: str) -> list[FileRecord]: ...

    def signatures(self) -> dict[str, Signature]: ...

    def signature(self, path: Path | str) -> Signature | None: ...

    def output_dirs(self) -> set[str]: ...

    def counts(self) -> dict[str, int]: ...

    def __iter__(self) -> Iterator[FileRecord]: ...
