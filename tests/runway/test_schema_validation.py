"""Tests for runwatchd.runway.schemas: loading the shipped schemas and validating bodies."""

from __future__ import annotations

from typing import Any

import pytest

from runwatchd.runway.schemas import Issue, MediaField, Schemas, UnknownEndpoint, default

GEN4_TURBO = {"model": "gen4_turbo", "promptImage": "runway://upload/a", "ratio": "1280:720"}


def issues(endpoint: str, body: Any) -> list[Issue]:
    return default().validate(endpoint, body)


def test_default_is_loaded_once() -> None:
    """default() reads the package data once and hands out the same object."""
    assert default() is default()


def test_index_knows_every_endpoint_and_its_url() -> None:
    """Endpoints are named by their URL path after /v1/, generate/* included."""
    schemas = default()
    assert {"video_to_audio", "video_to_hdr", "generate/video"} <= set(schemas.endpoints())
    assert "/v1/generate/video" == schemas.url_path("generate/video")
    assert schemas.sdk_version


def test_unknown_endpoint_is_its_own_error() -> None:
    """An endpoint that does not exist raises UnknownEndpoint (a KeyError)."""
    with pytest.raises(UnknownEndpoint):
        default().validate("image_to_vidoe", {})


def test_valid_body_has_no_issues() -> None:
    """A gen4_turbo request with a runway:// image and a ratio passes."""
    assert [] == issues("image_to_video", GEN4_TURBO)


def test_missing_model_is_required() -> None:
    """Without a model there is no variant to check against: the model is reported."""
    assert [Issue(("model",), "Required")] == issues("image_to_video", {})


def test_unknown_model_lists_the_models() -> None:
    """A model the endpoint does not have is refused with the accepted ones in the message."""
    [found] = issues("image_to_video", {**GEN4_TURBO, "model": "veo3"})
    assert ("model",) == found.path
    assert "Invalid discriminator value" in found.message and "'veo3.1'" in found.message


def test_missing_fields_are_reported_each_at_its_path() -> None:
    """Every required field of the chosen model is reported, one issue each."""
    expected = [Issue((name,), "Required") for name in ("promptImage", "ratio")]
    assert expected == issues("image_to_video", {"model": "gen4_turbo"})


def test_unknown_key_is_refused() -> None:
    """A field the model does not take (a typo) is an unrecognized key of its object."""
    assert [Issue((), "Unrecognized key(s) in object: 'referenceUri'")] == issues(
        "image_to_video", {**GEN4_TURBO, "referenceUri": "runway://upload/b"}
    )


def test_enum_type_and_range_messages() -> None:
    """Wrong ratio, wrong type and out-of-range duration read like Runway's messages."""
    body = {**GEN4_TURBO, "model": "gen4.5", "promptText": "x", "ratio": "1:1", "duration": 11}
    body["seed"] = "7"
    found = dict(issues("image_to_video", body))
    assert "Number must be less than or equal to 10" == found[("duration",)]
    assert "Expected integer, received string" == found[("seed",)]
    assert found[("ratio",)].startswith("Invalid enum value. Expected '1280:720'")


def test_prompt_limit_counts_utf16_units() -> None:
    """600 emoji are 1200 UTF-16 units: over gen4_turbo's 1000 though only 600 characters."""
    body = {**GEN4_TURBO, "promptText": "\N{GRINNING FACE}" * 600}
    assert [Issue(("promptText",), "String must contain at most 1000 character(s)")] == issues(
        "image_to_video", body
    )
    assert [] == issues("image_to_video", {**body, "promptText": "\N{GRINNING FACE}" * 500})


def test_media_must_be_a_uri_runway_accepts() -> None:
    """A bare file name where a media URI goes is refused; http:// is not HTTPS."""
    body = {**GEN4_TURBO, "promptImage": [{"uri": "clip.png", "position": "first"}]}
    message = "Expected an HTTPS URL, a data URI or a runway:// URI"
    assert [Issue(("promptImage", 0, "uri"), message)] == issues("image_to_video", body)
    assert [Issue(("promptImage",), message)] == issues(
        "image_to_video", {**GEN4_TURBO, "promptImage": "http://example.com/a.png"}
    )


def test_union_error_follows_the_branch_of_the_value() -> None:
    """A list promptImage is checked as the list form, not reported as 'no branch matched'."""
    body = {**GEN4_TURBO, "promptImage": [{"uri": "runway://upload/a", "position": "middle"}]}
    [found] = issues("image_to_video", body)
    assert ("promptImage", 0, "position") == found.path


def test_typed_media_object_names_the_wrong_type() -> None:
    """character_performance's character must be an image or a video, said at its `type`."""
    body = {
        "model": "act_two",
        "character": {"type": "audio", "uri": "runway://upload/a"},
        "reference": {"type": "video", "uri": "runway://upload/b"},
    }
    [found] = issues("character_performance", body)
    assert ("character", "type") == found.path


def test_body_that_is_not_an_object() -> None:
    """A JSON array as the whole body is refused at the root."""
    assert [Issue((), "Expected object, received array")] == issues("video_to_hdr", [1])


def test_media_fields_by_model() -> None:
    """video_to_video takes videoUri with aleph2 but promptVideo with seedance2."""
    aleph = {f.path for f in default().media_fields("video_to_video", "aleph2")}
    seedance = {f.path for f in default().media_fields("video_to_video", "seedance2")}
    assert ("videoUri",) in aleph and ("promptVideo",) not in aleph
    assert ("promptVideo",) in seedance and ("videoUri",) not in seedance


def test_media_field_kinds_and_typed_objects() -> None:
    """A typed media object says so, with the kinds its `type` allows."""
    fields = {f.path: f for f in default().media_fields("speech_to_speech")}
    media = fields[("media", "uri")]
    assert MediaField(("media", "uri"), frozenset({"audio", "video"}), True, media.models) == media


def test_schema_of_one_model_is_self_contained() -> None:
    """schema(endpoint, model) is the model's object schema with every $def it refers to."""
    schema = default().schema("image_to_video", "gen4.5")
    assert {"type": "object"}.items() <= schema.items()
    assert "Gen4_5PromptImagePromptImage" in schema["$defs"]
    with pytest.raises(KeyError):
        default().schema("image_to_video", "veo3")


def test_models_of_an_endpoint() -> None:
    """Single-model endpoints list their model; generate/* takes none."""
    assert ("ruby",) == default().models("video_to_hdr")
    assert () == default().models("generate/image")


def test_schemas_can_be_loaded_from_a_directory(tmp_path: Any) -> None:
    """Schemas(root) reads an index and schema files from any directory (a test seam)."""
    (tmp_path / "index.json").write_text(
        '{"sdkVersion": "0", "endpoints": {"x": {"path": "/v1/x", "schema": "x.json",'
        ' "models": [], "media": []}}}'
    )
    (tmp_path / "x.json").write_text('{"type": "object", "required": ["a"]}')
    assert [Issue(("a",), "Required")] == Schemas(tmp_path).validate("x", {})
