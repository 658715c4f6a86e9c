#!/usr/bin/env python3
"""Write runwatchd/runway/schemas/*.json from the request types of the installed `runwayml` SDK.

Runway's official SDK is generated from Runway's OpenAPI spec, so its request types are the one
place that follows the API month by month. This script turns them into the JSON Schemas
(draft 2020-12) runwatchd ships: one file per generation endpoint plus index.json (endpoint ->
URL path, schema file, models, media fields, SDK version). After upgrading the SDK:

    .venv/bin/pip install -U runwayml && .venv/bin/python scripts/generate_schemas.py

Which endpoints: every POST whose SDK method returns a waitable task (`create_waitable_resource`),
found by reading the SDK's resource modules, so an endpoint added upstream appears here too.

Translation: TypedDict -> object (properties under their wire alias, required, no additional
properties); Literal -> enum/const; Union -> anyOf, or oneOf plus an OpenAPI-style
`discriminator` when every member is an object told apart by one literal key (the `model` of an
endpoint's variants, the `type` of a media object); Iterable -> array; str/int/float/bool.
What the SDK only says in prose is read from the field docstrings: prompt limits ("up to 1000
characters") and integer ranges ("Must be an integer from 2 to 10"). Runway counts prompt length
in UTF-16 code units, which JSON Schema cannot express: the limit goes in `x-maxUtf16`, checked
by runwatchd/runway/schemas.py; `maxLength` carries the same number as a looser bound (a string
of N UTF-16 units never has more than N code points) so a plain validator still catches gross
excess. `x-media` marks a string that takes a media URI, with the media kinds it accepts.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import itertools
import json
import pkgutil
import re
import sys
import types
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typing_extensions

DRAFT = "https://json-schema.org/draft/2020-12/schema"
OUT_DIR = Path(__file__).resolve().parent.parent / "runwatchd" / "runway" / "schemas"
KINDS = ("image", "video", "audio")
_WRAPPERS = {typing_extensions.Required, typing_extensions.NotRequired, typing_extensions.ReadOnly}
_SEQUENCES = {list, tuple, set, frozenset, Iterable, Sequence}
_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}


@dataclass(frozen=True)
class Endpoint:
    """A task-creating endpoint: its name (URL path after /v1/), path and request type."""

    name: str
    path: str
    params: Any


def discover_endpoints() -> list[Endpoint]:
    """Every POST of the SDK's synchronous resources that answers with a waitable task."""
    from runwayml import resources

    found: dict[str, Endpoint] = {}
    for info in pkgutil.walk_packages(resources.__path__, resources.__name__ + "."):
        module = importlib.import_module(info.name)
        tree = ast.parse(inspect.getsource(module))
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            if cls.name.startswith("Async"):
                continue
            for call in (n for n in ast.walk(cls) if isinstance(n, ast.Call)):
                endpoint = _task_post(call, module)
                if endpoint is not None:
                    found[endpoint.name] = endpoint
    return [found[name] for name in sorted(found)]


def _task_post(call: ast.Call, module: types.ModuleType) -> Endpoint | None:
    """The endpoint of `self._post("/v1/x", body=maybe_transform({...}, mod.Params),
    cast_to=...create_waitable_resource(...))`, or None for any other call."""
    func = call.func
    if not (isinstance(func, ast.Attribute) and func.attr == "_post" and call.args):
        return None
    path, kw = call.args[0], {k.arg: k.value for k in call.keywords}
    cast, body = kw.get("cast_to"), kw.get("body")
    waitable = cast is not None and any(
        isinstance(n, ast.Call) and ast.unparse(n.func) == "create_waitable_resource"
        for n in ast.walk(cast)
    )
    if not (waitable and isinstance(path, ast.Constant) and isinstance(body, ast.Call)):
        return None
    if len(body.args) != 2:  # maybe_transform(<fields>, <params type>)
        return None
    params: Any = module
    for part in ast.unparse(body.args[1]).split("."):
        params = getattr(params, part)
    name = str(path.value).removeprefix("/v1/")
    return Endpoint(name, str(path.value), params)


def _docstrings(cls: type) -> dict[str, str]:
    """Field name -> the docstring under it in the class body (Stainless puts docs there)."""
    try:
        tree = ast.parse(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _media_kinds(name: str, doc: str) -> list[str]:
    """Media kinds a string field takes, from its docstring or name; [] if not a media URI."""
    in_data_uri = re.findall(r"data:(image|video|audio)/", doc)
    if in_data_uri:
        return sorted(set(in_data_uri), key=KINDS.index)
    lowered = name.lower()
    if not ("upload URI" in doc or lowered == "uri" or lowered.endswith(("uri", "image", "video"))):
        return []
    named = [kind for kind in KINDS if kind in lowered]
    if named:
        return named
    described = [kind for kind in KINDS if re.search(rf"\b{kind}s?\b", doc, re.IGNORECASE)]
    return described or list(KINDS)


def _limits(schema: dict[str, Any], doc: str) -> None:
    """Add the limits the docstring states in prose to a string or integer schema."""
    if schema.get("type") == "string":
        if re.search(r"\bnon-empty\b", doc, re.IGNORECASE):
            schema["minLength"] = 1
        match = re.search(r"\bup to ([\d,]+) characters\b", doc)
        if match:
            limit = int(match.group(1).replace(",", ""))
            schema["maxLength"] = limit
            schema["x-maxUtf16"] = limit
    elif schema.get("type") == "integer":
        match = re.search(r"Must be an integer from (-?\d+) to (-?\d+)\b", doc)
        if match:
            schema["minimum"], schema["maximum"] = int(match.group(1)), int(match.group(2))


class Converter:
    """Python typing -> JSON Schema, collecting every TypedDict of one endpoint under $defs."""

    def __init__(self) -> None:
        self.defs: dict[str, dict[str, Any]] = {}
        self._names: dict[type, str] = {}

    def schema(self, tp: Any, name: str = "", doc: str = "") -> dict[str, Any]:
        """The JSON Schema of `tp`; `name` and `doc` are the field it types, for prose limits."""
        origin, args = typing_extensions.get_origin(tp), typing_extensions.get_args(tp)
        if origin in _WRAPPERS or origin is typing_extensions.Annotated:
            return self.schema(args[0], name, doc)
        if typing_extensions.is_typeddict(tp):
            return {"$ref": f"#/$defs/{self._define(tp)}"}
        if origin is typing_extensions.Literal or origin is typing.Literal:
            values = list(args)
            return {"const": values[0]} if len(values) == 1 else {"enum": values}
        if origin in (typing.Union, types.UnionType):
            return self._union(args, name, doc)
        if origin in _SEQUENCES:
            return {"type": "array", "items": self.schema(args[0], name, doc) if args else {}}
        if origin in (dict, Mapping):
            return {"type": "object", "additionalProperties": self.schema(args[1], name, doc)}
        if tp is type(None):
            return {"type": "null"}
        if tp in (object, typing.Any):
            return {}
        if tp in _SCALARS:
            out: dict[str, Any] = {"type": _SCALARS[tp]}
            kinds = _media_kinds(name, doc) if tp is str else []
            if kinds:
                out["x-media"] = kinds
            _limits(out, doc)
            return out
        raise TypeError(f"no JSON Schema translation for {tp!r} (field {name!r})")

    def _union(self, members: Sequence[Any], name: str, doc: str) -> dict[str, Any]:
        schemas = [self.schema(m, name, doc) for m in members]
        self._shorthand(schemas)
        if all(set(s) <= {"const", "enum"} for s in schemas):
            values = [v for s in schemas for v in s.get("enum", [s.get("const")])]
            return {"enum": list(dict.fromkeys(values))}
        tagged = self._discriminator(members)
        if tagged is None:
            return {"anyOf": schemas}
        key, mapping = tagged
        return {"oneOf": schemas, "discriminator": {"propertyName": key, "mapping": mapping}}

    def _shorthand(self, schemas: list[dict[str, Any]]) -> None:
        """A string offered next to an array of media objects (`references: str | [{uri}]`) is
        the one-URI shorthand of that array, whatever its name and docstring say."""
        for member in schemas:
            item = member.get("items", {})
            target = self.defs.get(item.get("$ref", "").rsplit("/", 1)[-1], {})
            kinds = target.get("properties", {}).get("uri", {}).get("x-media")
            for other in schemas:
                if kinds and other.get("type") == "string" and "x-media" not in other:
                    other["x-media"] = kinds

    def _discriminator(self, members: Sequence[Any]) -> tuple[str, dict[str, str]] | None:
        """(key, value -> $ref) when every member is an object with that key set to literals no
        other member uses; the `model` key wins, so an endpoint's variants are keyed by model."""
        if not all(typing_extensions.is_typeddict(m) for m in members):
            return None
        candidates: list[tuple[str, dict[str, str]]] = []
        for key in ("model", "type", *sorted(self._shape(members[0])[1])):
            mapping: dict[str, str] = {}
            for member in members:
                properties, required = self._shape(member)
                values = properties.get(key, {}).get("enum", [properties.get(key, {}).get("const")])
                if key not in required or None in values or set(values) & set(mapping):
                    break
                mapping.update(dict.fromkeys(values, f"#/$defs/{self._names[member]}"))
            else:
                candidates.append((key, mapping))
        return candidates[0] if candidates else None

    def _shape(self, cls: type) -> tuple[dict[str, Any], list[str]]:
        definition = self.defs[self._define(cls)]
        return definition["properties"], definition.get("required", [])

    def _define(self, cls: type) -> str:
        """Register a TypedDict under $defs (once) and return its name there."""
        if cls in self._names:
            return self._names[cls]
        name = cls.__name__
        while name in self.defs:
            name += "_"
        self._names[cls] = name
        self.defs[name] = {}  # reserved now: a recursive type refers to itself while converted
        hints = typing_extensions.get_type_hints(cls, include_extras=True)
        docs = _docstrings(cls)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field, hint in hints.items():
            wire = _alias(hint) or field
            properties[wire] = self.schema(hint, wire, docs.get(field, ""))
            # Not __required_keys__: under `from __future__ import annotations` (as the SDK's
            # modules are) TypedDict cannot see Required[...] in the strings and leaves it empty.
            origin: Any = typing_extensions.get_origin(hint)
            total = bool(getattr(cls, "__total__", True))
            if origin is typing_extensions.Required or (
                total and origin is not typing_extensions.NotRequired
            ):
                required.append(wire)
        definition: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            definition["required"] = required
        definition["additionalProperties"] = False
        self.defs[name] = definition
        return name


def _alias(hint: Any) -> str | None:
    """The wire name a PropertyInfo(alias=...) gives a field, through Required/Annotated."""
    while typing_extensions.get_origin(hint) in _WRAPPERS:
        hint = typing_extensions.get_args(hint)[0]
    for meta in getattr(hint, "__metadata__", ()):
        if getattr(meta, "format", None) is not None:  # e.g. iso8601 dates: not translated yet
            raise TypeError(f"PropertyInfo(format={meta.format!r}) has no translation here")
        alias = getattr(meta, "alias", None)
        if isinstance(alias, str):
            return alias
    return None


def endpoint_schema(endpoint: Endpoint) -> dict[str, Any]:
    """The JSON Schema document of one endpoint's request body."""
    converter = Converter()
    root = converter.schema(endpoint.params)
    if "$ref" in root:  # a single TypedDict: inline it, so the root is the object itself
        name = root.pop("$ref").rsplit("/", 1)[1]
        root = converter.defs.pop(name)
    doc: dict[str, Any] = {"$schema": DRAFT, "title": f"POST {endpoint.path}", **root}
    if converter.defs:
        doc["$defs"] = dict(sorted(converter.defs.items()))
    return doc


def media_fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Where media URIs go: {"path", "kinds", "models"} per location ("*" = any array item).

    A URI inside an object whose `type` names the media kind (`{"type": "video", "uri": ...}`)
    also carries "typed": true: whoever fills it must set `type` to one of the kinds."""
    found: dict[tuple[str, ...], dict[str, Any]] = {}
    for model, variant in _variants(schema):
        models = [model] if model is not None else _models(schema)
        for path, kinds, typed in _walk(variant, schema.get("$defs", {}), (), None):
            entry = found.setdefault(path, {"path": list(path), "kinds": [], "models": []})
            entry["kinds"] = sorted(set(entry["kinds"]) | set(kinds), key=KINDS.index)
            if typed:
                entry["typed"] = True
            entry["models"].extend(m for m in models if m not in entry["models"])
    return [found[path] for path in sorted(found)]


def _variants(schema: dict[str, Any]) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """(model, object schema) per model of a discriminated root; (None, root) otherwise."""
    mapping = schema.get("discriminator", {}).get("mapping", {})
    if schema.get("discriminator", {}).get("propertyName") != "model":
        yield None, schema
        return
    for model, ref in mapping.items():
        yield model, schema["$defs"][ref.rsplit("/", 1)[1]]


def _models(schema: dict[str, Any]) -> list[str]:
    """Every model an endpoint's schema accepts ([] for endpoints without one: generate/*)."""
    if schema.get("discriminator", {}).get("propertyName") == "model":
        return list(schema["discriminator"]["mapping"])
    model = schema.get("properties", {}).get("model", {})
    return list(model.get("enum", [model["const"]] if "const" in model else []))


def _walk(
    node: dict[str, Any], defs: dict[str, Any], path: tuple[str, ...], typed: list[str] | None
) -> Iterator[tuple[tuple[str, ...], list[str], bool]]:
    if "$ref" in node:
        yield from _walk(defs[node["$ref"].rsplit("/", 1)[1]], defs, path, typed)
        return
    if "x-media" in node:
        yield path, typed or node["x-media"], typed is not None
    for branch in (*node.get("anyOf", ()), *node.get("oneOf", ())):
        yield from _walk(branch, defs, path, typed)
    if "items" in node:
        yield from _walk(node["items"], defs, (*path, "*"), None)
    properties = node.get("properties", {})
    kind = properties.get("type", {})
    media_type = [k for k in kind.get("enum", [kind.get("const")]) if k in KINDS]
    for key, child in properties.items():
        child_typed = media_type if key == "uri" and media_type else None
        yield from _walk(child, defs, (*path, key), child_typed)


def build() -> dict[str, dict[str, Any]]:
    """File name -> JSON document, for every endpoint and the index."""
    import runwayml

    files: dict[str, dict[str, Any]] = {}
    index: dict[str, Any] = {"sdk": "runwayml", "sdkVersion": runwayml.__version__, "endpoints": {}}
    for endpoint in discover_endpoints():
        filename = endpoint.name.replace("/", "_") + ".json"
        schema = endpoint_schema(endpoint)
        files[filename] = schema
        index["endpoints"][endpoint.name] = {
            "path": endpoint.path,
            "schema": filename,
            "models": _models(schema),
            "media": media_fields(schema),
        }
    files["index.json"] = index
    return files


def render(document: dict[str, Any]) -> str:
    """The exact text written for a document (what the shipped-schemas test compares)."""
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="directory to write into")
    args = parser.parse_args(argv)
    files = build()
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in {p.name for p in args.out.glob("*.json")} - set(files):
        (args.out / stale).unlink()  # an endpoint the SDK dropped must not linger
    for filename, document in files.items():
        (args.out / filename).write_text(render(document), encoding="utf-8")
    version = files["index.json"]["sdkVersion"]
    print(f"wrote {len(files) - 1} endpoint schemas from runwayml {version} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
