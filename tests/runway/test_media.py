"""Tests for runwatchd.runway.media: media kinds and the local file checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runwatchd import errors
from runwatchd.runway import media


def write(path: Path, size: int) -> Path:
    path.write_bytes(b"\0" * size)
    return path


@pytest.mark.parametrize(
    ("name", "kind"),
    [("a.jpg", "image"), ("a.JPEG", "image"), ("a.webp", "image"), ("a.MOV", "video"),
     ("a.webm", "video"), ("a.mp3", "audio"), ("a.m4a", "audio"), ("a.gif", None), ("a", None)],
)
def test_media_kind(name: str, kind: str | None) -> None:
    """Kinds come from the extension, case-insensitively; unknown ones give None."""
    assert kind == media.media_kind(Path(name))


def test_every_media_type_has_a_kind() -> None:
    """Every supported extension maps to image, video or audio."""
    assert {"image", "video", "audio"} == {media.media_kind(Path("x" + s)) for s in media.MEDIA_TYPES}


def test_valid_file_returns_stat(tmp_path: Path) -> None:
    """A readable regular file within the limits passes and its stat comes back."""
    path = write(tmp_path / "shot.JPG", 600)
    assert 600 == media.check_file(path).st_size


def test_unsupported_type(tmp_path: Path) -> None:
    """A .gif is refused with one line naming the file and the supported types."""
    path = write(tmp_path / "shot.gif", 600)
    with pytest.raises(errors.InvalidFile) as info:
        media.check_file(path)
    assert str(info.value).startswith("shot.gif: unsupported file type '.gif' (supported: .jpg, ")


def test_too_small(tmp_path: Path) -> None:
    """A file below 512 bytes is refused with its size."""
    path = write(tmp_path / "tiny.jpg", 300)
    with pytest.raises(errors.InvalidFile) as info:
        media.check_file(path)
    assert "tiny.jpg: 300 bytes is below Runway's minimum of 512 bytes" == str(info.value)


def test_exact_limits_pass(tmp_path: Path) -> None:
    """Exactly MIN_SIZE and exactly MAX_SIZE (sparse) are accepted."""
    small = write(tmp_path / "min.png", media.MIN_SIZE)
    big = tmp_path / "max.mp4"
    with open(big, "wb") as f:
        f.truncate(media.MAX_SIZE)
    assert (media.MIN_SIZE, media.MAX_SIZE) == (media.check_file(small).st_size,
                                                media.check_file(big).st_size)


def test_too_large(tmp_path: Path) -> None:
    """One byte above 200 MiB is refused, naming both sizes exactly."""
    big = tmp_path / "big.mp4"
    with open(big, "wb") as f:
        f.truncate(media.MAX_SIZE + 1)
    with pytest.raises(errors.InvalidFile) as info:
        media.check_file(big)
    assert ("big.mp4: 200.0 MiB (209715201 bytes) is above Runway's maximum of 200 MiB "
            "(209715200 bytes)") == str(info.value)


def test_directory(tmp_path: Path) -> None:
    """A directory named like media is not a regular file."""
    (tmp_path / "dir.jpg").mkdir()
    with pytest.raises(errors.InvalidFile) as info:
        media.check_file(tmp_path / "dir.jpg")
    assert "dir.jpg: not a regular file (directory)" == str(info.value)


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """A FIFO is rejected by its type before any open (which could block forever)."""
    os.mkfifo(tmp_path / "pipe.mp4")
    with pytest.raises(errors.InvalidFile) as info:
        media.check_file(tmp_path / "pipe.mp4")
    assert "pipe.mp4: not a regular file (named pipe)" == str(info.value)


def test_missing(tmp_path: Path) -> None:
    """A missing file says so."""
    with pytest.raises(errors.InvalidFile) as info:
        media.check_file(tmp_path / "gone.wav")
    assert "gone.wav: no such file" == str(info.value)


def test_broken_symlink(tmp_path: Path) -> None:
    """A dangling symlink is reported as such."""
    (tmp_path / "link.wav").symlink_to(tmp_path / "nowhere.wav")
    with pytest.raises(errors.InvalidFile) as info:
        media.check_file(tmp_path / "link.wav")
    assert "link.wav: no such file (broken symlink)" == str(info.value)


def test_symlink_to_file_is_followed(tmp_path: Path) -> None:
    """A symlink to a valid file passes with the target's stat."""
    target = write(tmp_path / "real.flac", 1000)
    (tmp_path / "link.flac").symlink_to(target)
    assert target.stat().st_ino == media.check_file(tmp_path / "link.flac").st_ino


def test_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file the daemon may not open is refused with the OS reason."""
    path = write(tmp_path / "x.jpg", 600)

    def denied(*args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(media.os, "open", denied)
    with pytest.raises(errors.InvalidFile) as info:
        media.check_file(path)
    assert "x.jpg: cannot read (Permission denied)" == str(info.value)
