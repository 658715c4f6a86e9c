"""Mounts: what filesystem holds a folder, and so how it can be watched and what that costs.

inotify is blind to changes that other machines make on a network filesystem (NFS, SMB, sshfs
and the like), so "auto" polls there; the mount type comes from /proc/self/mountinfo. A
recursive inotify watch needs one watch per directory, counted against
fs.inotify.max_user_watches.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# Filesystems where inotify does not see changes made by other machines (or the VM host).
NETWORK_FS: frozenset[str] = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "coda", "9p", "virtiofs", "vboxsf",
    "ceph", "fuse.ceph", "glusterfs", "fuse.glusterfs", "lustre", "gpfs", "beegfs", "ocfs2",
    "davfs", "fuse.davfs", "fuse.davfs2", "sshfs", "fuse.sshfs", "fuse.rclone", "fuse.s3fs",
    "fuse.gcsfuse", "fuse.goofys", "fuse.juicefs", "fuse.smbnetfs", "fuse.vmhgfs-fuse",
    "fuse.grpcfuse",
})

OBSERVER_KINDS = ("inotify", "polling")

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \040, \011, \012, \134.
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def _mounts(mountinfo_text: str) -> list[tuple[str, str]]:
    mounts = []
    for line in mountinfo_text.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        mounts.append((_unescape(fields[4]), right.split()[0]))
    return mounts


def _existing(path: Path) -> Path:
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p.resolve()


def fs_type(path: Path, mountinfo_text: str | None = None) -> str:
    """The filesystem type of the mount holding `path` ("ext4", "nfs4", ...; "unknown" if unsure)."""
    if mountinfo_text is None:
        try:
            mountinfo_text = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "unknown"
    target = str(_existing(path))
    best, best_len = "unknown", -1
    for mount_point, fstype in _mounts(mountinfo_text):
        inside = (
            target == mount_point
            or mount_point == "/"
            or target.startswith(mount_point.rstrip("/") + "/")
        )
        # ">=": a later line for the same mount point is a mount on top of the earlier one.
        if inside and len(mount_point) >= best_len:
            best, best_len = fstype, len(mount_point)
    return best


def choose_observer(path: Path, requested: str, mountinfo_text: str | None = None) -> str:
    """"inotify" or "polling": "auto" polls on network filesystems, where inotify is blind."""
    if requested in OBSERVER_KINDS:
        return requested
    if requested != "auto":
        raise ValueError(f"observer must be auto, inotify or polling, not {requested!r}")
    fstype = fs_type(path, mountinfo_text)
    return "polling" if fstype in NETWORK_FS else "inotify"


def inotify_watch_limit() -> int | None:
    """fs.inotify.max_user_watches, or None where it cannot be read."""
    try:
        return int(Path("/proc/sys/fs/inotify/max_user_watches").read_text().strip())
    except (OSError, ValueError):
        return None


def count_dirs(root: Path, recursive: bool, limit: int) -> int:
    """Directories an inotify watch of `root` needs (root included), counting no further than limit."""
    count = 1
    if not recursive or count >= limit:
        return min(count, limit)
    stack = [os.fspath(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        if not entry.is_dir(follow_symlinks=False):
                            continue
                    except OSError:
                        continue
                    count += 1
                    if count >= limit:
                        return limit
                    stack.append(entry.path)
        except OSError:
            continue
    return count
