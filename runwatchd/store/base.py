"""The Store protocol: what the daemon, the CLI and `status` may ask of the daemon's memory.

One row (FileRecord) per media file, keyed by its path. Every write is committed before the
action it guards, so a crash at any moment leaves a state the next start repairs. Every write is
checked against the lifecycle's transition table (lifecycle/states.py) with the row's old state
read in the same transaction: see store/transitions.py for what happens to a disallowed one.

Two kinds of handle:
    StoreView   the read half: what `runwatchd status` reads (never creates, migrates or writes)
    Store       a StoreView plus the writes, the at-most-once claim and ownership

Ownership: any number of processes (the daemon, `runwatchd retry`, `scan` beside a daemon) may
read and write one store, but exactly one of them runs the daemon on it per node (SQLite: one
host, so one daemon; PostgreSQL: one daemon per `[store] node` name): the owner repairs what a
crash left (intents become "needs attention", temp files go) and writes status. It is a store
concept, not a file lock, because the processes may be on several hosts: SQLite holds it with
flock beside the journal (one host); PostgreSQL with a session advisory lock per node on a
connection of its own (the server drops it with the connection).

Leases: work on one file is claimed with a lease (holder, expiry) before it starts, so the
processes that share a store (several daemons on several hosts, or `scan` beside a daemon) never
work on one file at once. A holder is one process (`holder`: node, pid and a random tag); its
heartbeat() extends all its leases and says it lives. A lease ends when released, when it expires
(its holder stopped beating: a host that vanished), or at once when the backend can prove its
holder dead (SQLite: a pid gone on this host; PostgreSQL: the holder's advisory lock is gone with
its connection). take_orphans() hands the rows in progress that no live holder leases to one
asker, atomically: that is how a surviving node takes over a dead one's work.

Backends: sqlite.py (one host; the default) and postgres.py (several hosts may reach it).
open_store / open_view (store/open.py) pick one by URL.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from runwatchd.store.record import FileRecord

# (state, size, mtime_ns, inode) of a row: enough for a scan to skip an unchanged finished file.
Signature = tuple[str, int | None, int | None, int | None]


@dataclass(frozen=True)
class OwnerInfo:
    """Who owns a store, as far as the backend can tell (None: it cannot)."""

    pid: int | None
    node: str | None  # the host name of the owning process
    since: float | None  # epoch seconds it took ownership


def new_holder(node: str) -> str:
    """A holder id for this process, "<node>:<pid>:<tag>": unique even when a pid is reused."""
    return f"{node}:{os.getpid()}:{secrets.token_hex(4)}"


def holder_node(holder: str) -> str:
    """The node part of a holder id (a node name may hold colons)."""
    return holder.rsplit(":", 2)[0]


@dataclass(frozen=True)
class HolderInfo:
    """One process that works on a store (a daemon, a scan), as its last heartbeat left it."""

    holder: str  # unique per process: "<node>:<pid>:<tag>"
    node: str
    pid: int | None
    version: str | None  # runwatchd's version
    started_at: float | None  # epoch seconds
    heartbeat_at: float | None  # epoch seconds (the store's clock)
    in_flight: int  # files it was working on at that heartbeat
    alive: bool  # False once its leases have expired or the backend proved it dead


class StoreView(Protocol):
    """Reading a store while a daemon writes it: never blocks the writer, never sees half a write.
    Opening one never creates, migrates or locks the store. Safe to use from many threads."""

    def counts(self) -> dict[str, int]:
        """Number of rows per state, ordered by state; {} for an empty or missing store."""
        ...

    def recent_errors(self, limit: int = 10) -> list[FileRecord]:
        """The `limit` rows with an error message, the most recently written first."""
        ...

    def in_state(self, *states: str) -> list[FileRecord]:
        """Every row in one of `states` (a snapshot: one consistent read)."""
        ...

    def owner(self) -> OwnerInfo | None:
        """The process that owns the store (see take_ownership), or None when nobody does or the
        backend cannot tell (SQLite: the lock file is not readable, or its pid is gone)."""
        ...

    def holders(self) -> list[HolderInfo]:
        """Every process that has beaten its heart on this store and not left (see Store.leave),
        most recent heartbeat first; dead ones stay listed (alive=False) until they are
        forgotten an hour after their last heartbeat."""
        ...

    def close(self) -> None:
        """Release the connection; the view is unusable afterwards. Idempotent."""
        ...


class Store(StoreView, Protocol):
    """The daemon's memory across restarts; safe to use from many threads and processes.

    Atomicity: every method is one transaction. Writes are serialised among the threads of a
    process and among processes; a write that reads the row first (claim_submit,
    put_unless_claimed, update, update_if, and every transition check) reads it inside the same
    transaction, so no other thread or process can write that row in between."""

    def take_ownership(self) -> bool:
        """Become the one process that runs a daemon on this store for this node (it alone
        repairs what this node's crash left and writes status); False while another live process
        owns it. True again if this
        handle already owns it. Held until close() or the process ends, even by SIGKILL (the
        backend must not need the owner's cooperation to release it)."""
        ...

    def check_intact(self) -> str | None:
        """None while the store is the one this handle opened; else one line saying what became
        of it (SQLite: the journal file was deleted or replaced, so every write goes to a file
        nobody will read again). Cheap: a daemon calls it every second."""
        ...

    def get(self, path: Path | str) -> FileRecord | None:
        """The row of `path`, or None."""
        ...

    def put(self, record: FileRecord) -> None:
        """Insert or replace the whole row; sets record.updated_at. Committed when this returns."""
        ...

    def put_many(self, records: list[FileRecord]) -> None:
        """put() for many rows in one transaction: all are written or none. Catch-up records
        100,000 rows through it, so it must cost about one batched statement per thousand rows,
        not one commit per row."""
        ...

    def claim_submit(self, record: FileRecord) -> FileRecord | None:
        """Record the intent to submit (sets record.state to "submitting") unless the row holds a
        task for the same content; None on success, else the row that holds it. Atomic across
        threads and processes: of many claims of the same content exactly one succeeds."""
        ...

    def put_unless_claimed(self, record: FileRecord) -> FileRecord | None:
        """Write `record` unless the row holds a task (TASK_STATES) for the same sha256, or for
        any content when record.sha256 is None; None if written, else the row that holds the
        task. Atomic like claim_submit: a write made before a claim can never wipe one out."""
        ...

    def update(self, path: Path | str, **changes: Any) -> FileRecord | None:
        """Change some columns of an existing row (read and written in one transaction); the new
        record, or None if there is no row (nothing is written then)."""
        ...

    def update_if(self, path: Path | str, expected_state: str, **changes: Any) -> bool:
        """update() only while the row is still in `expected_state`; True if changed. Atomic
        across processes: `runwatchd retry` uses it beside a running daemon."""
        ...

    def delete(self, path: Path | str) -> None:
        """Forget the row of `path` (nothing happens if there is none). Not checked against the
        transitions: any row may be forgotten (its file was deleted)."""
        ...

    def signatures(self) -> dict[str, Signature]:
        """path -> (state, size, mtime_ns, inode) for every row: the startup scan's memory."""
        ...

    def signature(self, path: Path | str) -> Signature | None:
        """signatures()[path] for one row, without loading the others."""
        ...

    def output_dirs(self) -> set[str]:
        """Every distinct output_dir a row names (generations downloaded or to be)."""
        ...

    def __iter__(self) -> Iterator[FileRecord]:
        """Every row (a snapshot taken when iteration starts)."""
        ...

    # -- leases (see the module docstring) --------------------------------------------------------

    @property
    def holder(self) -> str:
        """This handle's holder id: "<node>:<pid>:<tag>", fixed for the handle's life."""
        ...

    def lease(self, path: Path | str, seconds: float) -> str | None:
        """Lease `path` (a row need not exist) to this holder until now + `seconds`, or renew
        the lease it holds; None when this holder now holds it, else the node name of the live
        holder that does (nothing changes then). Atomic across processes and hosts: of many
        holders asking at once, one gets it. An expired lease, or one whose holder is proven
        dead, is taken over."""
        ...

    def release(self, path: Path | str) -> None:
        """Give up this holder's lease on `path` (nothing happens if another holds it)."""
        ...

    def heartbeat(self, seconds: float, *, in_flight: int = 0, version: str = "") -> None:
        """Say this holder lives: extend every lease it holds to now + `seconds` and record the
        beat (holders() shows it, with `in_flight` and `version`). The first beat registers the
        holder. A daemon beats every `seconds` / 3."""
        ...

    def take_orphans(self, states: Collection[str], seconds: float,
                     limit: int = 500) -> list[FileRecord]:
        """Rows in one of `states` that no live holder leases (no lease, an expired one, or a
        dead holder's), each now leased to this holder for `seconds`; at most `limit`. Atomic:
        of many holders asking at once, each row goes to one of them. This holder's own leases
        are not orphans."""
        ...

    def leave(self) -> None:
        """A clean stop: release every lease of this holder and forget it in holders(), so the
        others take its work over at once instead of after the leases expire."""
        ...
