"""Tests for runwatchd.generation.rule_schema: rules checked at load against the shipped schemas,
through `runwatchd check-config` and parse_rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cli_helpers import cli_env, run_cli
from endpoint_rules import toml_value
from rules_helpers import GEN45, minimal_request, problems

from runwatchd.generation import placements
from runwatchd.runway import schemas
from runwatchd.runway.endpoints import ENDPOINTS


def _config(tmp_path: Path, rules: list[tuple[str, dict[str, Any]]]) -> Path:
    """A config with one folder per (endpoint, request) rule."""
    parts = []
    for n, (endpoint, request) in enumerate(rules):
        parts.append(f"[[folder]]\npath = '{tmp_path / f'f{n}'}'\n[folder.rule]\n"
                     f"endpoint = '{endpoint}'\noutput_dir = 'out'\n[folder.rule.request]\n"
                     + "".join(f"{k} = {toml_value(v)}\n" for k, v in request.items()))
    path = tmp_path / "runwatchd.toml"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _check(tmp_path: Path, path: Path) -> tuple[int, str]:
    result = run_cli(["check-config", "-c", str(path)], cli_env(tmp_path, secret="sk-test"),
                     tmp_path)
    return result.returncode, result.stderr


def _accepted_by_schemas(endpoint: str, request: dict[str, Any]) -> bool:
    body = placements.put_uri(request, "runway://placeholder")
    return [] == schemas.default().validate(endpoint, body)


def test_check_config_accepts_a_rule_for_every_current_endpoint_and_model(
        tmp_path: Path) -> None:
    """For each model of each endpoint the schemas know, a minimal request that the schemas
    accept (the file placed with "{uri}") passes check-config; every endpoint with models where
    a file can go at all (sound_effect takes no media) has at least one such model. (Endpoints
    without models, generate/* and the recipes: tests/test_endpoints_end_to_end.py.)"""
    found: list[tuple[str, dict[str, Any]]] = []
    for endpoint in ENDPOINTS:
        for model in schemas.default().models(endpoint):
            try:
                request = minimal_request(endpoint, model)
            except (IndexError, KeyError):  # a model without a media field takes no file
                continue
            if _accepted_by_schemas(endpoint, request):
                found.append((endpoint, request))
    # The generator leaves a media field's siblings out; seed_audio's voice needs its type.
    found.append(("text_to_speech", {"model": "seed_audio", "promptText": "x",
                                     "voice": {"type": "reference-audio", "audioUri": "{uri}"}}))
    covered = {endpoint for endpoint, _ in found}
    with_models = {e for e in ENDPOINTS if schemas.default().models(e)}
    assert set() == with_models - {"sound_effect"} - covered
    assert len(found) > 60
    code, stderr = _check(tmp_path, _config(tmp_path, found))
    assert (0, "") == (code, stderr)


@pytest.mark.parametrize(("endpoint", "request_table", "expected"), [
    ("video_upscale", {"model": "upscale_v1"},
     "folder[0].rule.request.model: 'upscale_v1' is not a current video_upscale model (retired "
     "or unknown); current: magnific_video_upscaler_creative, enhance_frame_rate"),
    ("image_to_video", {**GEN45, "duration": None, "duraton": 5},
     "folder[0].rule.request.duraton: unknown key (did you mean 'duration'?)"),
    ("voice_dubbing", {"model": "eleven_voice_dubbing"},
     "folder[0].rule.request.targetLang: required by voice_dubbing (eleven_voice_dubbing)"),
    ("image_to_video", {**GEN45, "promptText": "\U0001f3ac" * 501},
     "folder[0].rule.request.promptText: must be 1-1000 characters, got 1002"),
    ("text_to_image", {"model": "gen4_image", "promptText": "x", "ratio": "1920:1080",
                       "referenceImages": [{"uri": "{uri}"}], "seed": "{uri}"},
     "folder[0].rule.request.seed: not a media field of text_to_image (gen4_image); {uri} goes "
     "where Runway takes a media URI"),
    ("text_to_video", {"model": "hailuo3", "promptText": "x", "ratio": "16:9", "duration": 6,
                       "references": [{"uri": "{uri}"}],
                       "referenceVideos": [{"type": "video", "uri": "{uri}"}]},
     "folder[0].rule.request: no file fits every {uri} (references[0].uri takes image; "
     "referenceVideos[0].uri takes video)"),
    ("generate/video", {"configId": "{uri}", "input": {"promptText": "x"}},
     "folder[0].rule.request.configId: not a media field of generate/video; {uri} goes where "
     "Runway takes a media URI"),
    ("recipes/product_ad", {"version": "2026-06", "productImages": [{"uri": "{uri}"}],
                            "productInfo": "{uri}"},
     "folder[0].rule.request.productInfo: not a media field of recipes/product_ad; {uri} goes "
     "where Runway takes a media URI"),
    ("generate/audio", {"configId": "c", "input": {"promptText": "x", "type": "speech",
                                                   "referenceAudios": [{"uri": "{uri}"}],
                                                   "voice": {"type": "preset", "presetId": "Maya"}},
                        "extra": 1},
     "folder[0].rule.request.extra: unknown key"),
])
def test_check_config_rejects_with_key_path_and_hint(
        tmp_path: Path, endpoint: str, request_table: dict[str, Any], expected: str) -> None:
    """check-config exits 78 and names the key path and a hint: a retired model, a typo'd key,
    a missing required field, a prompt too long in UTF-16 units (501 emoji are 1002 units),
    "{uri}" where no media goes, "{uri}" in fields of different media kinds."""
    request = {k: v for k, v in request_table.items() if v is not None}
    path = _config(tmp_path, [(endpoint, request)])
    code, stderr = _check(tmp_path, path)
    assert (78, True) == (code, f"{path}: {expected}" in stderr), stderr


def test_the_starter_rule_passes_check_config(tmp_path: Path) -> None:
    """`runwatchd init`'s example rule, uncommented, is a request Runway accepts."""
    path = tmp_path / "runwatchd.toml"
    result = run_cli(["init", str(path)], cli_env(tmp_path), tmp_path)
    assert 0 == result.returncode, result.stderr
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    start = lines.index("# [folder.rule]")
    rule = [line.removeprefix("# ") for line in lines[start:]
            if line.startswith("# ") and "=" in line or line.startswith("# [folder.rule")]
    path.write_text("\n".join(lines[:start] + rule) + "\n", encoding="utf-8")
    assert "[folder.rule.request]" in path.read_text(encoding="utf-8")
    code, stderr = _check(tmp_path, path)
    assert (0, "") == (code, stderr)


@pytest.mark.parametrize(("request_table", "expected"), [
    ({**GEN45, "model": "gen4_5"},
     "rule.request.model: 'gen4_5' is not a current image_to_video model (retired or unknown) "
     "(did you mean 'gen4.5'?); current: "),
    ({**GEN45, "promptImage": None, "ratio": "1280:720", "contentModeration": {"publicFigure": 1}},
     "rule.request.contentModeration.publicFigure: unknown key (did you mean "
     "'publicFigureThreshold'?)"),
    ({**GEN45, "ratio": "16:9"},
     "rule.request.ratio: Invalid enum value. Expected '1280:720' | '720:1280' | '1104:832' | "
     "'960:960' | '832:1104' | '1584:672', received '16:9'"),
])
def test_schema_problems_carry_a_hint(request_table: dict[str, Any], expected: str) -> None:
    """A typo'd model or nested key gets a did-you-mean; a bad enum lists the allowed values."""
    request = {k: v for k, v in request_table.items() if v is not None}
    found = problems({"endpoint": "image_to_video", "request": request})
    assert [True] == [p.startswith(expected) for p in found], found


def test_a_rule_without_a_required_prompt_is_refused_even_with_prompt_files() -> None:
    """Strict by choice: prompt files may replace promptText per file, but a file without one
    would be refused after its upload, so the rule must carry the fallback promptText."""
    request = {k: v for k, v in GEN45.items() if k != "promptText"}
    assert ["rule.request.promptText: required by image_to_video (gen4.5)"] == problems(
        {"endpoint": "image_to_video", "request": request})


def test_templates_are_expanded_before_the_check() -> None:
    """"{stem}" in a field the schema limits is checked with a sample value, not as written."""
    request = {"model": "eleven_voice_dubbing", "targetLang": "{stem}"}
    found = problems({"endpoint": "voice_dubbing", "request": request})
    assert [True] == ["received 'sample'" in p for p in found], found
