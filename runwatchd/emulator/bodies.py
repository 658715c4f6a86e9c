"""Generation request bodies: Runway's validation, the cost of a task, the kind of its outputs.

The emulator refuses exactly what the shipped schemas (runwatchd.runway.schemas, generated from
the official SDK) refuse, so a request that passes here has the shape Runway accepts, and one
Runway would refuse gets the 400 with `issues` Runway answers. On top of the schema, like
Runway, every runway:// URI must name an upload that exists and has not expired.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from runwatchd.runway.schemas import default as schemas

from .routing import routed_model, routing
from .state import issue

ENDPOINTS = schemas().endpoints()
# What each endpoint makes; an endpoint added upstream and not listed here makes video.
AUDIO = {
    "sound_effect", "text_to_speech", "speech_to_speech", "voice_isolation", "voice_dubbing",
    "video_to_audio", "generate/audio",
}  # fmt: skip
IMAGE = {
    "text_to_image", "image_upscale", "generate/image",
    "recipes/marketing_stock_image", "recipes/product_campaign_image",
}  # fmt: skip
OUTPUT_TYPES = {"mp4": "video/mp4", "png": "image/png", "mp3": "audio/mpeg"}
DEFAULT_SECONDS = 5


def output_ext(endpoint: str) -> str:
    """File type of an endpoint's outputs."""
    return "mp3" if endpoint in AUDIO else "png" if endpoint in IMAGE else "mp4"


def cost_of(endpoint: str, body: dict[str, Any]) -> int:
    """Credits a task costs: 5 per video second (like gen4_turbo), flat for images and audio.

    `duration` may be a float or "auto" for some models ("auto" is billed as the default)."""
    if output_ext(endpoint) != "mp4":
        return 2 if endpoint in IMAGE else 1
    duration = body.get("duration")
    if isinstance(body.get("input"), dict):  # generate/*: the options sit under "input"
        duration = body["input"].get("duration")
    if isinstance(duration, bool) or not isinstance(duration, int | float) or duration <= 0:
        return 5 * DEFAULT_SECONDS
    return 5 * math.ceil(duration)


def model_of(endpoint: str, body: dict[str, Any]) -> str:
    """The model a task counts against in /v1/organization's usage: the one named, the one the
    router picked for generate/*, else the endpoint (recipes name no model)."""
    model = body.get("model")
    return model if isinstance(model, str) else routed_model(endpoint, body) or endpoint


def created_reply(endpoint: str, body: dict[str, Any], task_id: str, cost: int) -> dict[str, Any]:
    """The reply to a generation POST, shaped as the SDK's response type of that endpoint."""
    if routed_model(endpoint, body) is not None:  # generate/*: the cost sits in `routing`
        return {"id": task_id, "routing": routing(endpoint, body, cost)}
    if endpoint == "avatar_videos":  # AvatarVideoCreateResponse has the id alone
        return {"id": task_id}
    return {"id": task_id, "estimatedCost": {"credits": cost}}


def prompt_of(body: dict[str, Any]) -> object:
    """The prompt text of a body, where the endpoint keeps it (for the failure markers)."""
    nested = body.get("input")
    if isinstance(nested, dict) and "promptText" in nested:
        return nested["promptText"]
    return body.get("promptText", body.get("prompt"))


def runway_uris(
    value: object, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every runway:// string in a JSON value, at any depth, with its path."""
    if isinstance(value, str) and value.startswith("runway://"):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from runway_uris(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from runway_uris(item, (*path, index))


def validate(endpoint: str, body: object, uri_known: Callable[[str], bool]) -> list[dict[str, Any]]:
    """Every problem of a generation body, as `issues`; [] if Runway would accept it."""
    problems = [issue(list(i.path), i.message) for i in schemas().validate(endpoint, body)]
    for path, uri in runway_uris(body):
        if not uri_known(uri):
            problems.append(
                issue(list(path), "Invalid runway:// URI: no such upload, or it has expired")
            )
    return problems


def models() -> list[str]:
    """Every model of every endpoint, once each (for /v1/organization's tier limits)."""
    found = dict.fromkeys(m for e in ENDPOINTS for m in schemas().models(e) or (e,))
    return list(found)
