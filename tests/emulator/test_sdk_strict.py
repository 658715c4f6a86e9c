"""The official SDK, validating every response strictly, accepts every reply of the emulator.

`_strict_response_validation=True` makes the Stainless-generated client validate each response
against its pydantic models instead of constructing them unchecked, so a reply whose shape
Runway's would not have (a missing `cost`, a wrong type) fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from emulator_helpers import KEY, PAYLOAD
from helpers import FakeClock

from runwatchd.emulator import Emulator

runwayml = pytest.importorskip("runwayml", reason="runwayml (the official SDK) is not installed")


@pytest.fixture
def emu(make_emu: Any) -> Emulator:
    """One task at a time, so a second task waits THROTTLED; 1 s PENDING, 10 s RUNNING."""
    return make_emu(max_concurrent_tasks=1)


@pytest.fixture
def sdk(emu: Emulator) -> Iterator[Any]:
    """The official client on the emulator, strict, without retries (a fault would show)."""
    client = runwayml.RunwayML(
        api_key=KEY, base_url=emu.url, max_retries=0, _strict_response_validation=True
    )
    with client:
        yield client


@pytest.fixture
def image_uri(sdk: Any, tmp_path: Path) -> str:
    """A runway:// URI uploaded by the SDK from an open file object (the streaming way)."""
    path = tmp_path / "still.png"
    path.write_bytes(PAYLOAD)
    with path.open("rb") as source:
        return str(sdk.uploads.create_ephemeral(file=source).uri)


def test_upload_from_an_open_file(emu: Emulator, image_uri: str) -> None:
    """create_ephemeral with a file object gets a runway:// URI the emulator stored."""
    assert image_uri.startswith("runway://")
    assert "still.png" == emu.objects()[image_uri]["filename"]


def test_tasks_on_several_endpoints(sdk: Any, image_uri: str) -> None:
    """image_to_video, text_to_image, video_to_hdr and video_to_audio replies parse."""
    created = [
        sdk.image_to_video.create(model="gen4_turbo", prompt_image=image_uri, ratio="1280:720"),
        sdk.text_to_image.create(model="gen4_image", prompt_text="a fox", ratio="1024:1024"),
        sdk.video_to_hdr.create(model="ruby", video_uri="https://example.com/clip.mp4"),
        sdk.video_to_audio.create(
            model="mirelo_sfx_2_0", video_uri="https://example.com/clip.mp4", duration=4.5
        ),
    ]
    assert 4 == len({task.id for task in created})
    assert all(task.estimated_cost.credits > 0 for task in created)


def test_routed_generation_replies_parse(sdk: Any) -> None:
    """generate.video/image/audio replies carry the router's `routing` in the SDK's shape."""
    routed = [
        sdk.generate.video.create(config_id="films", input={"promptText": "a fox"}),
        sdk.generate.image.create(config_id="stills", input={"promptText": "a fox"}),
        sdk.generate.audio.create(config_id="voices", input={"promptText": "hi", "type": "speech"}),
    ]
    assert ["films", "stills", "voices"] == [task.routing.config_id for task in routed]
    assert all(task.routing.estimated_cost.credits > 0 for task in routed)
    assert "speech" == routed[2].routing.resolved_input.type


def test_recipe_and_avatar_video_replies_parse(sdk: Any) -> None:
    """A recipe (id and estimatedCost) and an avatar video (id alone) parse in strict mode."""
    recipe = sdk.recipes.marketing_stock_image(prompt="a fox", version="2026-06")
    avatar = sdk.avatar_videos.create(
        model="gwm1_avatars",
        avatar={"type": "runway-preset", "preset_id": "influencer"},
        speech={"type": "text", "text": "hello"},
    )
    assert recipe.estimated_cost.credits > 0
    assert avatar.id != recipe.id


def test_every_task_state_parses(sdk: Any, image_uri: str, clock: FakeClock) -> None:
    """PENDING, THROTTLED, RUNNING, SUCCEEDED, FAILED and CANCELLED replies all validate."""
    body = {"model": "gen4_turbo", "prompt_image": image_uri, "ratio": "1280:720"}
    first = sdk.image_to_video.create(**body).id
    failing = sdk.image_to_video.create(**body, prompt_text="FAIL:INTERNAL.BAD_OUTPUT.X1").id
    seen = {"PENDING": sdk.tasks.retrieve(first)}
    clock.advance(1.5)
    seen["RUNNING"], seen["THROTTLED"] = sdk.tasks.retrieve(first), sdk.tasks.retrieve(failing)
    cancelled = sdk.image_to_video.create(**body).id
    sdk.tasks.delete(cancelled)
    seen["CANCELLED"] = sdk.tasks.retrieve(cancelled)
    clock.advance(20)
    seen["SUCCEEDED"], seen["FAILED"] = sdk.tasks.retrieve(first), sdk.tasks.retrieve(failing)
    assert {state: state for state in seen} == {state: task.status for state, task in seen.items()}
    assert 0.0 < seen["RUNNING"].progress < 1.0
    assert 25 == seen["PENDING"].estimated_cost.credits == seen["SUCCEEDED"].cost.credits
    assert 0 == seen["CANCELLED"].cost.credits
    assert "INTERNAL.BAD_OUTPUT.X1" == seen["FAILED"].failure_code
    assert seen["SUCCEEDED"].output[0].startswith("http://")


def test_organization_parses(sdk: Any) -> None:
    """organization.retrieve validates: credit balance, tier limits per model, usage."""
    org = sdk.organization.retrieve()
    assert 100_000 == org.credit_balance
    assert "gen4_turbo" in org.tier.models


def test_delete_a_finished_task(sdk: Any, clock: FakeClock) -> None:
    """tasks.delete on a SUCCEEDED task returns None, and the task is then gone (404)."""
    task_id = sdk.text_to_image.create(model="gen4_image", prompt_text="x", ratio="1024:1024").id
    clock.advance(20)
    assert sdk.tasks.delete(task_id) is None
    with pytest.raises(runwayml.NotFoundError):
        sdk.tasks.retrieve(task_id)


def test_refused_body_reaches_the_sdk_with_issues(sdk: Any) -> None:
    """A request Runway would refuse raises BadRequestError carrying the emulator's issues."""
    with pytest.raises(runwayml.BadRequestError) as refused:
        sdk.image_to_video.create(
            model="gen4_turbo", prompt_image="https://example.com/a.png", ratio="1:1"
        )
    body = refused.value.body
    assert isinstance(body, dict)
    assert [["ratio"]] == [issue["path"] for issue in body["issues"]]
