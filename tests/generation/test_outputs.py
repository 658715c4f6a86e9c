"""Tests for what a generation brings home (generation/outputs.py, the follower's downloads):
names unique per source and never over someone else's file, extensions from the content type,
downloads that always end, API text scrubbed of the secret, credits in the sidecar."""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_for

from runwatchd import errors
from runwatchd.cli.demo import make_png
from runwatchd.emulator import Emulator, bodies
from runwatchd.generation.follower import DOWNLOAD_CODE, MAX_DOWNLOAD_ATTEMPTS, TaskFollower
from runwatchd.generation.outputs import free_output, output_ext, output_name
from runwatchd.lifecycle import sidecar
from runwatchd.lifecycle.pauses import Pauses
from runwatchd.runway.client import RunwayClient
from runwatchd.runway.client_ref import ClientRef
from runwatchd.runway.download import Fetched
from runwatchd.runway.http_errors import ErrorMapper
from runwatchd.runway import schemas
from runwatchd.runway.retries import RetryPolicy
from runwatchd.store.record import FileRecord
from runwatchd.store.sqlite import SqliteStore

SECRET = "outputs-test-key-0123456789"
DONE = {"status": "SUCCEEDED", "output": ["https://cdn.test/o/0.mp4"], "cost": {"credits": 25}}
Fetch = Callable[[str, Callable[[str | None], Path]], Fetched]


def write_as(content_type: str | None, body: bytes = b"output") -> Fetch:
    """A download that lands `body` where the follower names it for `content_type`."""
    def fetch(url: str, choose: Callable[[str | None], Path]) -> Fetched:
        dest = choose(content_type)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(body)
        return Fetched(dest, len(body), content_type)
    return fetch


class FakeClient:
    """The follower's side of a RunwayClient: scripted task replies and downloads."""

    base_url = "http://127.0.0.1:9"

    def __init__(self, replies: list[dict[str, Any]], fetch: Fetch | None = None) -> None:
        self.replies = replies
        self.fetch = fetch or write_as("video/mp4")
        self.polls = self.downloads = 0
        self._mapper = ErrorMapper(SECRET)

    def get_task(self, task_id: str) -> dict[str, Any]:
        self.polls += 1
        return dict(self.replies[min(self.polls, len(self.replies)) - 1])

    def download_output(self, url: str, directory: Path,
                        choose: Callable[[str | None], Path]) -> Fetched:
        self.downloads += 1
        return self.fetch(url, choose)

    def scrub(self, text: str, limit: int = 2000) -> str:
        return self._mapper.scrub(text, limit)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[SqliteStore]:
    j = SqliteStore(tmp_path / "state" / "journal.sqlite3")
    yield j
    j.close()


def running(tmp_path: Path, journal: SqliteStore, name: str = "shot.png",
            outputs: list[str] | None = None) -> FileRecord:
    """A source file whose task was submitted: journal "running", outputs go to hot/renders."""
    path = tmp_path / "hot" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    make_png(path, seed=len(name))
    st = path.stat()
    record = FileRecord(path=str(path), state="running", size=st.st_size, mtime_ns=st.st_mtime_ns,
                        inode=st.st_ino, sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                        runway_uri="runway://upload/x", uploaded_at=1.7e9,
                        endpoint="image_to_video", task_id=f"task-{name}", task_status="PENDING",
                        rule_name="hot", output_dir=str(tmp_path / "hot" / "renders"),
                        outputs=outputs or [])
    journal.put(record)
    return record


def follow(client: Any, journal: SqliteStore, *records: FileRecord,
           state: str = "succeeded") -> TaskFollower:
    """Follow `records` until each reached `state` in the journal; a clock that leaps ahead makes
    every backoff due at once."""
    leaps = itertools.count(step=1000.0)
    follower = TaskFollower(ClientRef(client), journal, Pauses(), poll_interval=0.0, workers=1,
                            clock=lambda: next(leaps))
    follower.start()
    try:
        for r in records:
            follower.follow(Path(r.path), r.task_id or "", Path(r.output_dir or ""))
        assert wait_for(lambda: all(journal.get(r.path).state == state for r in records), 10), [
            journal.get(r.path) for r in records]
    finally:
        follower.stop()
    return follower


def task_of(record: FileRecord) -> dict[str, Any]:
    data = sidecar.read_sidecar(Path(record.path))
    assert data is not None
    return dict(data["task"])


@pytest.mark.parametrize(("content_type", "url", "endpoint", "expected"), [
    ("video/mp4", "https://c/x", "image_to_video", ".mp4"),
    ("video/quicktime", "https://c/x.mp4", "image_to_video", ".mov"),
    ("image/png; charset=binary", "https://c/x", "text_to_image", ".png"),
    ("image/jpeg", "https://c/x", "text_to_image", ".jpg"),
    ("image/x-exr", "https://c/x", "video_to_hdr", ".exr"),
    ("image/exr", "https://c/x", "video_to_hdr", ".exr"),
    ("audio/mpeg", "https://c/x", "sound_effect", ".mp3"),
    ("audio/wav", "https://c/x", "sound_effect", ".wav"),
    ("application/zip", "https://c/frames", "video_to_hdr", ".zip"),
    ("application/octet-stream", "https://c/a/x.WEBM?sig=1", "image_to_video", ".webm"),
    (None, "https://c/x.mov", "image_to_video", ".mov"),
    (None, "https://c/x.exe", "image_to_video", ".mp4"),   # never an unknown suffix
    (None, "https://c/x.runway.json", "text_to_image", ".png"),
    ("text/html", "https://c/x", "sound_effect", ".mp3"),
    (None, "https://c/x", "video_to_audio", ".mp3"),
    (None, "https://c/x", "generate/audio", ".mp3"),
    (None, "https://c/x", "generate/image", ".png"),
    (None, "https://c/x", "recipes/product_campaign_image", ".png"),
    (None, "https://c/x", "generate/video", ".mp4"),
])
def test_output_extension_comes_from_content_type_then_url_then_endpoint(
        content_type: str | None, url: str, endpoint: str, expected: str) -> None:
    """Content-Type first, else a known URL suffix, else the endpoint's default."""
    assert expected == output_ext(content_type, url, endpoint)


def test_output_names_keep_the_whole_source_name() -> None:
    """shot.jpg -> shot.jpg.mp4, then shot.jpg_2.mp4, shot.jpg_3.mp4."""
    assert ["shot.jpg.mp4", "shot.jpg_2.mp4", "shot.jpg_3.mp4"] == [
        output_name("shot.jpg", n, ".mp4") for n in (1, 2, 3)]


def test_a_name_held_by_a_dangling_symlink_is_skipped(tmp_path: Path) -> None:
    """A dangling symlink at the target name is someone else's: skipped, never written through."""
    (tmp_path / "shot.jpg.mp4").symlink_to(tmp_path / "elsewhere")
    assert (tmp_path / "shot.jpg_2.mp4", 2) == free_output(tmp_path, "shot.jpg", 1, ".mp4", set())
    assert not (tmp_path / "elsewhere").exists()


def test_three_sources_of_one_stem_get_three_outputs(tmp_path: Path,
                                                     journal: SqliteStore) -> None:
    """shot.jpg, shot.png and shot.webp in one folder: three distinct outputs, none lost."""
    records = [running(tmp_path, journal, n) for n in ("shot.jpg", "shot.png", "shot.webp")]
    follow(FakeClient([DONE]), journal, *records)
    assert [["renders/shot.jpg.mp4"], ["renders/shot.png.mp4"], ["renders/shot.webp.mp4"]] == [
        task_of(r)["outputs"] for r in records]
    assert ["shot.jpg.mp4", "shot.png.mp4", "shot.webp.mp4"] == sorted(
        p.name for p in (tmp_path / "hot" / "renders").iterdir())


def test_a_foreign_file_at_the_target_name_is_left_untouched(
        tmp_path: Path, journal: SqliteStore, caplog: pytest.LogCaptureFixture) -> None:
    """A file runwatchd did not write holds shot.png.mp4: the output goes to the next free name,
    said in the log, and the sidecar lists exactly the file written."""
    record = running(tmp_path, journal)
    renders = tmp_path / "hot" / "renders"
    renders.mkdir()
    (renders / "shot.png.mp4").write_bytes(b"the user's own")
    with caplog.at_level(logging.WARNING):
        follow(FakeClient([{**DONE, "output": ["https://c/0", "https://c/1"]}]), journal, record)
    assert (b"the user's own", ["renders/shot.png_2.mp4", "renders/shot.png_3.mp4"]) == (
        (renders / "shot.png.mp4").read_bytes(), task_of(record)["outputs"])
    assert b"output" == (renders / "shot.png_3.mp4").read_bytes()
    assert "is taken by a file runwatchd did not write" in caplog.text


def test_our_own_earlier_output_of_the_task_is_replaced(tmp_path: Path,
                                                        journal: SqliteStore) -> None:
    """An output this very task wrote before (journaled as it landed) is replaced, not skipped."""
    record = running(tmp_path, journal, outputs=["renders/shot.png.mp4"])
    renders = tmp_path / "hot" / "renders"
    renders.mkdir()
    (renders / "shot.png.mp4").write_bytes(b"first attempt")
    follow(FakeClient([DONE], write_as("video/mp4", b"again")), journal, record)
    assert (b"again", ["renders/shot.png.mp4"], ["shot.png.mp4"]) == (
        (renders / "shot.png.mp4").read_bytes(), task_of(record)["outputs"],
        sorted(p.name for p in renders.iterdir()))


def test_output_keeps_the_extension_its_content_type_gives(tmp_path: Path) -> None:
    """The emulator serves 0.mp4 as video/quicktime: the output is shot.png.mov."""
    with Emulator(api_secret=SECRET, task_seconds=0.05, pending_seconds=0.01) as emu, \
            RunwayClient(SECRET, emu.url, retry=RetryPolicy(max_attempts=2,
                                                            initial_delay=0.01)) as client:
        emu.tasks.output_type = "video/quicktime"
        journal = SqliteStore(tmp_path / "state" / "journal.sqlite3")
        try:
            shot = tmp_path / "hot" / "shot.png"
            shot.parent.mkdir()
            make_png(shot)
            up = client.upload(shot)
            task = client.create_task("image_to_video", {
                "model": "gen4.5", "promptImage": up.runway_uri, "promptText": "a shot",
                "ratio": "1280:720", "duration": 5})
            record = running(tmp_path, journal)
            record.task_id, record.runway_uri = task["id"], up.runway_uri
            record.sha256, record.size, record.mtime_ns = up.sha256, up.size, up.mtime_ns
            journal.put(record)
            follow(client, journal, record)
            assert (["renders/shot.png.mov"], 25, 25) == (
                task_of(record)["outputs"], task_of(record)["credits_estimated"],
                task_of(record)["credits"])
        finally:
            journal.close()


def test_a_refused_download_ends_the_task_failed_at_once(tmp_path: Path,
                                                         journal: SqliteStore) -> None:
    """DownloadRefused (a file:// URL, over the size cap): FAILED with the reason, no retry."""
    def refuse(url: str, choose: Callable[[str | None], Path]) -> Fetched:
        raise errors.DownloadRefused("cannot download: not an http(s) URL (file)")
    record = running(tmp_path, journal)
    client = FakeClient([DONE], refuse)
    follow(client, journal, record, state="task_failed")
    task = task_of(record)
    assert (1, "FAILED", DOWNLOAD_CODE, "cannot download: not an http(s) URL (file)") == (
        client.downloads, task["status"], task["failure_code"], task["failure"])
    assert (DOWNLOAD_CODE, "FAILED") == (journal.get(record.path).failure_code,
                                         journal.get(record.path).task_status)


def test_a_full_disk_waits_and_says_so_once(tmp_path: Path, journal: SqliteStore,
                                            caplog: pytest.LogCaptureFixture) -> None:
    """DiskFull: retried later (not failed), logged once for the task, then downloaded."""
    full = iter([True, True, True, False])

    def fetch(url: str, choose: Callable[[str | None], Path]) -> Fetched:
        if next(full):
            raise errors.DiskFull("not enough free space in renders")
        return write_as("video/mp4")(url, choose)
    record = running(tmp_path, journal)
    client = FakeClient([DONE], fetch)
    with caplog.at_level(logging.WARNING):
        follow(client, journal, record)
    assert (4, 1, ["renders/shot.png.mp4"]) == (
        client.downloads, caplog.text.count("not enough free space"), task_of(record)["outputs"])


def test_a_download_failing_again_and_again_ends_failed(tmp_path: Path,
                                                        journal: SqliteStore) -> None:
    """Network errors are retried, but MAX_DOWNLOAD_ATTEMPTS times at most: then FAILED."""
    def broken(url: str, choose: Callable[[str | None], Path]) -> Fetched:
        raise errors.NetworkError("GET cdn.test/o/0.mp4 failed: ReadTimeout")
    record = running(tmp_path, journal)
    client = FakeClient([DONE], broken)
    follow(client, journal, record, state="task_failed")
    task = task_of(record)
    assert (MAX_DOWNLOAD_ATTEMPTS, "FAILED", DOWNLOAD_CODE) == (
        client.downloads, task["status"], task["failure_code"])
    assert f"failed {MAX_DOWNLOAD_ATTEMPTS} times: GET cdn.test" in task["failure"]


@pytest.mark.parametrize("output", ["https://c/0.mp4", [{"url": "https://c/0.mp4"}], None, 7])
def test_an_output_that_is_not_a_list_of_urls_ends_failed(
        tmp_path: Path, journal: SqliteStore, output: object) -> None:
    """A SUCCEEDED task whose `output` is not a list of strings: FAILED with the reason."""
    record = running(tmp_path, journal)
    client = FakeClient([{"status": "SUCCEEDED", "output": output}])
    follow(client, journal, record, state="task_failed")
    task = task_of(record)
    assert (1, 0, "RUNWATCHD.OUTPUT") == (client.polls, client.downloads, task["failure_code"])
    assert "not a list of URLs" in task["failure"]


def test_failure_text_is_scrubbed_of_the_secret_and_capped(tmp_path: Path,
                                                           journal: SqliteStore) -> None:
    """A failure echoing the key (and megabytes of text): stored without the key, capped."""
    record = running(tmp_path, journal)
    follow(FakeClient([{"status": "FAILED", "failure": f"bad input, key {SECRET}\n" + "x" * 99999,
                        "failureCode": f"SAFETY.{SECRET}"}]), journal, record,
           state="task_failed")
    task, row = task_of(record), journal.get(record.path)
    assert (2000, "SAFETY.***") == (len(task["failure"]), task["failure_code"])
    assert task["failure"].startswith("bad input, key *** xxx")
    for text in (task["failure"], task["failure_code"], row.failure, row.failure_code, row.error,
                 Path(record.path + ".runway.json").read_text(encoding="utf-8")):
        assert SECRET not in (text or "")


def test_credits_are_kept_in_the_sidecar(tmp_path: Path, journal: SqliteStore) -> None:
    """estimatedCost while the task runs, cost once it ended: both in the sidecar's task block."""
    record = running(tmp_path, journal)
    replies = [{"status": "RUNNING", "estimatedCost": {"credits": 30}},
               {"status": "SUCCEEDED", "output": ["https://c/0.mp4"], "cost": {"credits": 0}}]
    follow(FakeClient(replies), journal, record)
    assert (30, 0) == (task_of(record)["credits_estimated"], task_of(record)["credits"])


def test_credits_that_are_not_whole_numbers_are_null(tmp_path: Path,
                                                     journal: SqliteStore) -> None:
    """A reply with credits true, "25" or a list records null, not the odd value."""
    record = running(tmp_path, journal)
    follow(FakeClient([{"status": "RUNNING", "estimatedCost": {"credits": True}},
                       {**DONE, "cost": {"credits": "25"}}]), journal, record)
    assert (None, None) == (task_of(record)["credits_estimated"], task_of(record)["credits"])


def test_a_rejected_key_while_downloading_pauses_instead_of_counting(
        tmp_path: Path, journal: SqliteStore) -> None:
    """A 401 from outputs on the API's own host is the key's problem: no attempt is counted."""
    rejected: list[errors.KeyRejected] = []
    outcomes = iter([errors.KeyRejected("your API key was rejected", 401)] * MAX_DOWNLOAD_ATTEMPTS)

    def fetch(url: str, choose: Callable[[str | None], Path]) -> Fetched:
        failure = next(outcomes, None)
        if failure is not None:
            raise failure
        return write_as("video/mp4")(url, choose)
    record = running(tmp_path, journal)
    leaps = itertools.count(step=1000.0)
    follower = TaskFollower(ClientRef(FakeClient([DONE], fetch)), journal, Pauses(),
                            poll_interval=0.0, workers=1, clock=lambda: next(leaps),
                            on_key_rejected=rejected.append)
    follower.start()
    try:
        follower.follow(Path(record.path), record.task_id or "", Path(record.output_dir or ""))
        assert wait_for(lambda: journal.get(record.path).state == "succeeded", 10)
    finally:
        follower.stop()
    assert (MAX_DOWNLOAD_ATTEMPTS, ["renders/shot.png.mp4"]) == (
        len(rejected), task_of(record)["outputs"])


def test_each_endpoint_default_extension_is_what_the_emulator_makes() -> None:
    """For every endpoint, an output without a type or suffix is named by the kind the endpoint
    makes (the emulator's output kinds, kept apart from ours, agree)."""
    made = {e: "." + bodies.output_ext(e) for e in schemas.default().endpoints()}
    assert made == {e: output_ext(None, "https://c/x", e) for e in made}
