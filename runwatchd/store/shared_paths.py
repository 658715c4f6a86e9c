"""SharedPaths: a Store that names files by share, not by where this host mounts the share.

Hosts may mount one share at different places (/mnt/nas/hot here, /Volumes/hot there); a
folder's `share` name (config: `[[folder]] share = "hot"`) is its identity in the store. This
adapter wraps any Store and turns every path going in into a key and every key coming out into
this host's path again:

    /mnt/nas/hot/day 1/shot.jpg   <->   "hot/day 1/shot.jpg"   (root /mnt/nas/hot, share "hot")

A key is the share name, "/", and the path relative to the folder's root, "/"-separated. It never
starts with "/" (a share name may not), so it can never be taken for an absolute path. Paths not
under a shared root pass through unchanged (so a folder without a share keeps absolute-path rows,
exactly as before), and so do keys of a share this host does not mount: such a row names a file
elsewhere, and a caller that needs a local file must skip a path that is not absolute.

Translated: FileRecord.path, FileRecord.output_dir, and absolute entries of FileRecord.outputs
(the follower stores names relative to output_dir; an absolute one is a file outside it).
A path with a ".." part is never translated (it is not lexically below the root), nor is a key
with an empty, "." or ".." part turned into a local path (a hostile row must not name a file
outside the share's root). The names stay str throughout: an undecodable name (a str with
surrogates) becomes a key with the same surrogates, which the backend stores as it did the path.

A row keyed by the absolute path of a file under a shared root was written before its folder had
a share: get() by that path finds the share key, never it, so the reads that hand out paths
(in_state, iteration, signatures, recent_errors, take_orphans) leave it out too, and every read
agrees with get(). Its file is then unknown: a catch-up scan adopts it from its sidecar (no new
upload). counts() is the inner store's and still counts it.

take_orphans() keeps only rows this host can reach (an absolute path or a share it mounts); the
others' leases are released at once, or this holder's heartbeat would keep them for ever.

Methods that fill in the caller's record (put, put_many, claim_submit, put_unless_claimed set
updated_at and state) write to a translated copy, then copy every column but the paths back.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from runwatchd.store.base import HolderInfo, OwnerInfo, Signature, Store
from runwatchd.store.record import FileRecord

SEP = "/"


def share_problem(name: object) -> str | None:
    """Why `name` cannot be a share name, or None. Checked by the config and by SharedPaths."""
    if not isinstance(name, str):
        return f"expected a string, got {type(name).__name__}"
    if not name.strip():
        return "must not be empty"
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        return "must not contain control characters (NUL, newline, ...)"
    if name.startswith(SEP) or name.endswith(SEP):
        return f'must not start or end with "/", got {name!r}'
    if any(part in ("", ".", "..") for part in name.split(SEP)):
        return f'must not have an empty, "." or ".." part, got {name!r}'
    return None


def shares_problem(names: Collection[str]) -> str | None:
    """Why these share names cannot be used together, or None: they must be unique and none
    inside another ("a" and "a/b" would make the key "a/b/x" mean two files)."""
    seen = sorted(names)
    for i, name in enumerate(seen):
        for other in seen[i + 1:]:
            if other == name:
                return f"share {name!r} is named twice"
            if other.startswith(name + SEP):
                return f"share {other!r} is inside share {name!r}"
    return None


class SharedPaths:
    """A Store (store/base.py) over `inner` whose keys under the roots of `shares` (local root
    directory -> share name) are share-relative. Owns `inner`: close() closes it."""

    def __init__(self, inner: Store, shares: Mapping[Path, str]) -> None:
        problems = [f"{root}: {why}" for root, name in shares.items()
                    if (why := share_problem(name)) is not None]
        problems += [f"{root}: not an absolute path" for root in shares
                     if not Path(root).is_absolute()]
        if (why := shares_problem(list(shares.values()))) is not None:
            problems.append(why)
        if problems:
            raise ValueError("; ".join(problems))
        self._inner = inner
        roots = [(os.path.normpath(r), n) for r, n in shares.items()]
        # (root, root + "/", share name), the deepest root first: nested folders belong to the
        # most specific one.
        self._by_root = sorted(((r, os.path.join(r, ""), n) for r, n in roots),
                               key=lambda rpn: len(Path(rpn[0]).parts), reverse=True)
        # (share name, root, root + "/")
        self._by_share = [(n, r, os.path.join(r, "")) for r, n in roots]

    # -- the translation -------------------------------------------------------------------------

    def key(self, path: Path | str) -> Path | str:
        """The store key of the local `path`: share-relative under a shared root, else `path`
        itself, untouched (so the inner store sees exactly what it saw without shares). String
        work, not pathlib: it runs for every row of a 100,000-row catch-up."""
        text = os.fspath(path)
        if not text.startswith(SEP):
            return path  # already a key (or a relative path, which no root covers)
        for root, prefix, name in self._by_root:
            if text == root:
                return name
            if text.startswith(prefix):
                rest = text[len(prefix):]
                # "a//b", "a/./b" or "a/../b": not lexically below the root (or not normalised).
                if any(part in ("", ".", "..") for part in rest.split(SEP)):
                    return path
                return name + SEP + rest
        return path

    def local(self, key: str) -> str:
        """This host's path for the store key `key`; `key` itself when it is an absolute path,
        names a share this host does not mount, or has a part that would leave the root."""
        if key.startswith(SEP):
            return key
        for name, root, prefix in self._by_share:
            if key == name:
                return root
            if key.startswith(name + SEP):
                rest = key[len(name) + 1:]
                if any(part in ("", ".", "..") for part in rest.split(SEP)):
                    return key
                return prefix + rest
        return key

    def _key_text(self, path: str | None) -> str | None:
        return None if path is None else str(self.key(path))

    def _record_in(self, record: FileRecord) -> FileRecord:
        """`record` with keys for paths (itself when nothing changes)."""
        path, output_dir = self._key_text(record.path), self._key_text(record.output_dir)
        outputs = [str(self.key(o)) for o in record.outputs] if record.outputs else record.outputs
        if path == record.path and output_dir == record.output_dir and outputs == record.outputs:
            return record
        keyed = copy.copy(record)  # dataclasses.replace costs 4x: it re-runs __init__
        keyed.path, keyed.output_dir, keyed.outputs = path or record.path, output_dir, outputs
        return keyed

    def _record_out(self, record: FileRecord | None) -> FileRecord | None:
        return None if record is None else self._place(record)

    def _place(self, record: FileRecord) -> FileRecord:
        """`record` with this host's paths for keys (changed in place: it is the caller's)."""
        record.path = self.local(record.path)
        if record.output_dir is not None:
            record.output_dir = self.local(record.output_dir)
        record.outputs = [self.local(o) if self._is_key_of_share(o) else o
                          for o in record.outputs]
        return record

    def _legacy(self, stored: str) -> bool:
        """Whether `stored` (a key as stored) is the absolute path of a file under a shared
        root: a row from before its folder had a share, which get() never finds."""
        return stored.startswith(SEP) and self.key(stored) != stored

    def _current(self, records: list[FileRecord]) -> list[FileRecord]:
        return [self._place(r) for r in records if not self._legacy(r.path)]

    def _is_key_of_share(self, text: str) -> bool:
        # An output relative to output_dir ("shot.jpg.mp4") is no key: only one naming a share.
        return any(text == name or text.startswith(name + SEP) for name, _, _ in self._by_share)

    def _changes_in(self, changes: dict[str, Any]) -> dict[str, Any]:
        out = dict(changes)
        for name in ("path", "output_dir"):
            if isinstance(out.get(name), str):
                out[name] = str(self.key(out[name]))
        if isinstance(out.get("outputs"), list):
            out["outputs"] = [str(self.key(o)) if isinstance(o, str) else o
                              for o in out["outputs"]]
        return out

    @staticmethod
    def _copy_back(written: FileRecord, caller: FileRecord) -> None:
        """What the inner store filled in on `written` (updated_at, state) onto the caller's
        record, whose paths stay this host's."""
        if written is not caller:
            paths = caller.path, caller.output_dir, caller.outputs
            vars(caller).update(vars(written))
            caller.path, caller.output_dir, caller.outputs = paths

    # -- StoreView ---------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        return self._inner.counts()

    def recent_errors(self, limit: int = 10) -> list[FileRecord]:
        return self._current(self._inner.recent_errors(limit))

    def in_state(self, *states: str) -> list[FileRecord]:
        return self._current(self._inner.in_state(*states))

    def owner(self) -> OwnerInfo | None:
        return self._inner.owner()

    def holders(self) -> list[HolderInfo]:
        return self._inner.holders()

    def close(self) -> None:
        self._inner.close()

    # -- Store -------------------------------------------------------------------------------------

    def take_ownership(self) -> bool:
        return self._inner.take_ownership()

    def check_intact(self) -> str | None:
        return self._inner.check_intact()

    def get(self, path: Path | str) -> FileRecord | None:
        return self._record_out(self._inner.get(self.key(path)))

    def put(self, record: FileRecord) -> None:
        written = self._record_in(record)
        self._inner.put(written)
        self._copy_back(written, record)

    def put_many(self, records: list[FileRecord]) -> None:
        written = [self._record_in(r) for r in records]
        self._inner.put_many(written)
        for one, caller in zip(written, records):
            self._copy_back(one, caller)

    def claim_submit(self, record: FileRecord) -> FileRecord | None:
        written = self._record_in(record)
        holder = self._inner.claim_submit(written)
        self._copy_back(written, record)
        return self._record_out(holder)

    def put_unless_claimed(self, record: FileRecord) -> FileRecord | None:
        written = self._record_in(record)
        holder = self._inner.put_unless_claimed(written)
        self._copy_back(written, record)
        return self._record_out(holder)

    def update(self, path: Path | str, **changes: Any) -> FileRecord | None:
        return self._record_out(self._inner.update(self.key(path), **self._changes_in(changes)))

    def update_if(self, path: Path | str, expected_state: str, **changes: Any) -> bool:
        return self._inner.update_if(self.key(path), expected_state, **self._changes_in(changes))

    def delete(self, path: Path | str) -> None:
        self._inner.delete(self.key(path))

    def signatures(self) -> dict[str, Signature]:
        return {self.local(key): signature
                for key, signature in self._inner.signatures().items() if not self._legacy(key)}

    def signature(self, path: Path | str) -> Signature | None:
        return self._inner.signature(self.key(path))

    def output_dirs(self) -> set[str]:
        return {self.local(d) for d in self._inner.output_dirs()}

    def __iter__(self) -> Iterator[FileRecord]:
        for record in self._inner:
            if not self._legacy(record.path):
                yield self._place(record)

    # -- leases ----------------------------------------------------------------------------------

    @property
    def holder(self) -> str:
        return self._inner.holder

    def lease(self, path: Path | str, seconds: float) -> str | None:
        return self._inner.lease(self.key(path), seconds)

    def release(self, path: Path | str) -> None:
        self._inner.release(self.key(path))

    def heartbeat(self, seconds: float, *, in_flight: int = 0, version: str = "") -> None:
        self._inner.heartbeat(seconds, in_flight=in_flight, version=version)

    def take_orphans(self, states: Collection[str], seconds: float,
                     limit: int = 500) -> list[FileRecord]:
        reachable = []
        for record in self._inner.take_orphans(states, seconds, limit):
            if self._legacy(record.path) or not self._place(record).path.startswith(SEP):
                self._inner.release(record.path)  # a key: _place left it as it was
            else:
                reachable.append(record)
        return reachable

    def leave(self) -> None:
        self._inner.leave()
