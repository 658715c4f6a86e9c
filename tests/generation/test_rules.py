"""Tests for runwatchd.generation.rules: rule validation, request building, rules files, fingerprints."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from runwatchd.generation import rules
from runwatchd.errors import InvalidFile
from runwatchd.generation.rules import RULES_FILENAME, Rule, RuleResolver

URI = "runway://upload/abc"


def rule(endpoint: str = "image_to_video", **request: Any) -> Rule:
    table: dict[str, Any] = {"endpoint": endpoint, "request": request}
    parsed, problems = rules.parse_rule(table, "test", "rule")
    assert [] == problems
    assert parsed is not None
    return parsed


def media(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * 600)
    return path


def problems(table: dict[str, Any]) -> list[str]:
    parsed, found = rules.parse_rule(table, "test", "rule")
    assert (parsed is None) == bool(found)
    return found


@pytest.mark.parametrize(
    ("endpoint", "request_fields", "name", "expected"),
    [
        ("image_to_video", {"model": "gen4.5"}, "a.jpg", {"promptImage": URI}),
        ("video_to_video", {"model": "aleph2", "promptText": "p"}, "a.mp4", {"videoUri": URI}),
        ("video_upscale", {"model": "upscale_v1"}, "a.mov", {"videoUri": URI}),
        ("image_upscale", {"model": "magnific"}, "a.png", {"imageUri": URI}),
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
            {"model": "sts", "voice": {"type": "runway-preset", "presetId": "x"}},
            "a.wav",
            {"media": {"type": "audio", "uri": URI}},
        ),
        (
            "speech_to_speech",
            {"model": "sts", "voice": "v"},
            "a.mp4",
            {"media": {"type": "video", "uri": URI}},
        ),
        ("voice_isolation", {"model": "iso"}, "a.mp3", {"audioUri": URI}),
        ("voice_dubbing", {"model": "dub", "targetLang": "de"}, "a.flac", {"audioUri": URI}),
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


def test_text_endpoint_needs_input_field(tmp_path: Path) -> None:
    """An endpoint without a media input requires input_field, and then fills it with the URI."""
    table = {"endpoint": "text_to_video", "request": {"model": "veo3", "promptText": "p"}}
    assert [
        "rule.input_field: endpoint text_to_video takes no media input; set input_field to "
        "the request field that should get each file's runway:// URI"
    ] == problems(table)
    parsed, _ = rules.parse_rule({**table, "input_field": "referenceUri"}, "t", "")
    assert parsed is not None
    body = rules.build_request(parsed, media(tmp_path, "a.jpg"), URI, tmp_path)
    assert {"model": "veo3", "promptText": "p", "referenceUri": URI} == body


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            {"endpoint": "image_to_video", "request": {"model": "m"}, "colour": 1},
            ["rule.colour: unknown key (known: endpoint, input_field, name, output_dir, request)"],
        ),
        (
            {"request": {"model": "m"}},
            [
                "rule.endpoint: required (known: character_performance, "
                "image_to_video, image_upscale, sound_effect, speech_to_speech, text_to_image, "
                "text_to_speech, text_to_video, video_to_video, video_upscale, voice_dubbing, "
                "voice_isolation)"
            ],
        ),
        (
            {"endpoint": "image_to_video"},
            ["rule.request.model: required by image_to_video"],
        ),
        (
            {"endpoint": "video_to_video", "request": {"model": "aleph2"}},
            ["rule.request.promptText: required by video_to_video"],
        ),
        (
            {"endpoint": "voice_dubbing", "request": {"model": "d"}},
            ["rule.request.targetLang: required by voice_dubbing"],
        ),
        (
            {"endpoint": "character_performance", "request": {"model": "act_two"}},
            ["rule.request.reference: required by character_performance"],
        ),
        (
            {
                "endpoint": "character_performance",
                "request": {"model": "act_two", "reference": "runway://x"},
            },
            ["rule.request.reference: expected a table, got 'runway://x'"],
        ),
        (
            {"endpoint": "image_to_video", "request": {"model": "m", "duration": True}},
            ["rule.request.duration: expected an integer, got true (a bool is not an int)"],
        ),
        (
            {
                "endpoint": "image_to_video",
                "request": {"model": "m", "duration": "5", "seed": 1.5, "ratio": 16},
            },
            [
                "rule.request.duration: expected an integer, got '5'",
                "rule.request.seed: expected an integer, got 1.5",
                "rule.request.ratio: expected a string, got 16",
            ],
        ),
        (
            {"endpoint": "image_to_video", "request": {"model": 4.5}},
            ["rule.request.model: expected a string, got 4.5"],
        ),
        (
            {"endpoint": "image_to_video", "request": {"model": "m", "promptText": ""}},
            ["rule.request.promptText: must be 1-1000 characters, got 0"],
        ),
        (
            {"endpoint": "image_to_video", "request": {"model": "m", "promptText": "x" * 1001}},
            ["rule.request.promptText: must be 1-1000 characters, got 1001"],
        ),
        (
            {"endpoint": "image_to_video", "request": {"model": "m", "promptImage": "runway://x"}},
            [
                "rule.request.promptImage: filled with each file's runway:// URI; "
                "remove it from the request"
            ],
        ),
        (
            {"endpoint": "image_to_video", "request": "m"},
            ["rule.request: expected a table, got 'm'"],
        ),
        (
            {"endpoint": "image_to_video", "request": {"model": "m"}, "output_dir": "."},
            [
                "rule.output_dir: must not be the watched folder itself "
                "(outputs would be picked up as new files)"
            ],
        ),
        (
            {"endpoint": "image_to_video", "request": {"model": "m"}, "output_dir": 3},
            ["rule.output_dir: expected a string, got 3"],
        ),
    ],
)
def test_rule_problems_name_their_key_path(table: dict[str, Any], expected: list[str]) -> None:
    """Every rule problem is caught at load time, before money is spent, with its key path."""
    assert expected == problems(table)


def test_toml_dates_in_a_request_are_rejected() -> None:
    """A TOML datetime cannot be sent as JSON, so it is a problem at load time."""
    import datetime as dt

    table = {
        "endpoint": "image_to_video",
        "request": {"model": "m", "extra": {"when": dt.date(2026, 1, 2)}},
    }
    assert [
        "rule.request.extra.when: a date/time (2026-01-02) cannot be sent as JSON; "
        "quote it as a string"
    ] == problems(table)


def test_templates_expand_in_every_string(tmp_path: Path) -> None:
    """{stem}, {name} and {folder} expand in nested strings; other braces stay as written."""
    r = rule(
        model="m",
        promptText="{stem} in {folder}: {name} {unknown} { {} }}",
        extra={"tags": ["{stem}", 3]},
    )
    body = rules.build_request(r, media(tmp_path, "shots/beach.jpg"), URI, tmp_path)
    assert "beach in shots: beach.jpg {unknown} { {} }}" == body["promptText"]
    assert {"tags": ["beach", 3]} == body["extra"]
    assert "{stem} in {folder}: {name} {unknown} { {} }}" == r.request["promptText"]


@pytest.mark.parametrize("prompt_name", ["shot.jpg.prompt.txt", "shot.prompt.txt"])
def test_prompt_file_replaces_prompt_text(tmp_path: Path, prompt_name: str) -> None:
    """A <file>.prompt.txt (or <stem>.prompt.txt) beside the media replaces promptText, stripped."""
    (tmp_path / prompt_name).write_text("\ufeff  a {stem} wave \n", encoding="utf-8")
    body = rules.build_request(
        rule(model="m", promptText="x"), media(tmp_path, "shot.jpg"), URI, tmp_path
    )
    assert "a {stem} wave" == body["promptText"]


def test_prompt_file_is_ignored_by_endpoints_without_prompts(tmp_path: Path) -> None:
    """An upscale gets no promptText even when a prompt file lies beside the file."""
    (tmp_path / "a.png.prompt.txt").write_text("hello", encoding="utf-8")
    body = rules.build_request(
        rule("image_upscale", model="u"), media(tmp_path, "a.png"), URI, tmp_path
    )
    assert {"model": "u", "imageUri": URI} == body


def test_prompt_length_is_checked_per_file(tmp_path: Path) -> None:
    """A prompt that ends up empty or over 1000 characters raises InvalidFile naming the file."""
    (tmp_path / "sub" / "long.jpg.prompt.txt").parent.mkdir()
    (tmp_path / "sub" / "long.jpg.prompt.txt").write_text("y" * 1001, encoding="utf-8")
    with pytest.raises(InvalidFile) as info:
        rules.build_request(rule(model="m"), media(tmp_path, "sub/long.jpg"), URI, tmp_path)
    assert "sub/long.jpg: promptText is 1001 characters for this file; Runway takes 1-1000" == str(
        info.value
    )
    (tmp_path / "empty.jpg.prompt.txt").write_text(" \n", encoding="utf-8")
    with pytest.raises(InvalidFile) as info:
        rules.build_request(rule(model="m"), media(tmp_path, "empty.jpg"), URI, tmp_path)
    assert "empty.jpg.prompt.txt: the prompt file is empty" == str(info.value)
    with pytest.raises(InvalidFile) as info:
        rules.build_request(
            rule(model="m", promptText="{name}" * 100),
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
        rules.build_request(rule(model="m"), media(tmp_path, "voice.wav"), URI, tmp_path)
    assert "voice.wav: image_to_video (promptImage) takes image files, not audio" == str(info.value)
    with pytest.raises(InvalidFile) as info:
        rules.build_request(
            rule("speech_to_speech", model="m", voice="v"), media(tmp_path, "a.jpg"), URI, tmp_path
        )
    assert "a.jpg: speech_to_speech (media) takes audio or video files, not image" == str(
        info.value
    )


def test_check_media_runs_before_any_upload(tmp_path: Path) -> None:
    """check_media needs no URI, so a misfit file can be refused before it is uploaded."""
    assert "image" == rules.check_media(rule(model="m"), tmp_path / "a.JPG", tmp_path)
    with pytest.raises(InvalidFile) as info:
        rules.check_media(rule(model="m"), tmp_path / "sub" / "a.mov", tmp_path)
    assert "sub/a.mov: image_to_video (promptImage) takes image files, not video" == str(info.value)


def test_build_request_never_mutates_the_rule(tmp_path: Path) -> None:
    """The request is deep-copied: nested values built for one file never leak into the next."""
    r = rule(
        "character_performance", model="act_two", reference={"type": "video", "uri": "runway://r"}
    )
    body = rules.build_request(r, media(tmp_path, "a.jpg"), URI, tmp_path)
    body["reference"]["uri"] = "changed"
    assert {"type": "video", "uri": "runway://r"} == r.request["reference"]


def test_fingerprint_is_stable_and_sensitive() -> None:
    """The fingerprint ignores key order and the source, and changes with what gets billed."""
    a = rule(model="m", promptText="p", duration=5)
    b, _ = rules.parse_rule(
        {
            "request": {"duration": 5, "promptText": "p", "model": "m"},
            "endpoint": "image_to_video",
            "input_field": "promptImage",
            "output_dir": "elsewhere",
        },
        "other",
        "",
    )
    assert b is not None
    assert rules.rule_fingerprint(a) == rules.rule_fingerprint(b)
    assert 64 == len(rules.rule_fingerprint(a))
    assert rules.rule_fingerprint(a) != rules.rule_fingerprint(
        rule(model="m", promptText="p", duration=6)
    )
    assert "5a14a1a8c6ff3493" == rules.rule_fingerprint(rule(model="m"))[:16]


def write_rules(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / RULES_FILENAME
    path.write_text(text, encoding="utf-8")
    return path


def test_nearest_rules_file_wins(tmp_path: Path) -> None:
    """The rules file nearest to the file wins, then the ones above, then the config rule."""
    config_rule = rule(model="from-config")
    write_rules(tmp_path, 'endpoint = "image_to_video"\n[request]\nmodel = "root"\n')
    write_rules(
        tmp_path / "a" / "b",
        'endpoint = "image_upscale"\noutput_dir = "up"\n[request]\nmodel = "b"\n',
    )
    resolver = RuleResolver(tmp_path, config_rule)
    deep = resolver.rule_for(tmp_path / "a" / "b" / "c" / "x.jpg")
    assert deep is not None
    assert ("image_upscale", "b", str(tmp_path / "a" / "b" / RULES_FILENAME), "b") == (
        deep.endpoint,
        deep.request["model"],
        deep.source,
        deep.name,
    )
    assert tmp_path / "a" / "b" / "up" == deep.output_path(tmp_path)
    root_rule = resolver.rule_for(tmp_path / "a" / "x.jpg")
    assert root_rule is not None and "root" == root_rule.request["model"]
    (tmp_path / RULES_FILENAME).unlink()
    assert config_rule is resolver.rule_for(tmp_path / "a" / "x.jpg")
    assert config_rule is resolver.rule_for(Path("/elsewhere/x.jpg"))


def test_rules_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    """An edited rules file is read again; an unchanged one is served from the cache."""
    path = write_rules(tmp_path, 'endpoint = "image_to_video"\n[request]\nmodel = "one"\n')
    resolver = RuleResolver(tmp_path, None)
    first = resolver.rule_for(tmp_path / "x.jpg")
    assert first is resolver.rule_for(tmp_path / "x.jpg")
    path.write_text('endpoint = "image_to_video"\n[request]\nmodel = "two"\n', encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    second = resolver.rule_for(tmp_path / "x.jpg")
    assert second is not None and "two" == second.request["model"]


def test_invalid_rules_file_is_ignored_and_reported_once(tmp_path: Path, caplog) -> None:
    """A broken rules file is skipped for the next rule up, logged once, and in problems()."""
    config_rule = rule(model="cfg")
    path = write_rules(tmp_path / "sub", 'endpoint = "img2vid"\ncolour = 1\n')
    resolver = RuleResolver(tmp_path, config_rule)
    with caplog.at_level(logging.WARNING, logger="runwatchd.generation.rules"):
        assert config_rule is resolver.rule_for(tmp_path / "sub" / "x.jpg")
        assert config_rule is resolver.rule_for(tmp_path / "sub" / "y.jpg")
    assert 1 == len(caplog.records)
    assert str(path) in caplog.records[0].getMessage()
    found = resolver.problems()
    assert [str(path)] == list(found)
    assert (
        "colour: unknown key (known: endpoint, input_field, name, output_dir, request)"
        == found[str(path)][0]
    )
    assert found[str(path)][1].startswith("endpoint: unknown endpoint 'img2vid' (known: ")
    path.write_text('endpoint = "image_to_video"\n[request\n', encoding="utf-8")
    assert config_rule is resolver.rule_for(tmp_path / "sub" / "x.jpg")
    assert {
        str(path): ["line 2, column 9: Expected ']' at the end of a table declaration"]
    } == resolver.problems()
    path.unlink()
    assert config_rule is resolver.rule_for(tmp_path / "sub" / "x.jpg")
    assert {} == resolver.problems()


def test_files_under_a_broken_rules_file_wait_for_the_fix(tmp_path: Path) -> None:
    """A broken nearest rules file blocks its files (no fallback billing); a valid one unblocks."""
    write_rules(tmp_path, 'endpoint = "image_to_video"\n[request]\nmodel = "root"\n')
    path = write_rules(tmp_path / "sub", 'endpoint = "img2vid"\n')
    resolver = RuleResolver(tmp_path, rule(model="cfg"))
    reason = resolver.broken_rules_file(tmp_path / "sub" / "deeper" / "x.jpg")
    assert reason is not None and reason.startswith(f"the rules file {path} is invalid: endpoint")
    assert None is resolver.broken_rules_file(tmp_path / "x.jpg")
    path.write_text('endpoint = "image_to_video"\n[request]\nmodel = "sub"\n', encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert None is resolver.broken_rules_file(tmp_path / "sub" / "x.jpg")


def test_a_directory_named_like_a_rules_file_is_reported(tmp_path: Path) -> None:
    """A directory called runwatchd.rules.toml is skipped and reported, not crashed on."""
    (tmp_path / RULES_FILENAME).mkdir()
    resolver = RuleResolver(tmp_path, None)
    assert None is resolver.rule_for(tmp_path / "x.jpg")
    assert {str(tmp_path / RULES_FILENAME): ["not a regular file"]} == resolver.problems()
