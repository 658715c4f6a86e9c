"""Small helpers for the tests of runwatchd.generation.rules: a rule, a media file, problems."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runwatchd.generation import placements, rules
from runwatchd.generation.rules import Rule
from runwatchd.runway import schemas

URI = "runway://upload/abc"
# A complete gen4.5 image_to_video request (the file goes to promptImage).
GEN45 = {"model": "gen4.5", "promptText": "a slow pan", "ratio": "1280:720", "duration": 5}
STS_VOICE = {"type": "runway-preset", "presetId": "Maya"}


def rule(endpoint: str = "image_to_video", **request: Any) -> Rule:
    """A valid rule for `endpoint` with `request`."""
    table: dict[str, Any] = {"endpoint": endpoint, "request": request}
    parsed, problems = rules.parse_rule(table, "test", "rule")
    assert [] == problems
    assert parsed is not None
    return parsed


def media(tmp_path: Path, name: str) -> Path:
    """A 600-byte file named `name` under tmp_path."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * 600)
    return path


def problems(table: dict[str, Any]) -> list[str]:
    """Every problem parse_rule finds in `table` (and no rule when there are some)."""
    parsed, found = rules.parse_rule(table, "test", "rule")
    assert (parsed is None) == bool(found)
    return found


def minimal_request(endpoint: str, model: str) -> dict[str, Any]:
    """The smallest request the shipped schemas accept for `model`, the file placed with
    "{uri}" in the model's first media field (required fields only, first enum values)."""
    sch = schemas.default()
    root = sch.schema(endpoint, model)
    body = _sample(root, root)
    assert isinstance(body, dict)
    if not any(placements.uri_paths(body)):
        field = sch.media_fields(endpoint, model)[0]
        node: Any = body
        for step, after in zip(field.path, (*field.path[1:], None)):
            if after is None:
                node[step] = "{uri}"
            elif after == "*":
                node = node.setdefault(step, [{}])
            elif step == "*":
                node = node[0]
            else:
                node = node.setdefault(step, {})
        if field.typed:
            node.setdefault("type", min(field.kinds))
    return body


def _sample(node: Any, root: dict[str, Any]) -> Any:
    ref = node.get("$ref")
    if isinstance(ref, str):
        return _sample(root["$defs"][ref.rsplit("/", 1)[1]], root)
    for union in ("oneOf", "anyOf"):
        if union in node:
            return _sample(node[union][0], root)
    if "const" in node:
        return node["const"]
    if "enum" in node:
        return node["enum"][0]
    if "x-media" in node:
        return "{uri}"
    kind = node.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        props = node.get("properties", {})
        return {k: _sample(props[k], root) for k in node.get("required", ())}
    if kind == "array":
        return [_sample(node["items"], root) for _ in range(node.get("minItems", 0))]
    if kind in ("integer", "number"):
        return node.get("minimum", 1)
    if kind == "boolean":
        return False
    return "x" * max(1, node.get("minLength", 1))
