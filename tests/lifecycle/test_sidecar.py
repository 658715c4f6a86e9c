"""Tests for runwatchd.lifecycle.sidecar: shape, atomic write, reading, validation, matching,
expiry."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from runwatchd import fsutil
from runwatchd.lifecycle import sidecar

SHA = "ab" * 32
UPLOADED = datetime(2026, 11, 24, 10, 0, 0, 734000, tzinfo=UTC)


def make(media: Path, **kw: object) -> dict:
    args: dict = dict(runway_uri="runway://upload/abc", uploaded_at=UPLOADED, size=1234,
                      mtime_ns=1_700_000_000_123_456_789, sha256=SHA)
    args.update(kw)
    return sidecar.build_sidecar(media, **args)


def test_sidecar_path(tmp_path: Path) -> None:
    """shot.jpg gets shot.jpg.runway.json beside it."""
    assert tmp_path / "shot.jpg.runway.json" == sidecar.sidecar_path(tmp_path / "shot.jpg")


def test_build_exact_shape(tmp_path: Path) -> None:
    """Without a task the sidecar is exactly design.md's shape, times in UTC seconds."""
    expected = {
        "schema": 1,
        "runway_uri": "runway://upload/abc",
        "uploaded_at": "2026-11-24T10:00:00Z",
        "expires_at": "2026-11-25T10:00:00Z",
        "file": {"name": "shot.jpg", "size": 1234, "mtime_ns": 1_700_000_000_123_456_789,
                 "sha256": SHA},
    }
    assert expected == make(tmp_path / "shot.jpg")


def test_build_converts_to_utc(tmp_path: Path) -> None:
    """A non-UTC upload time is written in UTC."""
    local = datetime(2026, 11, 24, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    data = make(tmp_path / "a.jpg", uploaded_at=local)
    assert ("2026-11-24T10:00:00Z", "2026-11-25T10:00:00Z") == (data["uploaded_at"],
                                                                data["expires_at"])


def test_build_rejects_naive_time(tmp_path: Path) -> None:
    """A naive upload time is a bug, not a guess."""
    with pytest.raises(ValueError):
        make(tmp_path / "a.jpg", uploaded_at=datetime(2026, 1, 1))


def test_build_with_task_fills_every_key(tmp_path: Path) -> None:
    """A task gets every key of the documented shape, defaults filled."""
    data = make(tmp_path / "a.jpg", task={"id": "t1", "endpoint": "image_to_video",
                                          "rule": "stills", "status": "RUNNING"})
    assert {"id": "t1", "endpoint": "image_to_video", "rule": "stills", "status": "RUNNING",
            "outputs": [], "failure": None, "failure_code": None} == data["task"]


def test_build_extra_keys(tmp_path: Path) -> None:
    """Extra keys are added; overwriting a standard key is refused."""
    data = make(tmp_path / "a.jpg", extra={"host": "farm1"})
    with pytest.raises(ValueError):
        make(tmp_path / "a.jpg", extra={"runway_uri": "x"})
    assert "farm1" == data["host"]


def test_write_then_read_roundtrip(tmp_path: Path) -> None:
    """A written sidecar reads back equal, as indented UTF-8 with a trailing newline."""
    media = tmp_path / "été.jpg"
    data = make(media, task={"id": "t1", "outputs": ["renders/été.mp4"]})
    path = sidecar.write_sidecar(media, data)
    text = path.read_text(encoding="utf-8")
    assert (data, True, True, ["été.jpg.runway.json"]) == (
        sidecar.read_sidecar(media), text.endswith("}\n"), "\n  \"schema\": 1," in text,
        os.listdir(tmp_path))


def test_write_refuses_invalid(tmp_path: Path) -> None:
    """Writing an invalid sidecar is refused and leaves nothing behind."""
    with pytest.raises(ValueError):
        sidecar.write_sidecar(tmp_path / "a.jpg", {"schema": 1})
    assert [] == os.listdir(tmp_path)


def test_read_absent_is_none(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """No sidecar gives None, silently."""
    with caplog.at_level(logging.WARNING):
        assert None is sidecar.read_sidecar(tmp_path / "a.jpg")
    assert [] == caplog.records


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b"[]", b'{"schema": 1}', b""])
def test_read_corrupt_is_none_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                           content: bytes) -> None:
    """A corrupt or invalid sidecar gives None and one warning naming it."""
    sidecar.sidecar_path(tmp_path / "a.jpg").write_bytes(content)
    with caplog.at_level(logging.WARNING):
        result = sidecar.read_sidecar(tmp_path / "a.jpg")
    assert (None, 1, True) == (result, len(caplog.records),
                               "a.jpg.runway.json" in caplog.records[0].getMessage())


def test_read_oversized_is_none(tmp_path: Path) -> None:
    """A huge file named like a sidecar is not read into memory."""
    sidecar.sidecar_path(tmp_path / "a.jpg").write_bytes(b" " * (sidecar.MAX_SIDECAR_BYTES + 1))
    assert None is sidecar.read_sidecar(tmp_path / "a.jpg")


def test_validate_lists_every_problem() -> None:
    """Each bad field is reported with its key."""
    bad = {"schema": "1", "runway_uri": "", "uploaded_at": "yesterday", "expires_at": 5,
           "file": {"name": "", "size": -1, "mtime_ns": True, "sha256": "XYZ"},
           "task": {"id": 7, "outputs": "a.mp4"}}
    keys = [p.split(":")[0] for p in sidecar.validate_sidecar(bad)]
    assert ["schema", "runway_uri", "uploaded_at", "expires_at", "file.name", "file.size",
            "file.mtime_ns", "file.sha256", "task.id", "task.outputs"] == keys


def test_validate_accepts_built(tmp_path: Path) -> None:
    """What build_sidecar makes is valid, with or without a task."""
    assert ([], []) == (sidecar.validate_sidecar(make(tmp_path / "a.jpg")),
                        sidecar.validate_sidecar(make(tmp_path / "a.jpg", task={"id": "t"})))


def test_validate_non_object() -> None:
    """A JSON array is not a sidecar."""
    assert ["expected a JSON object, got list"] == sidecar.validate_sidecar([])


def test_matches(tmp_path: Path) -> None:
    """A sidecar matches only the same name, size and mtime_ns."""
    media = tmp_path / "a.jpg"
    media.write_bytes(b"x" * 600)
    st = media.stat()
    data = make(media, size=st.st_size, mtime_ns=st.st_mtime_ns)
    os.utime(media, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert (True, False, False) == (sidecar.sidecar_matches(data, st, "a.jpg"),
                                    sidecar.sidecar_matches(data, st, "b.jpg"),
                                    sidecar.sidecar_matches(data, media.stat(), "a.jpg"))


def test_uri_is_stale_from_an_hour_before_it_expires() -> None:
    """A URI is sent until an hour before Runway's 24 h expiry, and not from then on."""
    uploaded = UPLOADED.timestamp()
    hour = 3600.0
    assert (False, True, True) == (
        sidecar.uri_stale(uploaded, uploaded + 23 * hour - 1),
        sidecar.uri_stale(uploaded, uploaded + 23 * hour),
        sidecar.uri_stale(uploaded, uploaded + 24 * hour),
    )


def test_write_replaces_the_sidecar_atomically(tmp_path: Path) -> None:
    """A new sidecar is a new file renamed over the old one: a reader holding the old one open
    never sees it half written, and no temp file is left."""
    media = tmp_path / "a.jpg"
    path = sidecar.write_sidecar(media, make(media, runway_uri="runway://upload/old"))
    with open(path, "rb") as old:
        sidecar.write_sidecar(media, make(media, runway_uri="runway://upload/new"))
        assert ("runway://upload/old", "runway://upload/new") == (
            json.loads(old.read())["runway_uri"], sidecar.read_sidecar(media)["runway_uri"])
        assert os.fstat(old.fileno()).st_ino != path.stat().st_ino
    assert [path] == list(tmp_path.glob("*.runway.json"))
    assert [] == [p for p in tmp_path.iterdir() if fsutil.TEMP_MARK in p.name]
