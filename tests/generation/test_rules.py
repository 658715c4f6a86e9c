"""Tests for runwatchd.generation.rules: rule validation with key paths, and fingerprints."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from rules_helpers import GEN45, problems, rule

from runwatchd.generation import rules
from runwatchd.generation.rules import Rule
from runwatchd.runway import schemas
from runwatchd.runway.endpoints import ENDPOINTS

I2V_MODELS = ", ".join(schemas.default().models("image_to_video"))


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            {"endpoint": "image_to_video", "request": GEN45, "colour": 1},
            ["rule.colour: unknown key (known: endpoint, input_field, name, output_dir, request)"],
        ),
        (
            {"request": GEN45},
            [
                f"rule.endpoint: required (known: {', '.join(sorted(ENDPOINTS))})"
            ],
        ),
        (
            {"endpoint": "image_to_video"},
            [f"rule.request.model: required (current models: {I2V_MODELS})"],
        ),
        (
            {"endpoint": "voice_dubbing", "request": {"model": "eleven_voice_dubbing"}},
            ["rule.request.targetLang: required by voice_dubbing (eleven_voice_dubbing)"],
        ),
        (
            {"endpoint": "character_performance", "request": {"model": "act_two"}},
            ["rule.request.reference: required by character_performance (act_two)"],
        ),
        (
            {
                "endpoint": "character_performance",
                "request": {"model": "act_two", "reference": "runway://x"},
            },
            ["rule.request.reference: Expected object, received string"],
        ),
        (
            {"endpoint": "image_to_video", "request": {**GEN45, "duration": True}},
            ["rule.request.duration: Expected integer, received boolean"],
        ),
        (
            {
                "endpoint": "image_to_video",
                "request": {**GEN45, "duration": "5", "seed": 1.5, "ratio": 16},
            },
            [
                "rule.request.duration: Expected integer, received string",
                "rule.request.ratio: Invalid enum value. Expected '1280:720' | '720:1280' | "
                "'1104:832' | '960:960' | '832:1104' | '1584:672', received 16",
                "rule.request.seed: Expected integer, received number",
            ],
        ),
        (
            {"endpoint": "image_to_video", "request": {**GEN45, "model": 4.5}},
            [f"rule.request.model: expected a string naming a model (current: {I2V_MODELS})"],
        ),
        (
            {"endpoint": "image_to_video", "request": {**GEN45, "promptText": ""}},
            ["rule.request.promptText: must be 1-1000 characters, got 0"],
        ),
        (
            {"endpoint": "image_to_video", "request": {**GEN45, "promptText": "x" * 1001}},
            ["rule.request.promptText: must be 1-1000 characters, got 1001"],
        ),
        (
            {"endpoint": "image_to_video", "request": {**GEN45, "promptImage": "runway://x"}},
            [
                "rule.request.promptImage: filled with each file's runway:// URI; "
                "remove it from the request"
            ],
        ),
        (
            {"endpoint": "sound_effect", "input_field": "promptText",
             "request": {"model": "eleven_text_to_sound_v2", "promptText": "rain"}},
            ["rule.request.promptText: filled with each file's runway:// URI; remove it from "
             "the request",
             "rule.input_field: promptText is not a media field of sound_effect "
             "(eleven_text_to_sound_v2); name a field that takes a media URI"],
        ),
        (
            {"endpoint": "generate/image", "input_field": "configId",
             "request": {"input": {"promptText": "x"}}},
            ["rule.input_field: configId is not a media field of generate/image; name a field "
             "that takes a media URI"],
        ),
        (
            {"endpoint": "image_to_video", "request": "m"},
            ["rule.request: expected a table, got 'm'"],
        ),
        (
            {"endpoint": "image_to_video", "request": GEN45, "output_dir": "."},
            [
                "rule.output_dir: must not be the watched folder itself "
                "(outputs would be picked up as new files)"
            ],
        ),
        (
            {"endpoint": "image_to_video", "request": GEN45, "output_dir": 3},
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
        "request": {**GEN45, "extra": {"when": dt.date(2026, 1, 2)}},
    }
    assert [
        "rule.request.extra.when: a date/time (2026-01-02) cannot be sent as JSON; "
        "quote it as a string"
    ] == problems(table)



def test_fingerprint_is_stable_and_sensitive() -> None:
    """The fingerprint ignores key order and the source, and changes with what gets billed."""
    a = rule(**{**GEN45, "promptText": "p"})
    b, _ = rules.parse_rule(
        {
            "request": {"duration": 5, "ratio": "1280:720", "promptText": "p", "model": "gen4.5"},
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
        rule(**{**GEN45, "promptText": "p", "duration": 6})
    )
    assert "5a14a1a8c6ff3493" == rules.rule_fingerprint(
        Rule("image_to_video", request={"model": "m"}))[:16]


def test_rule_prompt_is_checked_against_the_models_limit_at_load() -> None:
    """A literal promptText over the model's x-maxUtf16 is refused at load, in UTF-16 units."""
    _, problems = rules.parse_rule({"endpoint": "image_to_video", "request": {
        **GEN45, "promptText": "\U0001f600" * 501}}, "test", "rule")
    assert ["rule.request.promptText: must be 1-1000 characters, got 1002"] == problems
    parsed, problems = rules.parse_rule({"endpoint": "image_to_video", "request": {
        **GEN45, "model": "seedance2", "promptText": "y" * 3500}}, "test", "rule")
    assert ([], 3500) == (problems, parsed and len(parsed.request["promptText"]))


@pytest.mark.parametrize(("request_table", "expected"), [
    ({"model": "gen4_image", "promptText": "x", "ratio": "1920:1080", "seed": "{uri}"},
     ["rule.request.seed: not a media field of text_to_image (gen4_image); {uri} goes where "
      "Runway takes a media URI"]),
    ({"model": "gen4_image", "promptText": "x", "ratio": "1920:1080",
      "referenceImages": [{"uri": "see {uri}"}]},
     ["rule.request.referenceImages[0].uri: {uri} must be the whole value",
      "rule.input_field: endpoint text_to_image has no default input field; set input_field to "
      "the request field that should get each file's runway:// URI, or place it with \"{uri}\""]),
    ({"model": "gen4_image", "promptText": "x", "ratio": "1920:1080",
      "referenceImages": [{"uri": "{uri}", "tag": "hero"}]}, []),
])
def test_uri_placeholder_is_checked_at_load(request_table: dict[str, Any],
                                            expected: list[str]) -> None:
    """{uri} must be a whole value in a media field of the model."""
    _, found = rules.parse_rule({"endpoint": "text_to_image", "request": request_table},
                                "test", "rule")
    assert expected == found
