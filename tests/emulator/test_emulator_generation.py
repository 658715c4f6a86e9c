"""The emulator's generation endpoints over real sockets: validation, costs, task lifecycle."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from emulator_helpers import HEADERS, i2v, status, upload
from helpers import FakeClock

from runwatchd.emulator import Emulator

T2V = {"model": "veo3.1", "ratio": "1280:720"}
T2I = {"model": "gen4_image", "ratio": "1024:1024"}

# -- generation --------------------------------------------------------------------------------


def test_generation_returns_id_and_cost(emu: Emulator, api: httpx.Client) -> None:
    """A valid image_to_video is accepted, charged, and counted against its input URI."""
    uri = upload(api)
    body = api.post("/v1/image_to_video", json=i2v(uri, duration=5)).json()
    assert {"id", "estimatedCost"} == set(body)
    stats = emu.stats()
    assert 100_000 - body["estimatedCost"]["credits"] == stats["credit_balance"]
    assert {uri: 1} == stats["tasks_per_input_uri"]


@pytest.mark.parametrize(
    ("endpoint", "body", "paths"),
    [
        ("image_to_video", {"model": "gen4_turbo", "ratio": "1280:720"}, [["promptImage"]]),
        ("image_to_video", i2v("https://x/a.jpg", promptText=""), [["promptText"]]),
        ("image_to_video", i2v("https://x/a.jpg", duration="5"), [["duration"]]),
        ("image_to_video", i2v("https://x/a.jpg", model="veo3"), [["model"]]),
        ("image_to_video", i2v("https://x/a.jpg", referenceUri="https://x/b.jpg"), [[]]),
        ("image_to_video", i2v("a.jpg"), [["promptImage"]]),
        ("video_to_video", {"model": "kling_4", "videoUri": "https://x/a.mp4"}, [["promptText"]]),
        (
            "video_to_video",
            {"model": "seedance2", "videoUri": "https://x/a.mp4"},
            [[], ["promptVideo"]],
        ),
        (
            "character_performance",
            {
                "model": "act_two",
                "character": {"type": "x", "uri": "https://x/a.mp4"},
                "reference": {"type": "video", "uri": "https://x/b.mp4"},
            },
            [["character", "type"]],
        ),
        (
            "voice_dubbing",
            {"model": "eleven_voice_dubbing", "audioUri": "https://x/a.mp3"},
            [["targetLang"]],
        ),
        ("text_to_speech", {"model": "eleven_multilingual_v2", "promptText": "hi"}, [["voice"]]),
        ("video_to_hdr", {"model": "ruby"}, [["videoUri"]]),
        (
            "video_to_audio",
            {"model": "mirelo_sfx_2_0", "videoUri": "https://x/a.mp4"},
            [["duration"]],
        ),
        ("generate/video", {"configId": "c", "input": {"promptTxt": "p"}}, [["input"]]),
    ],
)
def test_generation_validates_required_fields(
    api: httpx.Client, endpoint: str, body: dict, paths: list
) -> None:
    """A body the schemas refuse (missing, ill-typed or unknown field, unknown model, a bare
    file name for media) answers 400 with an issue at each path."""
    reply = api.post(f"/v1/{endpoint}", json=body)
    assert 400 == reply.status_code
    assert paths == [i["path"] for i in reply.json()["issues"]]


def test_unknown_runway_uri_is_refused_at_any_depth(api: httpx.Client) -> None:
    """A runway:// URI that was never uploaded is a 400 issue, even nested in an object."""
    body = {
        "model": "act_two",
        "character": {"type": "image", "uri": "runway://upload/nope"},
        "reference": {"type": "video", "uri": "https://x/b.mp4"},
    }
    reply = api.post("/v1/character_performance", json=body)
    assert 400 == reply.status_code
    assert [["character", "uri"]] == [i["path"] for i in reply.json()["issues"]]


def test_expired_runway_uri_is_refused(make_emu: Any, clock: FakeClock) -> None:
    """A URI older than uri_ttl is refused like an unknown one."""
    emu = make_emu(uri_ttl=60)
    with httpx.Client(base_url=emu.url, headers=HEADERS) as client:
        uri = upload(client)
        assert 200 == client.post("/v1/image_to_video", json=i2v(uri)).status_code
        clock.advance(61)
        reply = client.post("/v1/image_to_video", json=i2v(uri))
    assert 400 == reply.status_code
    assert [["promptImage"]] == [i["path"] for i in reply.json()["issues"]]


def test_not_enough_credits(make_emu: Any) -> None:
    """A task costing more than the balance answers Runway's credits message."""
    emu = make_emu(credits=10)
    with httpx.Client(base_url=emu.url, headers=HEADERS) as client:
        reply = client.post("/v1/image_to_video", json=i2v("https://x/a.jpg", duration=5))
    assert 400 == reply.status_code
    assert "You do not have enough credits to run this task." == reply.json()["error"]


# -- task lifecycle ----------------------------------------------------------------------------


def test_task_goes_pending_running_succeeded(api: httpx.Client, clock: FakeClock) -> None:
    """PENDING, then RUNNING with progress, then SUCCEEDED with output URLs, by the clock."""
    task_id = api.post("/v1/image_to_video", json=i2v(upload(api))).json()["id"]
    assert "PENDING" == status(api, task_id)["status"]
    clock.advance(1 + 5)
    running = status(api, task_id)
    assert ("RUNNING", 0.5) == (running["status"], running["progress"])
    clock.advance(5)
    done = status(api, task_id)
    assert "SUCCEEDED" == done["status"]
    assert [f"{api.base_url}/_outputs/{task_id}/0.mp4".replace("//_", "/_")] == done["output"]


def test_tasks_beyond_concurrency_are_throttled(make_emu: Any, clock: FakeClock) -> None:
    """With max_concurrent_tasks=1 a second task is THROTTLED until the first finishes."""
    emu = make_emu(max_concurrent_tasks=1, pending_seconds=0)
    with httpx.Client(base_url=emu.url, headers=HEADERS) as client:
        first = client.post("/v1/text_to_video", json=T2V | {"promptText": "a"}).json()["id"]
        second = client.post("/v1/text_to_video", json=T2V | {"promptText": "b"}).json()["id"]
        assert ("RUNNING", "THROTTLED") == (
            status(client, first)["status"],
            status(client, second)["status"],
        )
        clock.advance(10)
        assert ("SUCCEEDED", "RUNNING") == (
            status(client, first)["status"],
            status(client, second)["status"],
        )
        clock.advance(10)
        assert "SUCCEEDED" == status(client, second)["status"]
    assert {"SUCCEEDED": 2} == {k: v for k, v in emu.stats()["tasks_by_status"].items() if v}


def test_fail_marker_ends_failed_with_code(api: httpx.Client, clock: FakeClock) -> None:
    """A "FAIL:" prompt ends FAILED with failure text; a code after the marker is used."""
    plain = api.post("/v1/text_to_image", json={**T2I, "promptText": "FAIL: nope"}).json()["id"]
    coded = api.post(
        "/v1/text_to_image",
        json={**T2I, "promptText": "FAIL:INTERNAL.BAD_OUTPUT.CODE01 x"},
    ).json()["id"]
    clock.advance(20)
    first, second = status(api, plain), status(api, coded)
    assert ("FAILED", "SAFETY.INPUT.TEXT") == (first["status"], first["failureCode"])
    assert ("FAILED", "INTERNAL.BAD_OUTPUT.CODE01") == (second["status"], second["failureCode"])
    assert first["failure"]


def test_fail_prompts_list(make_emu: Any, clock: FakeClock) -> None:
    """Any configured fail_prompts substring makes the task fail."""
    emu = make_emu(fail_prompts=["explode"])
    with httpx.Client(base_url=emu.url, headers=HEADERS) as client:
        task_id = client.post(
            "/v1/sound_effect",
            json={"model": "eleven_text_to_sound_v2", "promptText": "an explode"},
        ).json()["id"]
        clock.advance(20)
        assert "FAILED" == status(client, task_id)["status"]


def test_delete_cancels_then_deletes(emu: Emulator, api: httpx.Client, clock: FakeClock) -> None:
    """DELETE on a waiting task cancels (and refunds) it; DELETE again removes it (404)."""
    task_id = api.post("/v1/image_to_video", json=i2v(upload(api))).json()["id"]
    assert 204 == api.delete(f"/v1/tasks/{task_id}").status_code
    clock.advance(30)
    assert "CANCELLED" == status(api, task_id)["status"]
    assert 100_000 == emu.stats()["credit_balance"]
    assert 204 == api.delete(f"/v1/tasks/{task_id}").status_code
    assert 404 == api.get(f"/v1/tasks/{task_id}").status_code


def test_task_seconds_zero_succeeds_at_once(make_emu: Any) -> None:
    """With task_seconds=0 a task is SUCCEEDED on the first poll."""
    emu = make_emu(task_seconds=0, pending_seconds=None)
    with httpx.Client(base_url=emu.url, headers=HEADERS) as client:
        task_id = client.post("/v1/text_to_image", json={**T2I, "promptText": "x"}).json()["id"]
        assert "SUCCEEDED" == status(client, task_id)["status"]


def test_outputs_are_downloadable(make_emu: Any, clock: FakeClock) -> None:
    """Each output URL serves deterministic bytes with type and length (a real PNG for images)."""
    emu = make_emu(outputs_per_task=2)
    with httpx.Client(base_url=emu.url, headers=HEADERS) as client:
        task_id = client.post("/v1/text_to_image", json={**T2I, "promptText": "x"}).json()["id"]
        url = f"{emu.url}/_outputs/{task_id}/0.png"
        assert 404 == httpx.get(url).status_code
        clock.advance(20)
        outputs = status(client, task_id)["output"]
        first, again = httpx.get(outputs[0]), httpx.get(outputs[0])
    assert [url, f"{emu.url}/_outputs/{task_id}/1.png"] == outputs
    assert ("image/png", b"\x89PNG") == (first.headers["content-type"], first.content[:4])
    assert str(len(first.content)) == first.headers["content-length"]
    assert first.content == again.content


# -- endpoints and costs of the current API ----------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "body", "ext"),
    [
        (
            "video_to_audio",
            {"model": "mirelo_sfx_2_0", "videoUri": "{uri}", "duration": 4.5},
            "mp3",
        ),
        ("video_to_hdr", {"model": "ruby", "videoUri": "{uri}"}, "mp4"),
        (
            "video_upscale",
            {"model": "magnific_video_upscaler_creative", "videoUri": "{uri}"},
            "mp4",
        ),
        ("generate/video", {"configId": "c", "input": {"promptText": "p", "duration": 4}}, "mp4"),
        ("generate/image", {"configId": "c", "input": {"promptText": "p"}}, "png"),
        ("generate/audio", {"configId": "c", "input": {"promptText": "p", "type": "audio"}}, "mp3"),
    ],
)
def test_current_endpoints_are_served(
    api: httpx.Client, clock: FakeClock, endpoint: str, body: dict[str, Any], ext: str
) -> None:
    """video_to_audio, video_to_hdr and /v1/generate/* create tasks with outputs of their kind."""
    uri = upload(api, filename="clip.mp4")
    filled = {k: uri if v == "{uri}" else v for k, v in body.items()}
    created = api.post(f"/v1/{endpoint}", json=filled)
    assert 200 == created.status_code, created.text
    clock.advance(20)
    [output] = status(api, created.json()["id"])["output"]
    assert output.endswith(f"/0.{ext}")


def test_refusal_has_runways_error_shape(api: httpx.Client) -> None:
    """A refused body answers {"error": ..., "issues": [{"path": [...], "message": ...}]}."""
    reply = api.post("/v1/image_to_video", json=i2v("https://x/a.jpg", ratio="1:1"))
    body = reply.json()
    assert (400, "Validation of body failed") == (reply.status_code, body["error"])
    [found] = body["issues"]
    assert (["ratio"], True) == (found["path"], found["message"].startswith("Invalid enum value"))


def test_task_reports_estimated_then_final_cost(api: httpx.Client, clock: FakeClock) -> None:
    """estimatedCost while PENDING and RUNNING, cost once SUCCEEDED, as Runway's task replies."""
    task_id = api.post("/v1/image_to_video", json=i2v(upload(api), duration=5)).json()["id"]
    pending = status(api, task_id)
    clock.advance(6)
    running = status(api, task_id)
    clock.advance(10)
    done = status(api, task_id)
    assert ({"credits": 25}, False) == (pending["estimatedCost"], "cost" in pending)
    assert {"credits": 25} == running["estimatedCost"]
    assert ({"credits": 25}, False) == (done["cost"], "estimatedCost" in done)


def test_cancelled_before_running_costs_nothing(api: httpx.Client, clock: FakeClock) -> None:
    """A task cancelled while it waited was refunded: its final cost is 0 credits."""
    task_id = api.post("/v1/image_to_video", json=i2v(upload(api))).json()["id"]
    api.delete(f"/v1/tasks/{task_id}")
    assert {"credits": 0} == status(api, task_id)["cost"]


def test_auto_and_routed_durations_are_billed(api: httpx.Client) -> None:
    """ "auto" is billed as the default 5 seconds; generate/video bills its input's duration."""
    auto = {"model": "seedance2_5", "promptImage": upload(api), "duration": "auto"}
    assert {"credits": 25} == api.post("/v1/image_to_video", json=auto).json()["estimatedCost"]
    routed = api.post("/v1/generate/video", json={"configId": "c", "input": {"duration": 3}})
    assert {"credits": 15} == routed.json()["routing"]["estimatedCost"]
