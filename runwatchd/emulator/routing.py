"""The model router behind /v1/generate/{video,image,audio}, as far as a client can see it.

Runway's router picks a model for a saved config and says why in the reply's `routing`
(the SDK's VideoCreateResponse and siblings require it). The emulator has no configs: it picks
one fixed model per modality and echoes the request's options, with router defaults for the
ones left out, so clients that read `routing` (and the SDK in strict mode) see Runway's shape.
"""

from __future__ import annotations

from typing import Any

ROUTED = {"generate/video": "gen4.5", "generate/image": "gen4_image"}
SPEECH_MODEL, SOUND_MODEL = "eleven_multilingual_v2", "eleven_text_to_sound_v2"
RATIOS = {
    "16:9": "1280:720", "9:16": "720:1280", "1:1": "960:960", "4:3": "1104:832",
    "3:4": "832:1104", "21:9": "1584:672", "2:3": "832:1248", "3:2": "1248:832",
    "4:5": "896:1120", "5:4": "1120:896",
}  # fmt: skip


def routed_model(endpoint: str, body: dict[str, Any]) -> str | None:
    """The model the router picks for a generate/* request; None for other endpoints."""
    if endpoint == "generate/audio":
        return SPEECH_MODEL if _input(body).get("type") == "speech" else SOUND_MODEL
    return ROUTED.get(endpoint)


def routing(endpoint: str, body: dict[str, Any], credits: int) -> dict[str, Any]:
    """The `routing` object of a generate/* reply."""
    options = _input(body)
    aspect = str(options.get("aspectRatio", "16:9"))
    if endpoint == "generate/video":
        resolved: dict[str, Any] = {
            "duration": options.get("duration", 5),
            "ratio": RATIOS.get(aspect, "1280:720"),
            "resolution": options.get("resolution", "720p"),
        }
    elif endpoint == "generate/image":
        resolved = {
            "aspectRatio": aspect,
            "ratio": RATIOS.get(aspect, "1280:720"),
            "resolution": options.get("resolution", "1k"),
        }
    else:
        voice = options.get("voice")
        kind = voice.get("type") if isinstance(voice, dict) else None
        speech = options.get("type") == "speech"
        resolved = {
            "type": "speech" if speech else "audio",
            "voice": kind
            if kind in ("preset", "reference-audio")
            else "default"
            if speech
            else "none",
        }
    return {
        "configId": body.get("configId"),
        "estimatedCost": {"credits": credits},
        "model": routed_model(endpoint, body),
        "provider": "runway" if endpoint != "generate/audio" else "elevenlabs",
        "resolvedInput": resolved,
        "resolvedSettings": {"optimizeFor": "quality", "priceCeiling": None},
    }


def _input(body: dict[str, Any]) -> dict[str, Any]:
    options = body.get("input")
    return options if isinstance(options, dict) else {}
