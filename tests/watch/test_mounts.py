"""Mount detection from mountinfo text, the observer choice it drives, and inotify budgets."""

from __future__ import annotations

from pathlib import Path

import pytest

from runwatchd.watch.mounts import choose_observer, count_dirs, fs_type, inotify_watch_limit


def mountinfo(tmp_path: Path) -> str:
    for d in ("nas/local", "my share", "nasx", "over"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
    t = str(tmp_path)
    return "\n".join([
        "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw",
        f"30 22 0:50 / {t}/nas rw,relatime shared:5 - nfs4 srv:/export rw,vers=4.2",
        f"31 30 8:1 / {t}/nas/local rw - ext4 /dev/sdb1 rw",
        f"32 22 0:51 / {t.replace(' ', chr(92) + '040')}/my\\040share rw - cifs //srv/share rw",
        f"33 22 0:52 / {t}/nasx rw - tmpfs tmpfs rw",
        f"34 22 0:53 / {t}/over rw - ext4 /dev/sdc rw",
        f"35 34 0:54 / {t}/over rw - fuse.sshfs host: rw",
    ])


def test_fs_type_longest_prefix(tmp_path: Path) -> None:
    """The deepest mount point holding the path wins; /x/nasx is not under /x/nas."""
    text = mountinfo(tmp_path)
    assert "nfs4" == fs_type(tmp_path / "nas", text)
    assert "nfs4" == fs_type(tmp_path / "nas" / "a.jpg", text)
    assert "ext4" == fs_type(tmp_path / "nas" / "local", text)
    assert "tmpfs" == fs_type(tmp_path / "nasx", text)
    assert "ext4" == fs_type(tmp_path, text)


def test_fs_type_unescapes_and_walks_up(tmp_path: Path) -> None:
    """\\040 in a mount point is a space; a path that does not exist yet uses its parent's mount."""
    text = mountinfo(tmp_path)
    assert "cifs" == fs_type(tmp_path / "my share" / "new" / "dir", text)


def test_fs_type_last_mount_on_top_wins(tmp_path: Path) -> None:
    """A later mount over the same mount point hides the earlier one."""
    assert "fuse.sshfs" == fs_type(tmp_path / "over", mountinfo(tmp_path))


def test_fs_type_resolves_symlinks(tmp_path: Path) -> None:
    """A symlink into a NAS mount is on the NAS."""
    text = mountinfo(tmp_path)
    (tmp_path / "link").symlink_to(tmp_path / "nas")
    assert "nfs4" == fs_type(tmp_path / "link", text)


def test_fs_type_of_real_mount(tmp_path: Path) -> None:
    """Reading the real /proc/self/mountinfo gives a type for a temp dir."""
    assert "unknown" != fs_type(tmp_path)


def test_choose_observer(tmp_path: Path) -> None:
    """auto polls on network filesystems and uses inotify elsewhere; explicit choices stand."""
    text = mountinfo(tmp_path)
    assert "polling" == choose_observer(tmp_path / "nas", "auto", text)
    assert "polling" == choose_observer(tmp_path / "my share", "auto", text)
    assert "inotify" == choose_observer(tmp_path / "nas" / "local", "auto", text)
    assert "inotify" == choose_observer(tmp_path / "nas", "inotify", text)
    assert "polling" == choose_observer(tmp_path, "polling", text)
    with pytest.raises(ValueError, match="fanotify"):
        choose_observer(tmp_path, "fanotify", text)


def test_inotify_watch_limit() -> None:
    """On Linux the watch limit is a positive number."""
    limit = inotify_watch_limit()
    assert limit is not None and limit > 0


def test_count_dirs(tmp_path: Path) -> None:
    """Counts the root and every real subdirectory, not symlinks; stops at the limit."""
    for d in ("a/b/c", "d", "e"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "a" / "loop").symlink_to(tmp_path)
    (tmp_path / "f.jpg").write_bytes(b"x")
    assert 6 == count_dirs(tmp_path, True, 1000)
    assert 1 == count_dirs(tmp_path, False, 1000)
    assert 3 == count_dirs(tmp_path, True, 3)
