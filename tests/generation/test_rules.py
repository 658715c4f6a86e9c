"""Tests for runwatchd.generation.rules: rule validation with key paths, and fingerprints."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from rules_helpers import problems, rule

from runwatchd.generation import rules


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
    table = {
        "endpoint": "image_to_video",
        "request": {"model": "m", "extra": {"when": dt.date(2026, 1, 2)}},
    }
    assert [
        "rule.request.extra.when: a date/time (2026-01-02) cannot be sent as JSON; "
        "quote it as a string"
    ] == problems(table)



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


def test_rule_prompt_is_checked_against_the_models_limit_at_load() -> None:
    """A literal promptText over the model's x-maxUtf16 is refused at load, in UTF-16 units."""
    _, problems = rules.parse_rule({"endpoint": "image_to_video", "request": {
        "model": "gen4.5", "promptText": "\U0001f600" * 501}}, "test", "rule")
    assert ["rule.request.promptText: must be 1-1000 characters, got 1002"] == problems
    parsed, problems = rules.parse_rule({"endpoint": "image_to_video", "request": {
        "model": "seedance2", "promptText": "y" * 3500}}, "test", "rule")
    assert ([], 3500) == (problems, parsed and len(parsed.request["promptText"]))


@pytest.mark.parametrize(("request_table", "expected"), [
    ({"model": "gen4_image", "promptText": "x", "ratio": "{uri}"},
     ["rule.request.ratio: not a media field of text_to_image (gen4_image); {uri} goes where "
      "Runway takes a media URI"]),
    ({"model": "gen4_image", "promptText": "x", "referenceImages": [{"uri": "see {uri}"}]},
     ["rule.request.referenceImages[0].uri: {uri} must be the whole value",
      "rule.input_field: endpoint text_to_image takes no media input; set input_field to the "
      "request field that should get each file's runway:// URI"]),
    ({"model": "some_new_model", "promptText": "x", "anything": {"deep": ["{uri}"]}}, []),
])
def test_uri_placeholder_is_checked_at_load(request_table: dict[str, Any],
                                            expected: list[str]) -> None:
    """{uri} must be a whole value in a media field of a model the schemas know; for models
    they do not know, the API judges."""
    _, found = rules.parse_rule({"endpoint": "text_to_image", "request": request_table},
                                "test", "rule")
    assert expected == found
