"""The `{uri}` placeholder: where in a rule's request each file's runway:// URI goes.

`input_field` names one top-level field; Runway's newer requests take media in lists and nested
tables (text_to_image `referenceImages: [{uri, tag}]`, image_to_video `promptImage: [{uri,
position}]`, text_to_speech `voice: {type, audioUri}`). A string that is exactly "{uri}" anywhere
in the request table gets the URI instead; the media kinds the field takes come from the shipped
schemas (their x-media marks), so a .wav bound for an image field is refused before uploading.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from runwatchd.runway import schemas

URI_PLACEHOLDER = "{uri}"
ANY_KIND = frozenset({"image", "video", "audio"})
Path_ = tuple[str | int, ...]


def uri_paths(value: Any, at: Path_ = ()) -> Iterator[Path_]:
    """Every place in `value` whose string is exactly "{uri}", as keys and list indexes."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from uri_paths(item, (*at, str(key)))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from uri_paths(item, (*at, n))
    elif value == URI_PLACEHOLDER:
        yield at


def loose_uri_paths(value: Any, at: Path_ = ()) -> Iterator[Path_]:
    """Places where "{uri}" sits inside a longer string (never a valid media value)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from loose_uri_paths(item, (*at, str(key)))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from loose_uri_paths(item, (*at, n))
    elif isinstance(value, str) and URI_PLACEHOLDER in value and value != URI_PLACEHOLDER:
        yield at


def shown(path: Path_) -> str:
    """request.referenceImages[0].uri style."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def kinds_at(endpoint: str, model: object, path: Path_) -> frozenset[str] | None:
    """The media kinds the schemas accept at `path` for `model`; None when they do not say (an
    endpoint or model they do not know, or a field that is not a media field)."""
    pattern = tuple("*" if isinstance(p, int) else p for p in path)
    try:
        fields = schemas.default().media_fields(
            endpoint, model if isinstance(model, str) else None)
    except KeyError:  # also UnknownEndpoint
        return None
    for field in fields:
        if field.path == pattern:
            return field.kinds
    return None


def kinds_for(endpoint: str, model: object, placed: list[Path_]) -> frozenset[str]:
    """The media kinds a file may be to go to every place in `placed` (any kind where the
    schemas do not say)."""
    known = [k for p in placed if (k := kinds_at(endpoint, model, p)) is not None]
    return frozenset.intersection(*known) if known else ANY_KIND


def not_media(endpoint: str, model: object, placed: list[Path_]) -> list[Path_]:
    """The places in `placed` where the schema of a model it knows (or of an endpoint without
    models: generate/*, the recipes) has no media field; none for models or endpoints the
    schemas do not know (the API judges those)."""
    try:
        models = schemas.default().models(endpoint)
    except KeyError:  # also UnknownEndpoint
        return []
    if models and not (isinstance(model, str) and model in models):
        return []
    return [p for p in placed if kinds_at(endpoint, model if models else None, p) is None]


def placement_problems(endpoint: str, model: object,
                       placed: list[Path_]) -> list[tuple[str, str]]:
    """(where, why) for each "{uri}" that is not in a media field (not_media)."""
    whose = f" ({model})" if isinstance(model, str) else ""
    return [(shown(p), f"not a media field of {endpoint}{whose}; {{uri}} goes where Runway "
                       "takes a media URI")
            for p in not_media(endpoint, model, placed)]


def put_uri(body: Any, uri: str) -> Any:
    """`body` with every exact "{uri}" replaced by `uri`."""
    if isinstance(body, dict):
        return {k: put_uri(v, uri) for k, v in body.items()}
    if isinstance(body, list):
        return [put_uri(v, uri) for v in body]
    return uri if body == URI_PLACEHOLDER else body
