"""Tests for runwatchd.lifecycle.processor: upload -> sidecar -> submit at most once, on the emulator.

Processor-level tests call `process()` directly; the crash-point tests run a scan-mode Daemon,
"crash" it at one point and start a fresh Daemon on the same state directory. A crash is an
exception that nothing in runwatchd turns into a state change, so the journal and the files are
left as a process dying at that point leaves them (test_generation.py also kills a real one).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import harness
from helpers import wait_for

from runwatchd import fsutil
from runwatchd.lifecycle import sidecar
from runwatchd.generation import submitter as submit
from runwatchd.runway.client import RetryPolicy, RunwayClient
from runwatchd.config.load import Config, parse_config
from runwatchd.daemon.core import Daemon
from runwatchd.daemon.policy import SCAN
from runwatchd.cli.demo import make_png
from runwatchd.emulator import Emulator
from runwatchd.store.sqlite import SqliteStore
from runwatchd.daemon.outcome_book import ATTENTION, INVALID, SKIPPED, SUBMITTED, UPLOADED
from runwatchd.lifecycle.processor import Job, Processor
from runwatchd.generation.rules import RULES_FILENAME, Rule, RuleResolver, parse_rule

SECRET = "pipeline-test-key"
REQUEST = {"model": "gen4.5", "promptText": "{stem} in {folder} ({name})", "ratio": "1280:720",
           "duration": 5}
RULE = {"endpoint": "image_to_video", "output_dir": "renders", "request": REQUEST}


class Crash(Exception):
    """Raised at a crash point: no runwatchd code catches it to write anything."""


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(api_secret=SECRET, task_seconds=0.05, pending_seconds=0.02) as emu:
        yield emu


def make_rule(table: dict[str, Any] | None = None) -> Rule:
    rule, problems = parse_rule(table or RULE, "test", "rule")
    assert [] == problems
    assert rule is not None
    return Rule(rule.endpoint, rule.output_dir, rule.input_field, rule.request, rule.source, "hot")


class Rig:
    """A hot folder, a state dir and the emulator; builds Processors and scan-mode Daemons."""

    def __init__(self, tmp_path: Path, emulator: Emulator) -> None:
        self.root = tmp_path / "hot"
        self.root.mkdir()
        self.state = tmp_path / "state"
        self.emu = emulator
        self.client = RunwayClient(SECRET, emulator.url,
                                   retry=RetryPolicy(max_attempts=2, initial_delay=0.01))
        self.journal = SqliteStore(self.state / "journal.sqlite3")
        self.bodies: list[dict] = []
        real = self.client.create_task

        def create_task(endpoint: str, body: dict) -> dict:
            self.bodies.append(body)
            return real(endpoint, body)

        self.client.create_task = create_task  # type: ignore[method-assign]
        self.followed: list[tuple[Path, str, Path]] = []

    def close(self) -> None:
        self.client.close()
        self.journal.close()

    def still(self, name: str = "shot.png", seed: int = 0) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        make_png(path, seed=seed)
        return path

    def processor(self, **kw: Any) -> Processor:
        return Processor(self.client, self.journal,
                         follow=lambda *a: self.followed.append(a), **kw)

    def job(self, path: Path, rule: Rule | None = None) -> Job:
        return Job(path, self.root, RuleResolver(self.root, rule) if rule else None)

    def stats(self) -> dict:
        return self.emu.stats()

    def config(self, rule: dict | None = RULE, recursive: bool = True) -> Config:
        folder: dict[str, Any] = {"path": str(self.root), "recursive": recursive}
        if rule is not None:
            folder["rule"] = rule
        return parse_config({"runway": {"state_dir": str(self.state), "concurrency": 2},
                             "daemon": {"grace_seconds": 5},
                             "defaults": {"settle_seconds": 0, "rescan_interval": 0},
                             "folder": [folder]}, "test")

    def scan(self, prepare: Callable[[Daemon], None] | None = None,
             cfg: Config | None = None) -> tuple[int, Daemon]:
        """A scan-mode daemon on its own client and journal, as a fresh process would have."""
        with harness(self.state, self.emu.url, SECRET) as h:
            daemon = h.daemon(cfg or self.config(), policy=SCAN, poll_interval=0.02)
            if prepare:
                prepare(daemon)
            return h.run(daemon), daemon


@pytest.fixture
def rig(tmp_path: Path, emulator: Emulator) -> Iterator[Rig]:
    r = Rig(tmp_path, emulator)
    yield r
    r.close()


def task_part(path: Path) -> dict | None:
    data = sidecar.read_sidecar(path)
    assert data is not None
    return data.get("task")


def temps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if fsutil.TEMP_MARK in p.name]


# -- uploads and requests ----------------------------------------------------------------------


def test_no_rule_means_upload_and_sidecar_only(rig: Rig) -> None:
    """Without a rule a file is uploaded once, gets a sidecar without a task, and is done."""
    shot = rig.still()
    assert UPLOADED == rig.processor().process(rig.job(shot)).outcome
    assert task_part(shot) is None
    assert SKIPPED == rig.processor().process(rig.job(shot)).outcome
    assert (1, 0, "uploaded") == (rig.stats()["uploads_completed"], rig.stats()["tasks_created"],
                                  rig.journal.get(shot).state)


def test_request_gets_the_uri_and_expanded_templates(rig: Rig) -> None:
    """The URI goes into promptImage; {stem}, {folder}, {name} are filled in; id journaled."""
    shot = rig.still()
    assert SUBMITTED == rig.processor().process(rig.job(shot, make_rule())).outcome
    data = sidecar.read_sidecar(shot)
    assert {"model": "gen4.5", "promptText": "shot in hot (shot.png)", "ratio": "1280:720",
            "duration": 5, "promptImage": data["runway_uri"]} == rig.bodies[0]
    record = rig.journal.get(shot)
    assert ("running", data["task"]["id"], "PENDING", "hot") == (
        record.state, record.task_id, data["task"]["status"], data["task"]["rule"])
    assert [(shot, record.task_id, rig.root / "renders")] == rig.followed


def test_prompt_file_replaces_prompt_text(rig: Rig) -> None:
    """shot.png.prompt.txt beside the file is sent instead of the rule's promptText."""
    shot = rig.still()
    shot.with_name("shot.png.prompt.txt").write_text("a slow dolly in\n", encoding="utf-8")
    rig.processor().process(rig.job(shot, make_rule())).outcome
    assert "a slow dolly in" == rig.bodies[0]["promptText"]


def test_input_field_override_puts_the_uri_there(rig: Rig) -> None:
    """input_field = "reference": a clip fills reference, typed as a video, the emulator accepts."""
    clip = rig.root / "take.mp4"
    clip.write_bytes(os.urandom(4096))
    rule = make_rule({"endpoint": "character_performance", "input_field": "reference",
                      "request": {"model": "act_two",
                                  "character": {"type": "image", "uri": "https://x/c.png"}}})
    assert SUBMITTED == rig.processor().process(rig.job(clip, rule)).outcome
    uri = sidecar.read_sidecar(clip)["runway_uri"]
    assert {"type": "video", "uri": uri} == rig.bodies[0]["reference"]


def test_files_in_subfolders_get_mirrored_output_folders(rig: Rig) -> None:
    """a/shot.png and b/shot.png go to renders/a/ and renders/b/, not both to renders/shot.mp4."""
    a, b = rig.still("a/shot.png", 1), rig.still("b/shot.png", 2)
    for path in (a, b):
        rig.processor().process(rig.job(path, make_rule())).outcome
    assert [rig.root / "renders" / "a", rig.root / "renders" / "b"] == [f[2] for f in rig.followed]


def test_expired_uri_is_uploaded_again_before_it_is_sent(rig: Rig) -> None:
    """A sidecar URI 23.5 h old (near Runway's 24 h): upload again, send only the new URI."""
    shot = rig.still()
    rig.processor().process(rig.job(shot)).outcome  # uploaded earlier, without a rule
    old = sidecar.read_sidecar(shot)["runway_uri"]
    later = rig.processor(clock=lambda: time.time() + 23.5 * 3600)
    assert SUBMITTED == later.process(rig.job(shot, make_rule())).outcome
    new = sidecar.read_sidecar(shot)["runway_uri"]
    assert old != new
    assert new == rig.bodies[0]["promptImage"]
    assert {new: 1} == rig.stats()["tasks_per_input_uri"]
    assert 2 == rig.stats()["uploads_completed"]


def test_fresh_uri_is_reused(rig: Rig) -> None:
    """A sidecar URI an hour old is sent as it is: no second upload."""
    shot = rig.still()
    rig.processor().process(rig.job(shot)).outcome
    later = rig.processor(clock=lambda: time.time() + 3600)
    later.process(rig.job(shot, make_rule())).outcome
    assert 1 == rig.stats()["uploads_completed"]


def test_bad_prompt_file_fails_the_file_before_any_post(rig: Rig) -> None:
    """An empty prompt file: FAILED with RUNWATCHD.INPUT, nothing sent, and the fix is named."""
    shot = rig.still()
    shot.with_name("shot.png.prompt.txt").write_text("  \n", encoding="utf-8")
    assert INVALID == rig.processor().process(rig.job(shot, make_rule())).outcome
    task = task_part(shot)
    assert ("FAILED", "RUNWATCHD.INPUT", 0) == (task["status"], task["failure_code"],
                                                rig.stats()["tasks_created"])
    assert "runwatchd retry" in task["failure"]


def test_refused_request_is_failed_and_not_resubmitted(rig: Rig) -> None:
    """The API refuses the request (400): FAILED with the API's words, never sent again."""
    shot = rig.still()
    rule = make_rule({**RULE, "request": {**REQUEST, "ratio": "wide"}})
    assert INVALID == rig.processor().process(rig.job(shot, rule)).outcome
    assert SKIPPED == rig.processor().process(rig.job(shot, rule)).outcome
    task = task_part(shot)
    assert ("FAILED", "RUNWATCHD.REJECTED") == (task["status"], task["failure_code"])
    assert "ratio" in task["failure"]
    assert (0, 1) == (rig.stats()["tasks_created"], len(rig.bodies))


def test_uncertain_submit_needs_attention_and_is_not_resubmitted(rig: Rig) -> None:
    """The connection drops after the POST created a task: NEEDS_ATTENTION, no second POST."""
    shot = rig.still()
    rig.emu.set_faults(drop_after_rate=1.0, scope=["tasks"])
    assert ATTENTION == rig.processor().process(rig.job(shot, make_rule())).outcome
    rig.emu.set_faults(drop_after_rate=0.0)
    assert SKIPPED == rig.processor().process(rig.job(shot, make_rule())).outcome
    task = task_part(shot)
    assert "NEEDS_ATTENTION" == task["status"]
    assert "runwatchd retry" in task["failure"]
    assert ("attention", 1) == (rig.journal.get(shot).state, rig.stats()["tasks_created"])


def test_retry_state_submits_exactly_once_more(rig: Rig) -> None:
    """After `retry` marks the row, the next look submits once, and only once."""
    shot = rig.still()
    rig.emu.set_faults(drop_after_rate=1.0, scope=["tasks"])
    rig.processor().process(rig.job(shot, make_rule())).outcome
    rig.emu.set_faults(drop_after_rate=0.0)
    rig.journal.update(shot, state="retry", task_id=None, error=None)
    assert SUBMITTED == rig.processor().process(rig.job(shot, make_rule())).outcome
    assert SKIPPED == rig.processor().process(rig.job(shot, make_rule())).outcome
    assert 2 == rig.stats()["tasks_created"]
    assert "PENDING" == task_part(shot)["status"]


def test_touched_file_with_the_same_content_is_not_resubmitted(rig: Rig) -> None:
    """touch after the generation: no upload, no task; the sidecar follows the new mtime."""
    shot = rig.still()
    rig.processor().process(rig.job(shot, make_rule())).outcome
    os.utime(shot, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert SKIPPED == rig.processor().process(rig.job(shot, make_rule())).outcome
    data = sidecar.read_sidecar(shot)
    assert sidecar.sidecar_matches(data, shot.stat(), shot.name)
    assert "task" in data
    assert (1, 1) == (rig.stats()["uploads_completed"], rig.stats()["tasks_created"])


def test_new_content_is_generated_again(rig: Rig) -> None:
    """A file replaced by different content is a new generation."""
    shot = rig.still()
    rig.processor().process(rig.job(shot, make_rule())).outcome
    make_png(shot, seed=99)
    assert SUBMITTED == rig.processor().process(rig.job(shot, make_rule())).outcome
    assert 2 == rig.stats()["tasks_created"]


def test_deleted_sidecar_is_written_again_from_the_journal(rig: Rig) -> None:
    """The user deletes a sidecar of a submitted file: it comes back with the task, no new POST."""
    shot = rig.still()
    rig.processor().process(rig.job(shot, make_rule())).outcome
    task_id = rig.journal.get(shot).task_id
    sidecar.sidecar_path(shot).unlink()
    assert SKIPPED == rig.processor().process(rig.job(shot, make_rule())).outcome
    assert task_id == task_part(shot)["id"]
    assert 1 == rig.stats()["tasks_created"]


def test_lost_journal_believes_the_sidecar(rig: Rig, tmp_path: Path) -> None:
    """A new state directory: a matching sidecar with a task is taken over, not resubmitted."""
    shot = rig.still()
    rig.processor().process(rig.job(shot, make_rule())).outcome
    fresh = SqliteStore(tmp_path / "other-state" / "journal.sqlite3")
    try:
        p = Processor(rig.client, fresh, follow=lambda *a: rig.followed.append(a))
        assert SKIPPED == p.process(rig.job(shot, make_rule())).outcome
        assert "running" == fresh.get(shot).state
    finally:
        fresh.close()
    assert 1 == rig.stats()["tasks_created"]
    assert 2 == len(rig.followed)  # followed again from the new journal


def test_two_processes_never_both_submit(rig: Rig, tmp_path: Path) -> None:
    """Two processors on their own journal connections race for one file: one task."""
    shot = rig.still()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def run() -> None:
        journal = SqliteStore(rig.state / "journal.sqlite3")
        try:
            barrier.wait()
            outcomes.append(Processor(rig.client, journal).process(rig.job(shot, make_rule())).outcome)
        finally:
            journal.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert 1 == rig.stats()["tasks_created"]
    assert SUBMITTED in outcomes


# -- daemon: rules files, credits ---------------------------------------------------------------


def test_editing_a_rules_file_changes_what_the_next_file_gets(rig: Rig) -> None:
    """Rules file v1 -> a.png rendered to v1/; edited to v2 -> b.png to v2/; a is not redone."""
    rules_file = rig.root / RULES_FILENAME
    rules_file.write_text('endpoint = "image_to_video"\noutput_dir = "v1"\n[request]\n'
                          'model = "gen4.5"\npromptText = "one"\n', encoding="utf-8")
    a = rig.still("a.png", 1)
    assert 0 == rig.scan(cfg=rig.config(rule=None))[0]
    rules_file.write_text('endpoint = "image_upscale"\noutput_dir = "v2"\n[request]\n'
                          'model = "upscale_v1"\n', encoding="utf-8")
    b = rig.still("b.png", 2)
    assert 0 == rig.scan(cfg=rig.config(rule=None))[0]
    assert (["v1/a.mp4"], "image_to_video") == (task_part(a)["outputs"], task_part(a)["endpoint"])
    assert (["v2/b.png"], "image_upscale") == (task_part(b)["outputs"], task_part(b)["endpoint"])
    assert 2 == rig.stats()["tasks_created"]


def test_invalid_rules_file_is_reported_and_other_folders_go_on(
        rig: Rig, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A rules file missing request.model is named with its path and key; the rest goes on."""
    bad = rig.root / "bad"
    bad.mkdir()
    (bad / RULES_FILENAME).write_text('endpoint = "image_to_video"\n[request]\n'
                                      'promptText = "x"\n', encoding="utf-8")
    rig.still("bad/x.png", 1)
    good = rig.still("good.png", 2)
    caplog.set_level(logging.WARNING)
    rig.scan()
    warnings = [r.getMessage() for r in caplog.records if RULES_FILENAME in r.getMessage()]
    assert any(str(bad / RULES_FILENAME) in m and "request.model" in m for m in warnings)
    assert "SUCCEEDED" == task_part(good)["status"]


def test_no_credits_pauses_generation_uploads_go_on_and_reload_resumes(rig: Rig) -> None:
    """No credits: files are uploaded and wait; after a reload every one is generated once."""
    rig.emu.set_faults(no_credits=True)
    shots = [rig.still(f"s{n}.png", n) for n in range(3)]
    cfg = parse_config({"runway": {"state_dir": str(rig.state)},
                        "defaults": {"settle_seconds": 0.1, "rescan_interval": 0},
                        "folder": [{"path": str(rig.root), "rule": RULE}]}, "test")
    rig.journal.close()
    with harness(rig.state) as h:
        daemon = h.daemon(cfg, client=rig.client, poll_interval=0.02)
        journal = daemon.journal
        h.launch(daemon)
        assert wait_for(lambda: all((r := journal.get(s)) is not None
                                    and r.state == "awaiting_credits" for s in shots), 15)
        assert 3 == rig.stats()["uploads_completed"]
        assert all(sidecar.read_sidecar(s) is not None for s in shots)
        assert 0 == rig.stats()["tasks_created"]
        rig.emu.set_faults(no_credits=False)
        daemon.request_reload()
        assert wait_for(lambda: all((t := (sidecar.read_sidecar(s) or {}).get("task"))
                                    and t["status"] == "SUCCEEDED" for s in shots), 15)
    assert 3 == rig.stats()["tasks_created"]


# -- crash points -------------------------------------------------------------------------------


def crash_at(monkeypatch: pytest.MonkeyPatch, target: Callable[[Daemon], object], name: str,
             *, after: bool = False, side: Callable[..., None] | None = None
             ) -> Callable[[Daemon], None]:
    """A `prepare` hook: the first call of target(daemon).name crashes, before or after the
    real call (`side` leaves what a kill there would leave)."""

    def prepare(daemon: Daemon) -> None:
        obj = target(daemon)
        real = getattr(obj, name)
        fired = threading.Event()

        def crashing(*args: Any, **kw: Any) -> Any:
            if fired.is_set():
                return real(*args, **kw)
            fired.set()
            if after:
                real(*args, **kw)
            if side:
                side(*args)
            daemon.request_stop()
            raise Crash(f"crash {'after' if after else 'in'} {name}")

        monkeypatch.setattr(obj, name, crashing)

    return prepare


def partial_download(url: str, dest: Path) -> None:
    """What a killed download leaves: a temp file beside the final name."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fsutil.temp_path_for(dest).write_bytes(b"partial")


def partial_sidecar(path: Path, *_: object) -> None:
    """What a kill while writing the sidecar leaves: its temp file."""
    fsutil.temp_path_for(sidecar.sidecar_path(path)).write_bytes(b"{")


CRASH_POINTS: dict[str, tuple[Callable[[Daemon], object], str, dict[str, Any], int, str]] = {
    # name: (object, method, crash_at options, tasks at the emulator, final sidecar status)
    "after upload, before sidecar": (
        lambda d: d.processor, "_try_write_sidecar", {"side": partial_sidecar}, 1, "SUCCEEDED"),
    "after sidecar, before journal": (
        lambda d: d.processor, "_try_write_sidecar", {"after": True}, 1, "SUCCEEDED"),
    "after journal, before intent": (
        lambda d: d.journal, "claim_submit", {}, 1, "SUCCEEDED"),
    "after intent, before POST": (
        lambda d: d.client_ref.current, "create_task", {}, 0, "NEEDS_ATTENTION"),
    "after POST, before task id": (
        lambda d: d.client_ref.current, "create_task", {"after": True}, 1, "NEEDS_ATTENTION"),
    "after task id, before sidecar": (
        lambda d: submit, "write_task_sidecar", {}, 1, "SUCCEEDED"),
    "during a download": (
        lambda d: d.client_ref.current, "download", {"side": partial_download}, 1, "SUCCEEDED"),
}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_a_crash_at_any_point_ends_with_one_correct_sidecar(
        rig: Rig, point: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Crash at the point, restart: one sidecar, the right status, no second task, no temps."""
    target, name, options, tasks, status = CRASH_POINTS[point]
    shot = rig.still()
    rig.scan(crash_at(monkeypatch, target, name, **options))
    monkeypatch.undo()
    code, _ = rig.scan()
    assert status == task_part(shot)["status"]
    assert tasks == rig.stats()["tasks_created"]
    assert (0 if status == "SUCCEEDED" else 1) == code
    assert [sidecar.sidecar_path(shot)] == list(rig.root.glob("*.runway.json"))
    assert [] == temps(rig.root)
    if status == "SUCCEEDED":
        assert (rig.root / "renders" / "shot.mp4").exists()
    else:
        assert "attention" == rig.journal.get(shot).state
