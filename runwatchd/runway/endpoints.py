"""The endpoint table: what the shipped schemas cannot say about each generation endpoint.

The request's shape (fields, types, required fields, enums, models, whether a model takes a
promptText) comes from the JSON Schemas generated from the official SDK (runway/schemas.py);
a hand-kept list of fields falls behind the monthly model changes. What the schemas do not say,
and stays here: which field gets the file's runway:// URI when a rule names neither input_field
nor a "{uri}" placement (the first input of an endpoint), how the URI sits in that field (bare,
`{type, uri}`, `{uri}`, `[{uri}]`, ...), and the media kinds each such input takes (also for
models whose schema lacks the field, so a misfit file is refused before its upload).

An endpoint is named by its URL path after /v1/ ("video_to_audio", "generate/video",
"recipes/product_ad"), as in the schemas' index. Every endpoint of the schemas is here and
every endpoint here is in the schemas (tests/runway/test_endpoints.py), so a regenerated index
with a new endpoint fails the tests until it has its line. An endpoint whose media fields are
all optional references beside a prompt (text_to_video, text_to_image, generate/*) has no
default input: its rules say where the file goes with "{uri}" (a reference needs a role or tag
only the rule can give).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

URI, KIND = "{uri}", "{kind}"  # stand-ins in an input's template
BARE: Any = URI
TYPED: Any = {"type": KIND, "uri": URI}  # the type names the file's media kind
OBJECT: Any = {"uri": URI}
LISTED: Any = [{"uri": URI}]


@dataclass(frozen=True)
class InputSpec:
    """A request field that can take the file's runway:// URI.

    `template`: the field's value, with "{uri}" where the URI goes and "{kind}" where the
    file's media kind goes (JSON: strings, lists and tables)."""

    kinds: frozenset[str]
    template: Any = field(default=BARE, hash=False)

    @property
    def uri_path(self) -> tuple[str | int, ...]:
        """Where the URI sits inside the field's value (() for a bare URI)."""
        found = _path_to(self.template, URI)
        if found is None:
            raise ValueError(f"input template {self.template!r} has no {URI}")
        return found

    def value(self, kind: str, uri: str) -> Any:
        """The field's value for a file of media kind `kind` uploaded as `uri`."""
        return _fill(self.template, {URI: uri, KIND: kind})


@dataclass(frozen=True)
class EndpointSpec:
    """Where a file goes at one generation endpoint when the rule does not say, and where the
    text of a `<file>.prompt.txt` goes (`prompt`: keys from the body's root)."""

    inputs: Mapping[str, InputSpec]  # the first one is the default input field
    prompt: tuple[str, ...] = ("promptText",)

    @property
    def default_input(self) -> str | None:
        return next(iter(self.inputs), None)


def _path_to(value: Any, mark: str) -> tuple[str | int, ...] | None:
    if value == mark:
        return ()
    items: list[tuple[str | int, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    for key, item in items:
        if (rest := _path_to(item, mark)) is not None:
            return (key, *rest)
    return None


def _fill(value: Any, marks: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, marks) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, marks) for v in value]
    return marks.get(value, value) if isinstance(value, str) else value


_IMAGE, _VIDEO, _AUDIO = frozenset({"image"}), frozenset({"video"}), frozenset({"audio"})
_NONE: dict[str, InputSpec] = {}
_ROUTED_PROMPT, _RECIPE_PROMPT = ("input", "promptText"), ("prompt",)
ENDPOINTS: dict[str, EndpointSpec] = {
    "image_to_video": EndpointSpec({"promptImage": InputSpec(_IMAGE)}),
    "text_to_video": EndpointSpec(_NONE),
    "video_to_video": EndpointSpec({"videoUri": InputSpec(_VIDEO)}),
    "text_to_image": EndpointSpec(_NONE),
    "character_performance": EndpointSpec(
        {"character": InputSpec(_IMAGE | _VIDEO, TYPED),
         "reference": InputSpec(_VIDEO, TYPED)}),
    "video_upscale": EndpointSpec({"videoUri": InputSpec(_VIDEO)}),
    "image_upscale": EndpointSpec({"imageUri": InputSpec(_IMAGE)}),
    "sound_effect": EndpointSpec(_NONE),
    "text_to_speech": EndpointSpec(_NONE),
    "speech_to_speech": EndpointSpec({"media": InputSpec(_AUDIO | _VIDEO, TYPED)}),
    "voice_isolation": EndpointSpec({"audioUri": InputSpec(_AUDIO)}),
    "voice_dubbing": EndpointSpec({"audioUri": InputSpec(_AUDIO)}),
    "video_to_audio": EndpointSpec({"videoUri": InputSpec(_VIDEO)}),
    "video_to_hdr": EndpointSpec({"videoUri": InputSpec(_VIDEO)}),
    # The avatar speaks the file: speech is {type: "audio", audio} (or a text, set by the rule).
    "avatar_videos": EndpointSpec(
        {"speech": InputSpec(_AUDIO, {"type": "audio", "audio": URI})}),
    # The routers' options, the prompt among them, sit in the body's `input` table.
    "generate/video": EndpointSpec(_NONE, _ROUTED_PROMPT),
    "generate/image": EndpointSpec(_NONE, _ROUTED_PROMPT),
    "generate/audio": EndpointSpec(_NONE, _ROUTED_PROMPT),
    "recipes/ad_localization": EndpointSpec({"referenceImage": InputSpec(_IMAGE, OBJECT)}),
    "recipes/marketing_stock_image": EndpointSpec(
        {"referenceImage": InputSpec(_IMAGE, OBJECT)}, _RECIPE_PROMPT),
    "recipes/multi_shot_video": EndpointSpec(
        {"firstFrame": InputSpec(_IMAGE, OBJECT)}, _RECIPE_PROMPT),
    "recipes/product_ad": EndpointSpec(
        {"productImages": InputSpec(_IMAGE, LISTED), "styleImages": InputSpec(_IMAGE, LISTED)}),
    "recipes/product_campaign_image": EndpointSpec(
        {"image": InputSpec(_IMAGE, OBJECT)}, _RECIPE_PROMPT),
    # The swap is done on a video: the file is that video unless input_field says otherwise.
    "recipes/product_swap": EndpointSpec(
        {"referenceVideo": InputSpec(_VIDEO, OBJECT),
         "originalProductImage": InputSpec(_IMAGE, OBJECT),
         "newProductImages": InputSpec(_IMAGE, LISTED)}),
    "recipes/product_ugc": EndpointSpec(
        {"productImage": InputSpec(_IMAGE, OBJECT), "characterImage": InputSpec(_IMAGE, OBJECT)}),
}
