"""The endpoint table: what the shipped schemas cannot say about each generation endpoint.

The request's shape (fields, types, required fields, enums, models, whether a model takes a
promptText) comes from the JSON Schemas generated from the official SDK (runway/schemas.py);
a hand-kept list of fields falls behind the monthly model changes. What the schemas do not say,
and stays here: which field gets the file's runway:// URI when a rule names neither input_field
nor a "{uri}" placement (the first input of an endpoint), and the media kinds each such input
takes (also for models whose schema lacks the field, so a misfit file is refused before its
upload). Every endpoint here is in the schemas (tests/runway/test_endpoints.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class InputSpec:
    """A request field that can take the file's runway:// URI."""

    kinds: frozenset[str]
    typed: bool = False  # {"type": <media kind>, "uri": ...} instead of a bare URI


@dataclass(frozen=True)
class EndpointSpec:
    """Where a file goes at one generation endpoint when the rule does not say."""

    inputs: Mapping[str, InputSpec]  # the first one is the default input field

    @property
    def default_input(self) -> str | None:
        return next(iter(self.inputs), None)


_IMAGE, _VIDEO, _AUDIO = frozenset({"image"}), frozenset({"video"}), frozenset({"audio"})
_NONE: dict[str, InputSpec] = {}
ENDPOINTS: dict[str, EndpointSpec] = {
    "image_to_video": EndpointSpec({"promptImage": InputSpec(_IMAGE)}),
    "text_to_video": EndpointSpec(_NONE),
    "video_to_video": EndpointSpec({"videoUri": InputSpec(_VIDEO)}),
    "text_to_image": EndpointSpec(_NONE),
    "character_performance": EndpointSpec(
        {"character": InputSpec(_IMAGE | _VIDEO, typed=True),
         "reference": InputSpec(_VIDEO, typed=True)}),
    "video_upscale": EndpointSpec({"videoUri": InputSpec(_VIDEO)}),
    "image_upscale": EndpointSpec({"imageUri": InputSpec(_IMAGE)}),
    "sound_effect": EndpointSpec(_NONE),
    "text_to_speech": EndpointSpec(_NONE),
    "speech_to_speech": EndpointSpec({"media": InputSpec(_AUDIO | _VIDEO, typed=True)}),
    "voice_isolation": EndpointSpec({"audioUri": InputSpec(_AUDIO)}),
    "voice_dubbing": EndpointSpec({"audioUri": InputSpec(_AUDIO)}),
}
