"""The endpoint table: what runwatchd knows about each Runway generation endpoint.

For every endpoint, the request fields that can take the file's runway:// URI (and the media
kinds each accepts), the fields Runway requires, and whether it takes a prompt; rules.py checks
rules and builds requests against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Fields whose type Runway fixes for every model; everything else is left to the API to judge.
FIELD_TYPES = {
    "model": "string", "promptText": "string", "ratio": "string",
    "duration": "integer", "seed": "integer",
}


@dataclass(frozen=True)
class InputSpec:
    """A request field that can take the file's runway:// URI."""

    kinds: frozenset[str]
    typed: bool = False  # {"type": <media kind>, "uri": ...} instead of a bare URI


@dataclass(frozen=True)
class EndpointSpec:
    """What runwatchd knows about one generation endpoint."""

    inputs: Mapping[str, InputSpec]  # the first one is the default input field
    required: tuple[str, ...]  # includes the input fields; the one the file fills is dropped
    takes_prompt: bool

    @property
    def default_input(self) -> str | None:
        return next(iter(self.inputs), None)


_IMAGE, _VIDEO, _AUDIO = frozenset({"image"}), frozenset({"video"}), frozenset({"audio"})
_NONE: dict[str, InputSpec] = {}
ENDPOINTS: dict[str, EndpointSpec] = {
    "image_to_video": EndpointSpec(
        {"promptImage": InputSpec(_IMAGE)}, ("model", "promptImage"), True),
    "text_to_video": EndpointSpec(_NONE, ("model", "promptText"), True),
    "video_to_video": EndpointSpec(
        {"videoUri": InputSpec(_VIDEO)}, ("model", "promptText", "videoUri"), True),
    "text_to_image": EndpointSpec(_NONE, ("model", "promptText"), True),
    "character_performance": EndpointSpec(
        {"character": InputSpec(_IMAGE | _VIDEO, typed=True),
         "reference": InputSpec(_VIDEO, typed=True)},
        ("model", "character", "reference"), False),
    "video_upscale": EndpointSpec({"videoUri": InputSpec(_VIDEO)}, ("model", "videoUri"), False),
    "image_upscale": EndpointSpec({"imageUri": InputSpec(_IMAGE)}, ("model", "imageUri"), False),
    "sound_effect": EndpointSpec(_NONE, ("model", "promptText"), True),
    "text_to_speech": EndpointSpec(_NONE, ("model", "promptText", "voice"), True),
    "speech_to_speech": EndpointSpec(
        {"media": InputSpec(_AUDIO | _VIDEO, typed=True)}, ("model", "media", "voice"), False),
    "voice_isolation": EndpointSpec({"audioUri": InputSpec(_AUDIO)}, ("model", "audioUri"), False),
    "voice_dubbing": EndpointSpec(
        {"audioUri": InputSpec(_AUDIO)}, ("model", "audioUri", "targetLang"), False),
}
