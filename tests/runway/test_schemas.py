"""The shipped request schemas are what scripts/generate_schemas.py makes of the installed SDK.

When this fails after an SDK upgrade, regenerate:
    .venv/bin/python scripts/generate_schemas.py
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("runwayml", reason="runwayml (the official SDK, in the test extra) is needed")

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "runwatchd" / "runway" / "schemas"
REGENERATE = ".venv/bin/python scripts/generate_schemas.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_schemas", ROOT / "scripts" / "generate_schemas.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script loads
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated() -> tuple[ModuleType, dict[str, dict[str, Any]]]:
    """The generator script and what it makes of the installed SDK, in memory."""
    generator = _generator()
    return generator, generator.build()


def test_shipped_schemas_match_the_installed_sdk(
    generated: tuple[ModuleType, dict[str, dict[str, Any]]],
) -> None:
    """Every shipped file equals its regeneration from the installed SDK, and none is extra."""
    generator, files = generated
    shipped = {p.name: p.read_text(encoding="utf-8") for p in SHIPPED.glob("*.json")}
    fresh = {name: generator.render(document) for name, document in files.items()}
    diffs = []
    for name in sorted(set(shipped) | set(fresh)):
        old, new = shipped.get(name, ""), fresh.get(name, "")
        if old != new:
            diff = difflib.unified_diff(
                old.splitlines(), new.splitlines(), f"shipped/{name}", f"sdk/{name}", lineterm=""
            )
            diffs.append("\n".join(list(diff)[:40]))
    assert [] == diffs, (
        f"shipped schemas differ from runwayml {files['index.json']['sdkVersion']}; "
        f"run `{REGENERATE}`:\n" + "\n".join(diffs)
    )


def test_index_lists_every_endpoint_the_issue_names(
    generated: tuple[ModuleType, dict[str, dict[str, Any]]],
) -> None:
    """The current API's generation endpoints, the new ones included, are all generated."""
    _, files = generated
    expected = {
        "image_to_video", "text_to_video", "video_to_video", "text_to_image",
        "character_performance", "video_upscale", "image_upscale", "sound_effect",
        "text_to_speech", "speech_to_speech", "voice_isolation", "voice_dubbing",
        "video_to_audio", "video_to_hdr", "generate/video", "generate/image", "generate/audio",
    }  # fmt: skip
    assert set() == expected - set(files["index.json"]["endpoints"])


def test_every_schema_is_a_valid_draft_2020_12_schema() -> None:
    """Each shipped endpoint schema passes the draft 2020-12 metaschema."""
    from jsonschema import Draft202012Validator

    index = json.loads((SHIPPED / "index.json").read_text(encoding="utf-8"))
    for entry in index["endpoints"].values():
        Draft202012Validator.check_schema(json.loads((SHIPPED / entry["schema"]).read_text()))


def test_model_variants_are_keyed_by_model(
    generated: tuple[ModuleType, dict[str, dict[str, Any]]],
) -> None:
    """image_to_video's variants form a oneOf with a `model` discriminator, one $def a model."""
    _, files = generated
    schema = files["image_to_video.json"]
    mapping = schema["discriminator"]["mapping"]
    assert "model" == schema["discriminator"]["propertyName"]
    assert "#/$defs/Gen4_5" == mapping["gen4.5"]
    assert len(mapping) == len(schema["oneOf"])


def test_aliases_requirements_and_prose_limits_are_translated(
    generated: tuple[ModuleType, dict[str, dict[str, Any]]],
) -> None:
    """Wire aliases, Required[...], Literal ratios and docstring limits reach the schema."""
    _, files = generated
    gen45 = files["image_to_video.json"]["$defs"]["Gen4_5"]
    assert ["duration", "model", "promptImage", "promptText", "ratio"] == gen45["required"]
    assert False is gen45["additionalProperties"]
    assert {"type": "integer", "minimum": 2, "maximum": 10} == gen45["properties"]["duration"]
    prompt = gen45["properties"]["promptText"]
    assert (1, 1000, 1000) == (prompt["minLength"], prompt["maxLength"], prompt["x-maxUtf16"])
    assert "1584:672" in gen45["properties"]["ratio"]["enum"]


def test_media_fields_carry_their_kind(
    generated: tuple[ModuleType, dict[str, dict[str, Any]]],
) -> None:
    """The index says where URIs go and of which kind, typed media objects included."""
    _, files = generated
    endpoints = files["index.json"]["endpoints"]
    media = {tuple(m["path"]): m for m in endpoints["character_performance"]["media"]}
    assert ["image", "video"] == media[("character", "uri")]["kinds"]
    assert media[("character", "uri")]["typed"]
    video_to_audio = {tuple(m["path"]): m["kinds"] for m in endpoints["video_to_audio"]["media"]}
    assert {("videoUri",): ["video"]} == video_to_audio
