"""What is known about one settled file when its fate is decided: Facts, read by observe().

Plain frozen values, so decide.py can answer from them alone and a test can write them by hand.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runwatchd.generation.rules import Rule
from runwatchd.lifecycle.states import TASK_STATES, FileState
from runwatchd.store.record import FileRecord


@dataclass(frozen=True)
class FileStat:
    """The parts of a file's stat that tell one version from another (os.stat_result's names)."""

    st_size: int
    st_mtime_ns: int
    st_ctime_ns: int
    st_ino: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileStat:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


@dataclass(frozen=True)
class Uploaded:
    """A version of the file that Runway holds: the URI a generation is sent with, and what it
    was taken from."""

    uri: str
    uploaded_at: float  # epoch seconds; the URI expires 24 h later
    sha256: str
    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int


@dataclass(frozen=True)
class Facts:
    """One settled file as observe() found it; `now` is the clock read once for this look."""

    path: Path
    now: float
    is_output: bool = False  # inside a folder generations were downloaded into
    stat: FileStat | None = None  # None: media.check_file refused the file (`invalid` says why)
    invalid: str | None = None
    record: FileRecord | None = None  # its journal row
    digest: str | None = None  # sha256 of its content, read only when might_be_same_content()
    broken_rules: str | None = None  # why its nearest rules file cannot be used
    rule: Rule | None = None
    media_problem: str | None = None  # why `rule` cannot take this file
    output_dir: Path | None = None  # where `rule`'s outputs for this file go
    sidecar: Mapping[str, Any] | None = None  # a valid sidecar beside it
    sidecar_problem: str | None = None  # why the sidecar beside it cannot be used


def same_version(record: FileRecord, st: FileStat) -> bool:
    """The row describes this version of the file (size, mtime, inode)."""
    return record.same_file(st.st_size, st.st_mtime_ns, st.st_ino)


def might_be_same_content(record: FileRecord | None, st: FileStat) -> bool:
    """A new version of a file whose row holds a generation for content of this size: worth
    reading its digest, as touching (or rewriting, identical) a file must not generate again."""
    return (record is not None and not same_version(record, st)
            and record.state in TASK_STATES and record.state != FileState.SUBMITTING
            and record.size == st.st_size and bool(record.sha256))
