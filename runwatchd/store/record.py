"""FileRecord: what the store keeps about one media file (one row)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FileRecord:
    """One row of the journal."""

    path: str
    state: str
    size: int | None = None
    mtime_ns: int | None = None
    ctime_ns: int | None = None
    inode: int | None = None
    sha256: str | None = None
    runway_uri: str | None = None
    uploaded_at: float | None = None
    error: str | None = None
    attempts: int = 0
    next_attempt: float | None = None
    rule_fp: str | None = None
    endpoint: str | None = None
    task_id: str | None = None
    task_status: str | None = None
    outputs: list[str] = field(default_factory=list)
    failure: str | None = None
    failure_code: str | None = None
    updated_at: float = 0.0
    rule_name: str | None = None
    output_dir: str | None = None

    def same_file(self, size: int, mtime_ns: int, inode: int) -> bool:
        """True when the row describes this version of the file (ctime is left out on purpose:
        a chmod or a hard link changes it without changing the content)."""
        return (self.size, self.mtime_ns, self.inode) == (size, mtime_ns, inode)
