"""Tests for runwatchd.generation.rules' request building: where the URI goes, templates, prompt
files, and media a rule cannot take."""

from __future__ import annotations

from pathlib import Path

import pytest
from rules_helpers import GEN45, STS_VOICE, URI, media, problems, rule

from runwatchd.errors import InvalidFile
from runwatchd.generation import prompts, rules
from runwatchd.runway import schemas


@pytest.mark.parametrize(
    ("endpoint", "request_fields", "name", "expected"),
    [
        ("image_to_video", GEN45, "a.jpg", {"promptImage": URI}),
        ("video_to_video", {"model": "aleph2", "promptText": "p"}, "a.mp4", {"videoUri": URI}),
        ("video_upscale", {"model": "magnific_video_upscaler_creative"}, "a.mov", {"videoUri": URI}),
        ("image_upscale", {"model": "magnific_precision_upscaler_v2"}, "a.png", {"imageUri": URI}),
        (
            "character_performance",
            {"model": "act_two", "reference": {"type": "video", "uri": "runway://r"}},
            "a.webp",
            {"character": {"type": "image", "uri": URI}},
        ),
        (
            "character_performance",
            {"model": "act_two", "reference": {"type": "video", "uri": "runway://r"}},
            "a.mp4",
            {"character": {"type": "video", "uri": URI}},
        ),
        (
            "speech_to_speech",
            {"model": "eleven_multilingual_sts_v2", "voice": STS_VOICE},
            "a.wav",
            {"media": {"type": "audio", "uri": URI}},
        ),
        (
            "speech_to_speech",
            {"model": "eleven_multilingual_sts_v2", "voice": STS_VOICE},
            "a.mp4",
            {"media": {"type": "video", "uri": URI}},
        ),
        ("voice_isolation", {"model": "eleven_voice_isolation"}, "a.mp3", {"audioUri": URI}),
        ("voice_dubbing", {"model": "eleven_voice_dubbing", "targetLang": "de"}, "a.flac", {"audioUri": URI}),
        ("video_to_audio", {"model": "mirelo_sfx_2_0", "duration": 4.5}, "a.webm",
         {"videoUri": URI}),
        ("video_to_hdr", {"model": "ruby"}, "a.mov", {"videoUri": URI}),
        (
            "avatar_videos",
            {"model": "gwm1_avatars", "avatar": {"type": "custom", "avatarId": "a1"}},
            "a.m4a",
            {"speech": {"type": "audio", "audio": URI}},
        ),
        ("recipes/ad_localization", {"targetLanguage": "ja", "version": "2026-06"}, "a.webp",
         {"referenceImage": {"uri": URI}}),
        ("recipes/product_ad", {"version": "2026-07"}, "a.jpg", {"productImages": [{"uri": URI}]}),
        (
            "recipes/product_swap",
            {"version": "2026-06", "originalProductImage": {"uri": "https://c/o.png"},
             "newProductImages": [{"uri": "https://c/n.png", "view": "front"}]},
            "a.mp4",
            {"referenceVideo": {"uri": URI}},
        ),
    ],
)
def test_each_endpoint_puts_the_uri_in_its_media_field(
    tmp_path: Path, endpoint: str, request_fields: dict, name: str, expected: dict
) -> None:
    """build_request puts the URI into the endpoint's media field, typed where Runway wants it."""
    body = rules.build_request(
        rule(endpoint, **request_fields), media(tmp_path, name), URI, tmp_path
    )
    assert {**request_fields, **expected} == body


def test_input_field_override(tmp_path: Path) -> None:
    """input_field sends the file as act_two's reference; the request then needs the character."""
    table = {
        "endpoint": "character_performance",
        "input_field": "reference",
        "request": {"model": "act_two", "character": {"type": "image", "uri": "runway://c"}},
    }
    parsed, found = rules.parse_rule(table, "test", "")
    assert parsed is not None and [] == found
    body = rules.build_request(parsed, media(tmp_path, "drive.mp4"), URI, tmp_path)
    assert {"type": "video", "uri": URI} == body["reference"]
    with pytest.raises(InvalidFile):
        rules.build_request(parsed, media(tmp_path, "still.jpg"), URI, tmp_path)


def test_input_field_override_takes_the_fields_shape(tmp_path: Path) -> None:
    """input_field = "newProductImages" sends the still as [{uri}], as the recipe wants; a
    video for it is refused before its upload."""
    table = {
        "endpoint": "recipes/product_swap",
        "input_field": "newProductImages",
        "request": {"version": "2026-06", "originalProductImage": {"uri": "https://c/o.png"},
                    "referenceVideo": {"uri": "https://c/v.mp4"}},
    }
    parsed, found = rules.parse_rule(table, "test", "")
    assert parsed is not None and [] == found
    body = rules.build_request(parsed, media(tmp_path, "new.png"), URI, tmp_path)
    assert [{"uri": URI}] == body["newProductImages"]
    with pytest.raises(InvalidFile, match="takes image files, not video"):
        rules.build_request(parsed, media(tmp_path, "new.mp4"), URI, tmp_path)


@pytest.mark.parametrize(("endpoint", "request_table", "name"), [
    ("avatar_videos", {"model": "gwm1_avatars",
                       "avatar": {"type": "runway-preset", "presetId": "influencer"}}, "a.png"),
    ("video_to_hdr", {"model": "ruby"}, "a.wav"),
    ("recipes/product_ugc", {"version": "2026-06", "characterImage": {"uri": "https://c/c.png"}},
     "a.mp4"),
])
def test_a_file_of_the_wrong_kind_for_a_new_endpoint_is_refused(
        tmp_path: Path, endpoint: str, request_table: dict, name: str) -> None:
    """The default input's media kinds hold for the new endpoints too (before any upload)."""
    with pytest.raises(InvalidFile, match=f"{endpoint} "):
        rules.build_request(rule(endpoint, **request_table), media(tmp_path, name), URI,
                            tmp_path)


def test_text_endpoint_needs_input_field(tmp_path: Path) -> None:
    """An endpoint without a default media input requires input_field (or {uri}), and then
    fills it with the URI."""
    table = {"endpoint": "text_to_image",
             "request": {"model": "ideogram_4_5", "promptText": "p"}}
    assert [
        "rule.input_field: endpoint text_to_image has no default input field; set input_field "
        "to the request field that should get each file's runway:// URI, or place it with "
        '"{uri}"'
    ] == problems(table)
    parsed, _ = rules.parse_rule({**table, "input_field": "maskUri"}, "t", "")
    assert parsed is not None
    body = rules.build_request(parsed, media(tmp_path, "a.jpg"), URI, tmp_path)
    assert {"model": "ideogram_4_5", "promptText": "p", "maskUri": URI} == body



def test_templates_expand_in_every_string(tmp_path: Path) -> None:
    """{stem}, {name} and {folder} expand in nested strings; other braces stay as written."""
    r = rule(
        "text_to_image",
        model="gen4_image",
        ratio="1920:1080",
        promptText="{stem} in {folder}: {name} {unknown} { {} }}",
        referenceImages=[{"uri": "{uri}", "tag": "{stem}"}],
    )
    body = rules.build_request(r, media(tmp_path, "shots/beach.jpg"), URI, tmp_path)
    assert "beach in shots: beach.jpg {unknown} { {} }}" == body["promptText"]
    assert [{"uri": URI, "tag": "beach"}] == body["referenceImages"]
    assert "{stem} in {folder}: {name} {unknown} { {} }}" == r.request["promptText"]


@pytest.mark.parametrize("prompt_name", ["shot.jpg.prompt.txt", "shot.prompt.txt"])
def test_prompt_file_replaces_prompt_text(tmp_path: Path, prompt_name: str) -> None:
    """A <file>.prompt.txt (or <stem>.prompt.txt) beside the media replaces promptText, stripped."""
    (tmp_path / prompt_name).write_text("\ufeff  a {stem} wave \n", encoding="utf-8")
    body = rules.build_request(
        rule(**GEN45), media(tmp_path, "shot.jpg"), URI, tmp_path
    )
    assert "a {stem} wave" == body["promptText"]


def test_prompt_file_is_ignored_by_endpoints_without_prompts(tmp_path: Path) -> None:
    """An upscale gets no promptText even when a prompt file lies beside the file."""
    (tmp_path / "a.png.prompt.txt").write_text("hello", encoding="utf-8")
    body = rules.build_request(
        rule("image_upscale", model="magnific_precision_upscaler_v2"), media(tmp_path, "a.png"),
        URI, tmp_path)
    assert {"model": "magnific_precision_upscaler_v2", "imageUri": URI} == body


def test_prompt_length_is_checked_per_file(tmp_path: Path) -> None:
    """A prompt that ends up empty or over 1000 characters raises InvalidFile naming the file."""
    (tmp_path / "sub" / "long.jpg.prompt.txt").parent.mkdir()
    (tmp_path / "sub" / "long.jpg.prompt.txt").write_text("y" * 1001, encoding="utf-8")
    with pytest.raises(InvalidFile) as info:
        rules.build_request(rule(**GEN45), media(tmp_path, "sub/long.jpg"), URI, tmp_path)
    assert "sub/long.jpg: promptText is 1001 characters for this file; Runway takes 1-1000" == str(
        info.value
    )
    (tmp_path / "empty.jpg.prompt.txt").write_text(" \n", encoding="utf-8")
    with pytest.raises(InvalidFile) as info:
        rules.build_request(rule(**GEN45), media(tmp_path, "empty.jpg"), URI, tmp_path)
    assert "empty.jpg.prompt.txt: the prompt file is empty" == str(info.value)
    with pytest.raises(InvalidFile) as info:
        rules.build_request(
            rule(**{**GEN45, "promptText": "{name}" * 100}),
            media(tmp_path, "clip12345.jpg"),
            URI,
            tmp_path,
        )
    assert "clip12345.jpg: promptText is 1300 characters for this file; Runway takes 1-1000" == str(
        info.value
    )


def test_wrong_media_kind_is_an_invalid_file(tmp_path: Path) -> None:
    """A .wav in an image_to_video folder raises InvalidFile with one clear line."""
    with pytest.raises(InvalidFile) as info:
        rules.build_request(rule(**GEN45), media(tmp_path, "voice.wav"), URI, tmp_path)
    assert "voice.wav: image_to_video (promptImage) takes image files, not audio" == str(info.value)
    with pytest.raises(InvalidFile) as info:
        rules.build_request(
            rule("speech_to_speech", model="eleven_multilingual_sts_v2", voice=STS_VOICE),
            media(tmp_path, "a.jpg"), URI, tmp_path)
    assert "a.jpg: speech_to_speech (media) takes audio or video files, not image" == str(
        info.value
    )


def test_check_media_runs_before_any_upload(tmp_path: Path) -> None:
    """check_media needs no URI, so a misfit file can be refused before it is uploaded."""
    assert "image" == rules.check_media(rule(**GEN45), tmp_path / "a.JPG", tmp_path)
    with pytest.raises(InvalidFile) as info:
        rules.check_media(rule(**GEN45), tmp_path / "sub" / "a.mov", tmp_path)
    assert "sub/a.mov: image_to_video (promptImage) takes image files, not video" == str(info.value)


def test_build_request_never_mutates_the_rule(tmp_path: Path) -> None:
    """The request is deep-copied: nested values built for one file never leak into the next."""
    r = rule(
        "character_performance", model="act_two", reference={"type": "video", "uri": "runway://r"}
    )
    body = rules.build_request(r, media(tmp_path, "a.jpg"), URI, tmp_path)
    body["reference"]["uri"] = "changed"
    assert {"type": "video", "uri": "runway://r"} == r.request["reference"]


def test_prompt_limit_is_the_models_in_utf16_units(tmp_path: Path) -> None:
    """600 emoji are 1200 UTF-16 units: over gen4.5's 1000; seedance2 takes up to 3500."""
    emoji = "\U0001f600" * 600
    (tmp_path / "e.jpg.prompt.txt").write_text(emoji, encoding="utf-8")
    with pytest.raises(InvalidFile) as info:
        rules.build_request(rule(**GEN45), media(tmp_path, "e.jpg"), URI, tmp_path)
    assert "e.jpg: promptText is 1200 characters for this file; Runway takes 1-1000" == str(
        info.value)
    body = rules.build_request(rule(model="seedance2"), media(tmp_path, "e.jpg"), URI, tmp_path)
    assert emoji == body["promptText"]
    assert [(1000, 3500, None, 1000)] == [(
        rules.prompt_limit("image_to_video", "gen4.5"),
        rules.prompt_limit("image_to_video", "seedance2"),
        rules.prompt_limit("image_to_video", "kling_4"),
        rules.prompt_limit("image_to_video", "not-a-model"))]


def test_prompt_limit_reads_a_models_schema_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every submission asks for the limit; the model's schema (a JSON file) is read once."""
    calls: list[tuple[str, str | None]] = []
    real = schemas.Schemas.schema

    def counting(self: schemas.Schemas, endpoint: str, model: str | None = None) -> dict:
        calls.append((endpoint, model))
        return real(self, endpoint, model)

    monkeypatch.setattr(schemas.Schemas, "schema", counting)
    prompts.model_prompt_limit.cache_clear()
    limits = [rules.prompt_limit("image_to_video", "gen4.5") for _ in range(5)]
    assert ([1000] * 5, [("image_to_video", "gen4.5")]) == (limits, calls)


def test_uri_placeholder_places_the_file_in_lists_and_nested_tables(tmp_path: Path) -> None:
    """"{uri}" anywhere in the request (a list of tables here) gets the file's URI; no
    input_field is needed, and nothing else is added."""
    refs = rule("text_to_image", model="gen4_image", promptText="@ref in the rain",
                ratio="1920:1080", referenceImages=[{"uri": "{uri}", "tag": "ref"}])
    body = rules.build_request(refs, media(tmp_path, "a.png"), URI, tmp_path)
    assert {"model": "gen4_image", "promptText": "@ref in the rain", "ratio": "1920:1080",
            "referenceImages": [{"uri": URI, "tag": "ref"}]} == body
    nested = rule("image_to_video", model="gen4.5", promptText="x", ratio="1280:720",
                  duration=5, promptImage=[{"uri": "{uri}", "position": "first"}])
    assert [{"uri": URI, "position": "first"}] == rules.build_request(
        nested, media(tmp_path, "b.jpg"), URI, tmp_path)["promptImage"]


def test_uri_placeholder_checks_the_media_kind_of_its_field(tmp_path: Path) -> None:
    """A .wav bound for referenceImages is refused before uploading, naming the field."""
    refs = rule("text_to_image", model="gen4_image", promptText="x", ratio="1920:1080",
                referenceImages=[{"uri": "{uri}", "tag": "ref"}])
    with pytest.raises(InvalidFile) as info:
        rules.check_media(refs, media(tmp_path, "voice.wav"), tmp_path)
    assert ("voice.wav: text_to_image (referenceImages[0].uri) takes image files, not audio"
            == str(info.value))


@pytest.mark.parametrize(("endpoint", "request_table", "expected"), [
    ("generate/video",
     {"configId": "c", "input": {"promptText": "rule's", "duration": 5,
                                 "referenceImages": [{"role": "first", "uri": "{uri}"}]}},
     {"configId": "c", "input": {"promptText": "p" * 1500, "duration": 5,
                                 "referenceImages": [{"role": "first", "uri": URI}]}}),
    ("recipes/marketing_stock_image", {"prompt": "rule's", "version": "2026-06"},
     {"prompt": "p" * 1500, "version": "2026-06", "referenceImage": {"uri": URI}}),
    ("recipes/ad_localization", {"targetLanguage": "de", "version": "2026-06"},
     {"targetLanguage": "de", "version": "2026-06", "referenceImage": {"uri": URI}}),
])
def test_a_prompt_file_goes_where_the_endpoint_keeps_its_prompt(
        tmp_path: Path, endpoint: str, request_table: dict, expected: dict) -> None:
    """A model router's prompt sits in `input`, a recipe's in `prompt` (1,500 characters: no
    limit there in the schemas); a recipe without a prompt gets none, and no endpoint gets a
    top-level promptText its requests lack."""
    (tmp_path / "a.png.prompt.txt").write_text("p" * 1500, encoding="utf-8")
    body = rules.build_request(rule(endpoint, **request_table), media(tmp_path, "a.png"), URI,
                               tmp_path)
    assert expected == body
