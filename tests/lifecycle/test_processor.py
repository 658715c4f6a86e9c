"""Tests for runwatchd.lifecycle.processor on the emulator: uploads, sidecars, and the request each
file's generation is sent with (at most once: test_at_most_once.py; crashes: test_crash_points.py).
"""

from __future__ import annotations

import dataclasses
import os
import time

from pipeline_helpers import REQUEST, Rig, make_rule, task_part

from runwatchd.generation.rules import RULES_FILENAME
from runwatchd.generation.rules_files import RuleResolver
from runwatchd.lifecycle import sidecar
from runwatchd.lifecycle.processor import Job
from runwatchd.lifecycle.states import Ending, FailureReason, Outcome


def test_no_rule_means_upload_and_sidecar_only(rig: Rig) -> None:
    """Without a rule a file is uploaded once, gets a sidecar without a task, and is done."""
    shot = rig.still()
    assert Ending(Outcome.UPLOADED) == rig.processor().process(rig.job(shot))
    assert task_part(shot) is None
    assert Ending(Outcome.SKIPPED) == rig.processor().process(rig.job(shot))
    assert (1, 0, "uploaded") == (rig.stats()["uploads_completed"], rig.stats()["tasks_created"],
                                  rig.journal.get(shot).state)


def test_request_gets_the_uri_and_expanded_templates(rig: Rig) -> None:
    """The URI goes into promptImage; {stem}, {folder}, {name} are filled in; id journaled."""
    shot = rig.still()
    assert Ending(Outcome.SUBMITTED) == rig.processor().process(rig.job(shot, make_rule()))
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
    assert Outcome.SUBMITTED == rig.processor().process(rig.job(shot, make_rule())).outcome
    assert "a slow dolly in" == rig.bodies[0]["promptText"]


def test_input_field_override_puts_the_uri_there(rig: Rig) -> None:
    """input_field = "reference": a clip fills reference, typed as a video, the emulator accepts."""
    clip = rig.root / "take.mp4"
    clip.write_bytes(os.urandom(4096))
    rule = make_rule({"endpoint": "character_performance", "input_field": "reference",
                      "request": {"model": "act_two",
                                  "character": {"type": "image", "uri": "https://x/c.png"}}})
    assert Outcome.SUBMITTED == rig.processor().process(rig.job(clip, rule)).outcome
    uri = sidecar.read_sidecar(clip)["runway_uri"]
    assert {"type": "video", "uri": uri} == rig.bodies[0]["reference"]


def test_files_in_subfolders_get_mirrored_output_folders(rig: Rig) -> None:
    """a/shot.png and b/shot.png go to renders/a/ and renders/b/, not both to renders/shot.mp4."""
    a, b = rig.still("a/shot.png", 1), rig.still("b/shot.png", 2)
    outcomes = [rig.processor().process(rig.job(path, make_rule())).outcome for path in (a, b)]
    assert [Outcome.SUBMITTED, Outcome.SUBMITTED] == outcomes
    assert [rig.root / "renders" / "a", rig.root / "renders" / "b"] == [f[2] for f in rig.followed]


def test_expired_uri_is_uploaded_again_before_it_is_sent(rig: Rig) -> None:
    """A sidecar URI 23.5 h old (near Runway's 24 h): upload again, send only the new URI."""
    shot = rig.still()
    assert Outcome.UPLOADED == rig.processor().process(rig.job(shot)).outcome  # no rule then
    old = sidecar.read_sidecar(shot)["runway_uri"]
    later = rig.processor(clock=lambda: time.time() + 23.5 * 3600)
    assert Outcome.SUBMITTED == later.process(rig.job(shot, make_rule())).outcome
    new = sidecar.read_sidecar(shot)["runway_uri"]
    assert old != new
    assert new == rig.bodies[0]["promptImage"]
    assert {new: 1} == rig.stats()["tasks_per_input_uri"]
    assert 2 == rig.stats()["uploads_completed"]


def test_fresh_uri_is_reused(rig: Rig) -> None:
    """A sidecar URI an hour old is sent as it is: no second upload."""
    shot = rig.still()
    assert Outcome.UPLOADED == rig.processor().process(rig.job(shot)).outcome
    later = rig.processor(clock=lambda: time.time() + 3600)
    assert Outcome.SUBMITTED == later.process(rig.job(shot, make_rule())).outcome
    assert 1 == rig.stats()["uploads_completed"]


def test_bad_prompt_file_fails_the_file_before_any_post(rig: Rig) -> None:
    """An empty prompt file: FAILED with RUNWATCHD.INPUT, nothing sent, and the fix is named."""
    shot = rig.still()
    shot.with_name("shot.png.prompt.txt").write_text("  \n", encoding="utf-8")
    assert Ending(Outcome.INVALID, FailureReason.REJECTED) == rig.processor().process(
        rig.job(shot, make_rule()))
    task = task_part(shot)
    assert ("FAILED", "RUNWATCHD.INPUT", 0) == (task["status"], task["failure_code"],
                                                rig.stats()["tasks_created"])
    assert "runwatchd retry" in task["failure"]


def test_refused_request_is_failed_and_not_resubmitted(rig: Rig) -> None:
    """The API refuses the request (400): FAILED with the API's words, never sent again."""
    shot = rig.still()
    # Load-time checks would refuse this ratio; the API's schema may still move past ours.
    rule = dataclasses.replace(make_rule(), request={**REQUEST, "ratio": "wide"})
    assert Ending(Outcome.INVALID, FailureReason.REJECTED) == rig.processor().process(
        rig.job(shot, rule))
    assert Ending(Outcome.SKIPPED) == rig.processor().process(rig.job(shot, rule))
    task = task_part(shot)
    assert ("FAILED", "RUNWATCHD.REJECTED") == (task["status"], task["failure_code"])
    assert "ratio" in task["failure"]
    assert (0, 1) == (rig.stats()["tasks_created"], len(rig.bodies))


def test_media_the_rule_cannot_take_is_invalid_without_an_upload(rig: Rig) -> None:
    """A .wav in an image_to_video folder: invalid once, with its reason, and nothing uploaded."""
    clip = rig.root / "take.wav"
    clip.write_bytes(os.urandom(4096))
    assert Ending(Outcome.INVALID, FailureReason.INVALID_FILE) == rig.processor().process(
        rig.job(clip, make_rule()))
    assert Ending(Outcome.SKIPPED) == rig.processor().process(rig.job(clip, make_rule()))
    assert ("invalid", 0) == (rig.journal.get(clip).state, rig.stats()["uploads_completed"])


def test_failed_upload_ends_with_its_reason_and_waits(rig: Rig) -> None:
    """Storage keeps failing: FAILED for upload_failed, the attempt counted and a retry planned."""
    shot = rig.still()
    rig.emu.set_faults(error_rate=1.0, scope=["storage"])
    assert Ending(Outcome.FAILED, FailureReason.UPLOAD_FAILED) == rig.processor().process(
        rig.job(shot))
    record = rig.journal.get(shot)
    assert ("failed", 1, True) == (record.state, record.attempts, record.next_attempt > time.time())


def test_broken_rules_file_ends_with_its_reason(rig: Rig) -> None:
    """A broken rules file above the file: FAILED for rules_broken, nothing uploaded."""
    shot = rig.still()
    (rig.root / RULES_FILENAME).write_text('endpoint = "img2vid"\n', encoding="utf-8")
    job = Job(shot, rig.root, RuleResolver(rig.root, make_rule()))
    assert Ending(Outcome.FAILED, FailureReason.RULES_BROKEN) == rig.processor().process(job)
    assert rig.journal.get(shot).error.startswith("waiting: invalid rules file ")
    assert 0 == rig.stats()["uploads_completed"]


def test_unwritable_sidecar_is_written_later_from_the_journal(rig: Rig) -> None:
    """The sidecar cannot be written: FAILED for sidecar_write, the upload kept in the journal;
    the next look writes the sidecar from it without uploading again."""
    shot = rig.still()
    sidecar.sidecar_path(shot).mkdir()  # even root cannot write a file over a directory
    assert Ending(Outcome.FAILED, FailureReason.SIDECAR_WRITE) == rig.processor().process(
        rig.job(shot))
    assert "no_sidecar" == rig.journal.get(shot).state
    sidecar.sidecar_path(shot).rmdir()
    assert Ending(Outcome.SKIPPED) == rig.processor().process(rig.job(shot))
    record = rig.journal.get(shot)
    assert ("uploaded", record.runway_uri, 1) == (
        record.state, sidecar.read_sidecar(shot)["runway_uri"], rig.stats()["uploads_completed"])
