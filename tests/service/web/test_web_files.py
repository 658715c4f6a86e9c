"""Tests for the files the page sends: thumbnails and outputs, by id, checked, nothing else."""

from __future__ import annotations

import os
from pathlib import Path

from web_helpers import Site

from runwatchd.cli.demo import make_png
from runwatchd.service.web.media import THUMB_MAX_BYTES
from runwatchd.service.web.view import file_id


def still(site: Site, name: str = "shot.png") -> Path:
    path = site.source.folders[0] / name
    make_png(path, width=16, height=16, seed=3)
    site.put(path, "uploaded")
    return path


def test_a_still_has_a_thumbnail_of_its_own_bytes(site: Site) -> None:
    """A PNG the store knows is served as image/png, inline, sandboxed, byte for byte."""
    path = still(site)
    reply = site.http.get(site.row(path)["thumb"])
    assert (200, "image/png", path.read_bytes()) == (
        reply.status_code, reply.headers["content-type"], reply.content)
    assert "default-src 'none'; sandbox" == reply.headers["content-security-policy"]
    assert reply.headers["content-disposition"].startswith('inline; filename="shot.png"')


def test_a_file_that_only_claims_to_be_an_image_gets_no_thumbnail(site: Site) -> None:
    """A .png holding HTML is not sent as a thumbnail: its first bytes are checked."""
    path = site.source.folders[0] / "fake.png"
    path.write_text("<html><script>alert(1)</script></html>" * 20, encoding="utf-8")
    site.put(path, "invalid")
    assert 404 == site.http.get(site.row(path)["thumb"]).status_code


def test_huge_stills_get_no_thumbnail(site: Site) -> None:
    """A still over the size cap is not sent as a thumbnail."""
    path = still(site, "big.png")
    with open(path, "r+b") as fh:
        fh.truncate(THUMB_MAX_BYTES + 1)
    assert 404 == site.http.get(site.row(path)["thumb"]).status_code


def test_rows_outside_the_watched_folders_send_nothing(site: Site, tmp_path: Path) -> None:
    """A row for a file outside every watched folder, or a symlink out of one, sends nothing."""
    outside = tmp_path / "private.png"
    make_png(outside, width=8, height=8, seed=1)
    site.put(outside, "uploaded")
    link = site.source.folders[0] / "link.png"
    link.symlink_to(outside)
    site.put(link, "uploaded")
    assert (404, 404) == (site.http.get(f"/api/files/{file_id(str(outside))}/thumb").status_code,
                          site.http.get(f"/api/files/{file_id(str(link))}/thumb").status_code)


def test_a_fifo_named_like_a_still_does_not_hang_the_server(site: Site) -> None:
    """A named pipe called .png is refused without blocking on its open."""
    path = site.source.folders[0] / "pipe.png"
    os.mkfifo(path)
    site.put(path, "invalid")
    assert 404 == site.http.get(f"/api/files/{file_id(str(path))}/thumb").status_code


def test_unknown_ids_and_outputs_are_404(site: Site) -> None:
    """An id the store does not know, or an output number past the list, is a 404."""
    path = still(site)
    fid = file_id(str(path))
    assert 404 == site.http.get(f"/api/files/{'0' * 24}/thumb").status_code
    assert 404 == site.http.get(f"/api/files/{fid}/outputs/0").status_code


def generated(site: Site, outputs: list[str], output_dir: Path | None = None) -> str:
    path = still(site, "gen.png")
    site.put(path, "succeeded", task_id="t", outputs=outputs,
             output_dir=str(output_dir) if output_dir else None)
    return file_id(str(path))


def test_outputs_are_served_by_id_with_their_media_type(site: Site) -> None:
    """An output listed by the row is sent as its media type, as a whole or one range."""
    renders = site.source.folders[0] / "renders"
    renders.mkdir()
    (renders / "gen.mp4").write_bytes(bytes(range(256)) * 4)
    fid = generated(site, ["renders/gen.mp4"], renders)
    whole = site.http.get(f"/api/files/{fid}/outputs/0")
    assert (200, "video/mp4", 1024, "bytes") == (
        whole.status_code, whole.headers["content-type"], len(whole.content),
        whole.headers["accept-ranges"])
    part = site.http.get(f"/api/files/{fid}/outputs/0", headers={"Range": "bytes=10-19"})
    assert (206, bytes(range(10, 20)), "bytes 10-19/1024") == (
        part.status_code, part.content, part.headers["content-range"])
    tail = site.http.get(f"/api/files/{fid}/outputs/0", headers={"Range": "bytes=-4"})
    assert bytes(range(252, 256)) == tail.content
    assert 416 == site.http.get(f"/api/files/{fid}/outputs/0",
                                headers={"Range": "bytes=5000-"}).status_code


def test_image_outputs_have_a_poster(site: Site) -> None:
    """An image output gets a thumbnail URL, and it serves the image."""
    renders = site.source.folders[0] / "renders"
    renders.mkdir()
    make_png(renders / "gen.png", width=8, height=8, seed=2)
    fid = generated(site, ["renders/gen.png"], renders)
    row = site.files()[0]
    assert f"/api/files/{fid}/outputs/0/thumb" == row["outputs"][0]["thumb"]
    assert "image/png" == site.http.get(row["outputs"][0]["thumb"]).headers["content-type"]


def test_outputs_in_an_absolute_output_dir_are_served(site: Site, tmp_path: Path) -> None:
    """A rule's output_dir outside the watched folder is the row's own: its outputs are sent."""
    renders = tmp_path / "renders"
    renders.mkdir()
    (renders / "gen.mp4").write_bytes(b"\0" * 600)
    fid = generated(site, [str(renders / "gen.mp4")], renders)
    assert 200 == site.http.get(f"/api/files/{fid}/outputs/0").status_code


def test_a_hostile_output_name_in_the_store_reaches_nothing(site: Site, tmp_path: Path) -> None:
    """An output listed as ../../secret (a tampered store) is outside every root: 404."""
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"s" * 600)
    fid = generated(site, ["../../secret.mp4", str(secret)])
    assert (404, 404) == (site.http.get(f"/api/files/{fid}/outputs/0").status_code,
                          site.http.get(f"/api/files/{fid}/outputs/1").status_code)


def test_unknown_output_types_download_instead_of_rendering(site: Site) -> None:
    """An output that is no media type is sent as an attachment of octet-stream."""
    renders = site.source.folders[0] / "renders"
    renders.mkdir()
    (renders / "gen.html").write_text("<script>alert(1)</script>", encoding="utf-8")
    fid = generated(site, ["renders/gen.html"], renders)
    reply = site.http.get(f"/api/files/{fid}/outputs/0")
    assert ("application/octet-stream", True) == (
        reply.headers["content-type"],
        reply.headers["content-disposition"].startswith("attachment;"))
