"""[[folder]] share: parsed and checked with its key path, explained by check-config, and the
commands' store keyed by it (store/shared_paths.py) only when some folder names one."""

from __future__ import annotations

from pathlib import Path

import pytest

from runwatchd.cli.common import open_journal
from runwatchd.config import starter as config_text
from runwatchd.config.load import Config, load_config
from runwatchd.errors import ConfigError
from runwatchd.lifecycle.states import FileState
from runwatchd.store import FileRecord, open_store
from runwatchd.store.shared_paths import SharedPaths
from runwatchd.store.sqlite import SqliteStore


def load(tmp_path: Path, *folders: str) -> Config:
    text = f"[runway]\nstate_dir = '{tmp_path}/st'\n" + "".join(
        f"[[folder]]\n{f}\n" for f in folders)
    path = tmp_path / "runwatchd.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_a_folder_has_no_share_unless_it_names_one(tmp_path: Path) -> None:
    """share is kept as written; without it None (the store keys by absolute path)."""
    cfg = load(tmp_path, "path = 'a'\nshare = 'studio/hot'", "path = 'b'")
    assert ["studio/hot", None] == [f.share for f in cfg.folders]


@pytest.mark.parametrize(("share", "expected"), [
    ("''", "folder[0].share: must not be empty"),
    ("'/hot'", "folder[0].share: must not start or end with \"/\", got '/hot'"),
    ("'hot/'", "folder[0].share: must not start or end with \"/\", got 'hot/'"),
    ("'a/../b'", "folder[0].share: must not have an empty, \".\" or \"..\" part, got 'a/../b'"),
    ("'..'", "folder[0].share: must not have an empty, \".\" or \"..\" part, got '..'"),
    ('"a\\u0000b"', "folder[0].share: must not contain control characters (NUL, newline, ...)"),
    ("7", "folder[0].share: expected a string, got int"),
])
def test_bad_shares_are_problems_with_their_key_path(tmp_path: Path, share: str,
                                                     expected: str) -> None:
    """A share that is empty, slash-bounded, leaves by "..", holds NUL, or is no string."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f"path = 'a'\nshare = {share}")
    assert [expected] == caught.value.problems


def test_shares_are_unique_and_not_nested(tmp_path: Path) -> None:
    """Two folders of one share, or a share inside another, are problems of the later folder."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "path = 'a'\nshare = 'hot'", "path = 'b'\nshare = 'hot'",
             "path = 'c'\nshare = 'hot/sub'", "path = 'd'\nshare = 'cold'")
    assert ["folder[1].share: share 'hot' is named twice (folder[0] names 'hot')",
            "folder[2].share: share 'hot/sub' is inside share 'hot' (folder[0] names 'hot')",
            "folder[2].share: share 'hot/sub' is inside share 'hot' (folder[1] names 'hot')",
            ] == caught.value.problems


def test_check_config_says_how_the_store_names_each_folder(tmp_path: Path) -> None:
    """The summary names the share, or says the store uses the absolute path."""
    lines = config_text.explain(load(tmp_path, "path = 'a'\nshare = 'hot'", "path = 'b'"),
                                {"HOME": str(tmp_path)}).splitlines()
    assert "  share 'hot' (its files' names in the store)" in lines
    assert "  no share: the store names its files by their absolute paths" in lines


def test_the_commands_store_is_keyed_by_share_only_when_one_is_set(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """open_journal wraps the store in SharedPaths when a folder names a share, else not."""
    monkeypatch.delenv("RUNWATCHD_STORE_URL", raising=False)
    _, plain = open_journal(load(tmp_path, "path = 'a'"))
    plain.close()
    assert isinstance(plain, SqliteStore)
    _, shared = open_journal(load(tmp_path, "path = 'a'\nshare = 'hot'", "path = 'b'"))
    assert isinstance(shared, SharedPaths)
    shared.put(FileRecord(path=str(tmp_path / "a" / "x.jpg"), state=FileState.UPLOADED))
    shared.put(FileRecord(path=str(tmp_path / "b" / "y.jpg"), state=FileState.UPLOADED))
    shared.close()
    raw = open_store(tmp_path / "st")
    assert [str(tmp_path / "b" / "y.jpg"), "hot/x.jpg"] == sorted(r.path for r in raw)
    raw.close()
