"""Tests for runwatchd.runway.endpoints: the table of Runway generation endpoints."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from runwatchd.runway import schemas
from runwatchd.runway.endpoints import ENDPOINTS, LISTED, OBJECT, TYPED, InputSpec


def _shipped_index() -> set[str]:
    """The endpoints of the shipped index.json, read directly (not through Schemas)."""
    text = resources.files("runwatchd.runway").joinpath("schemas", "index.json").read_text("utf-8")
    return set(json.loads(text)["endpoints"])


def test_endpoint_table_is_the_schemas_index() -> None:
    """Every endpoint of the shipped schemas has a line in ENDPOINTS and no line names an
    endpoint they lack: a regenerated index with a new endpoint fails here until it is added."""
    shipped = _shipped_index()
    assert ([], []) == (sorted(shipped - set(ENDPOINTS)), sorted(set(ENDPOINTS) - shipped))
    assert shipped == set(schemas.default().endpoints())


def test_the_new_endpoints_are_there() -> None:
    """The endpoints issue 12 found missing are named as their URL path after /v1/."""
    assert {"video_to_audio", "video_to_hdr", "avatar_videos", "generate/video",
            "generate/image", "generate/audio", "recipes/product_ad"} <= set(ENDPOINTS)


def test_every_input_field_is_a_media_field_of_the_schemas() -> None:
    """Each input's URI lands where the schemas take media, and the input takes at most the
    media kinds the schemas give that place (for the models that have it)."""
    shipped = schemas.default()
    wrong = []
    for endpoint, spec in ENDPOINTS.items():
        for name, field in spec.inputs.items():
            path = tuple("*" if isinstance(p, int) else p for p in (name, *field.uri_path))
            kinds = {k for f in shipped.media_fields(endpoint) if f.path == path for k in f.kinds}
            if not kinds or not field.kinds <= kinds:
                wrong.append((endpoint, name, sorted(field.kinds), sorted(kinds)))
    assert [] == wrong


def _required(node: Any, path: tuple[str, ...], defs: dict[str, Any]) -> bool:
    """Whether every body valid under `node` has a value at `path` ("*" = a list's items; in a
    union, only if every branch requires it)."""
    if "$ref" in node:
        return _required(defs[node["$ref"].rsplit("/", 1)[1]], path, defs)
    if "oneOf" in node or "anyOf" in node:
        return all(_required(b, path, defs) for b in node.get("oneOf", node.get("anyOf")))
    if not path:
        return True
    if path[0] == "*":
        return "items" in node and _required(node["items"], path[1:], defs)
    props = node.get("properties", {})
    return (path[0] in node.get("required", ()) and path[0] in props
            and _required(props[path[0]], path[1:], defs))


def test_a_default_input_for_every_endpoint_with_a_required_media_field() -> None:
    """Where every request needs the file somewhere (a media field required at every step, in
    every model), the endpoint has a default input, so a rule with just a model works."""
    shipped = schemas.default()
    missing = []
    for endpoint in shipped.endpoints():
        root = shipped.schema(endpoint)
        media = [f.path for f in shipped.media_fields(endpoint)]
        if (any(_required(root, p, root.get("$defs", {})) for p in media)
                and ENDPOINTS[endpoint].default_input is None):
            missing.append(endpoint)
    assert [] == missing


@pytest.mark.parametrize(("field", "kind", "expected"), [
    (InputSpec(frozenset({"image"})), "image", "runway://u"),
    (InputSpec(frozenset({"video"}), TYPED), "video", {"type": "video", "uri": "runway://u"}),
    (InputSpec(frozenset({"image"}), OBJECT), "image", {"uri": "runway://u"}),
    (InputSpec(frozenset({"image"}), LISTED), "image", [{"uri": "runway://u"}]),
    (InputSpec(frozenset({"audio"}), {"type": "audio", "audio": "{uri}"}), "audio",
     {"type": "audio", "audio": "runway://u"}),
])
def test_an_input_template_wraps_the_uri(field: InputSpec, kind: str, expected: object) -> None:
    """The field's value is its template with the URI and the file's media kind filled in."""
    assert expected == field.value(kind, "runway://u")


def test_a_template_without_a_uri_is_refused() -> None:
    """A template that has no "{uri}" has no place for the file: uri_path says so."""
    with pytest.raises(ValueError, match="no"):
        _ = InputSpec(frozenset({"image"}), {"uri": "x"}).uri_path
