"""Runway's request schemas: which bodies each generation endpoint accepts, and where media goes.

The JSON Schemas under runwatchd/runway/schemas/ are generated from the official SDK's request
types by scripts/generate_schemas.py (never edited by hand; tests/runway/test_schemas.py fails
when they fall behind the installed SDK). This module reads them lazily from package data and
validates a body the way Runway does, reporting Runway-style issues: (path, message) pairs whose
messages read like the API's ("Required", "Invalid enum value. Expected ...").

Two custom keywords: `x-maxUtf16` is a prompt limit in UTF-16 code units (how Runway counts;
JSON Schema's maxLength counts code points and is only the looser bound), and `x-media` marks a
string that takes a media URI (HTTPS URL, data URI or runway:// URI) of the listed kinds.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, NamedTuple

from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.protocols import Validator

MEDIA_PREFIXES = ("runway://", "https://", "data:")
_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}


class Issue(NamedTuple):
    """One reason a body is refused: where (keys and list indexes from the root) and why."""

    path: tuple[str | int, ...]
    message: str


@dataclass(frozen=True)
class MediaField:
    """A place in a request body that takes a media URI ("*" in `path` = any list item).

    `typed`: the URI sits in `{"type": <kind>, "uri": ...}` and `type` must name its kind.
    `models`: the models whose requests have this field (empty for endpoints without models)."""

    path: tuple[str, ...]
    kinds: frozenset[str]
    typed: bool
    models: tuple[str, ...]


class UnknownEndpoint(KeyError):
    """No schema for this endpoint name (the URL path after /v1/, e.g. "generate/video")."""


def _max_utf16(
    validator: Validator, limit: int, instance: object, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if isinstance(instance, str) and len(instance.encode("utf-16-le")) // 2 > limit:
        yield ValidationError(f"String must contain at most {limit} character(s)")


def _media(
    validator: Validator, kinds: list[str], instance: object, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if isinstance(instance, str) and not instance.startswith(MEDIA_PREFIXES):
        yield ValidationError("Expected an HTTPS URL, a data URI or a runway:// URI")


# extend() is untyped in types-jsonschema; it returns a validator class like the one it extends.
_RunwayValidator: type[Validator] = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, {"x-maxUtf16": _max_utf16, "x-media": _media}
)


class Schemas:
    """The shipped schemas and their index; load once with `default()`, or from a directory."""

    def __init__(self, root: Traversable) -> None:
        self._root = root
        self._index: dict[str, Any] = json.loads(root.joinpath("index.json").read_text("utf-8"))
        self._validators: dict[str, Validator] = {}

    @property
    def sdk_version(self) -> str:
        """Version of the `runwayml` SDK the schemas were generated from."""
        return str(self._index["sdkVersion"])

    def endpoints(self) -> tuple[str, ...]:
        """Every generation endpoint, by the URL path after /v1/ ("image_to_video", ...)."""
        return tuple(self._index["endpoints"])

    def url_path(self, endpoint: str) -> str:
        """The URL path to POST to, e.g. "/v1/generate/video"."""
        return str(self._entry(endpoint)["path"])

    def models(self, endpoint: str) -> tuple[str, ...]:
        """Models the endpoint accepts; () for endpoints that take none (generate/*)."""
        return tuple(self._entry(endpoint)["models"])

    def schema(self, endpoint: str, model: str | None = None) -> dict[str, Any]:
        """The endpoint's JSON Schema; with `model`, the schema of that model's requests only."""
        entry = self._entry(endpoint)
        document: dict[str, Any] = json.loads(
            self._root.joinpath(entry["schema"]).read_text("utf-8")
        )
        if model is None:
            return document
        mapping = document.get("discriminator", {}).get("mapping", {})
        if model in mapping:
            variant = document["$defs"][mapping[model].rsplit("/", 1)[1]]
            return {"$schema": document["$schema"], **variant, "$defs": document["$defs"]}
        if model in entry["models"]:
            return document
        raise KeyError(f"{endpoint} has no model {model!r}")

    def media_fields(self, endpoint: str, model: str | None = None) -> tuple[MediaField, ...]:
        """Where the endpoint takes media URIs; with `model`, only the fields that model has."""
        fields = (
            MediaField(
                tuple(item["path"]),
                frozenset(item["kinds"]),
                bool(item.get("typed", False)),
                tuple(item["models"]),
            )
            for item in self._entry(endpoint)["media"]
        )
        return tuple(f for f in fields if model is None or not f.models or model in f.models)

    def validate(self, endpoint: str, body: Any) -> list[Issue]:
        """Why Runway would refuse this body, as issues; [] when its shape is acceptable."""
        validator = self._validator(endpoint)
        issues = [i for error in validator.iter_errors(body) for i in _explain(error, validator)]
        return sorted(dict.fromkeys(issues), key=_path_order)

    def _entry(self, endpoint: str) -> dict[str, Any]:
        try:
            entry: dict[str, Any] = self._index["endpoints"][endpoint]
        except KeyError:
            raise UnknownEndpoint(endpoint) from None
        return entry

    def _validator(self, endpoint: str) -> Validator:
        if endpoint not in self._validators:
            self._validators[endpoint] = _RunwayValidator(self.schema(endpoint))
        return self._validators[endpoint]


@functools.cache
def default() -> Schemas:
    """The schemas shipped in this package (read on first use, then kept)."""
    return Schemas(resources.files(__package__ or "runwatchd.runway").joinpath("schemas"))


def _explain(error: ValidationError, validator: Validator) -> list[Issue]:
    """Runway-style issues for one jsonschema error, following unions into the branch meant."""
    path = tuple(error.absolute_path)
    kind, value, instance = error.validator, _value(error), error.instance
    if kind == "required" and isinstance(instance, dict):
        return [Issue((*path, key), "Required") for key in value if key not in instance]
    if kind == "additionalProperties" and isinstance(instance, dict):
        known = _mapping(error.schema).get("properties", {})
        extra = ", ".join(f"'{key}'" for key in instance if key not in known)
        return [Issue(path, f"Unrecognized key(s) in object: {extra}")]
    if kind == "type":
        return [Issue(path, f"Expected {_expected(value)}, received {_json_type(instance)}")]
    if kind == "const":
        return [Issue(path, f"Invalid literal value, expected {json.dumps(value)}")]
    if kind == "enum":
        return [
            Issue(path, f"Invalid enum value. Expected {_choices(value)}, received {instance!r}")
        ]
    if kind in ("oneOf", "anyOf"):
        return _explain_union(error, validator)
    messages = {
        "minLength": f"String must contain at least {value} character(s)",
        "maxLength": f"String must contain at most {value} character(s)",
        "minimum": f"Number must be greater than or equal to {value}",
        "maximum": f"Number must be less than or equal to {value}",
        "minItems": f"Array must contain at least {value} element(s)",
        "maxItems": f"Array must contain at most {value} element(s)",
    }
    return [Issue(path, messages.get(str(kind), error.message))]


def _explain_union(error: ValidationError, validator: Validator) -> list[Issue]:
    path, instance, root = tuple(error.absolute_path), error.instance, _mapping(validator.schema)
    branches: list[dict[str, Any]] = list(_value(error))
    discriminator = _mapping(error.schema).get("discriminator")
    if discriminator is not None and isinstance(instance, dict):
        key, mapping = discriminator["propertyName"], discriminator["mapping"]
        if key not in instance:
            return [Issue((*path, key), "Required")]
        if instance[key] not in mapping:
            return [
                Issue(
                    (*path, key),
                    f"Invalid discriminator value. Expected {_choices(list(mapping))}",
                )
            ]
        chosen = [i for i, b in enumerate(branches) if b.get("$ref") == mapping[instance[key]]]
    else:
        received = _json_type(instance)
        chosen = [i for i, b in enumerate(branches) if received in _branch_types(b, root)]
        if not chosen:
            expected = sorted({t for b in branches for t in _branch_types(b, root)})
            return [Issue(path, f"Expected {' | '.join(expected)}, received {received}")]
    if len(chosen) != 1:
        return [Issue(path, "Invalid input")]
    issues: list[Issue] = []
    for sub in error.context or ():
        if sub.relative_schema_path and sub.relative_schema_path[0] == chosen[0]:
            issues.extend(_explain(sub, validator))
    return issues or [Issue(path, "Invalid input")]


def _branch_types(branch: Mapping[str, Any], root: Mapping[str, Any]) -> set[str]:
    """JSON types a union branch can match (through a local $ref); integer counts as number."""
    ref = branch.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        branch = root["$defs"][ref.rsplit("/", 1)[1]]
    declared = branch.get("type")
    if isinstance(declared, str):
        found = {declared}
    elif isinstance(declared, list):
        found = set(declared)
    else:
        values = branch.get("enum", [branch["const"]] if "const" in branch else [])
        found = {_json_type(v) for v in values}
    return found | ({"integer"} if "number" in found else set())


def _path_order(issue: Issue) -> list[tuple[int, int, str]]:
    """Issues sorted by where they are: parents first, list items by index, keys by name."""
    return [(0, p, "") if isinstance(p, int) else (1, 0, p) for p in issue.path]


def _value(error: ValidationError) -> Any:
    """The failed keyword's value in the schema (typed Any | Unset by the stubs)."""
    return error.validator_value


def _mapping(schema: object) -> Mapping[str, Any]:
    """A schema as a mapping; the boolean schemas true/false have no keywords."""
    return schema if isinstance(schema, Mapping) else {}


def _json_type(value: object) -> str:
    if isinstance(value, bool) or type(value) in _JSON_TYPES:
        return _JSON_TYPES[bool if isinstance(value, bool) else type(value)]
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    return type(value).__name__


def _expected(value: object) -> str:
    return " | ".join(value) if isinstance(value, list) else str(value)


def _choices(values: list[Any]) -> str:
    return " | ".join(repr(v) if isinstance(v, str) else json.dumps(v) for v in values)
