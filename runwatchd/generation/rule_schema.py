"""A rule's request checked at load against the shipped schemas, as Runway would judge it.

The request is checked as it will be sent: the file's field gets a placeholder URI of a kind it
takes (the input field, or every "{uri}"), "{stem}"/"{name}"/"{folder}" get sample values, and
`Schemas.validate` says what Runway would refuse: unknown keys (with a did-you-mean from the
model's own fields), wrong types, missing required fields, bad enum values, retired or unknown
models (with the endpoint's current ones). Each issue reads `<keypath>.request.<field>: why`.

Prompt files: a `<file>.prompt.txt` replaces promptText at run time, but a rule is checked
strictly, without them: where the model requires promptText the rule must carry one (it is the
fallback for files without a prompt file). A file without a prompt file would otherwise be
refused only after its upload, and a check-config that passes should mean every file can go.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

from runwatchd.generation import placements
from runwatchd.runway import schemas
from runwatchd.runway.endpoints import InputSpec

PLACEHOLDER_URI = "runway://runwatchd-check/placeholder"
SAMPLE_VALUES = {"stem": "sample", "name": "sample.jpg", "folder": "folder"}
Expand = Callable[[Any, Mapping[str, str]], Any]


def sample_body(endpoint: str, target: str | None, field: InputSpec | None,
                request: Mapping[str, Any], expand: Expand) -> dict[str, Any]:
    """The body a sample file would send: templates expanded, the file's place(s) filled
    (`field`: how the endpoint's input `target` takes the URI; None: a bare URI)."""
    body: dict[str, Any] = expand(dict(request), SAMPLE_VALUES)
    if target is None:
        return dict(placements.put_uri(body, PLACEHOLDER_URI))
    fits = placements.kinds_at(endpoint, body.get("model"),
                               (target, *(field.uri_path if field else ()))) or (
                                   field.kinds if field else frozenset())
    kind = min(fits) if fits else "image"
    body[target] = field.value(kind, PLACEHOLDER_URI) if field else PLACEHOLDER_URI
    return body


def schema_problems(endpoint: str, body: Mapping[str, Any],
                    where: Callable[[str], str]) -> list[tuple[str, str]]:
    """(top-level field, "<keypath>.request.<path>: why") for each issue Runway would raise;
    nothing for an endpoint the schemas do not know."""
    try:
        found = schemas.default().validate(endpoint, dict(body))
    except schemas.UnknownEndpoint:
        return []
    model = body.get("model")
    problems: list[tuple[str, str]] = []
    for issue in found:
        path = issue.path
        if issue.message.startswith("Unrecognized key(s)"):
            node = _at(body, path)
            known = _known_keys(endpoint, model, path)
            for key in (k for k in node if k not in known) if isinstance(node, dict) else ():
                shown = placements.shown((*path, key))
                problems.append((str(path[0]) if path else key,
                                 f"{where(shown)}: unknown key{_did_you_mean(key, known)}"))
            continue
        shown = placements.shown(path) or "request"
        head = str(path[0]) if path else ""
        if path == ("model",):
            problems.append((head, f"{where(shown)}: {_model_message(endpoint, model)}"))
        elif issue.message == "Required":
            whose = f" ({model})" if isinstance(model, str) else ""
            problems.append((head, f"{where(shown)}: required by {endpoint}{whose}"))
        else:
            problems.append((head, f"{where(shown)}: {issue.message}"))
    return problems


def takes_prompt(endpoint: str, model: object, where: tuple[str, ...] = ("promptText",)) -> bool:
    """Whether `model`'s requests have a prompt at `where` (for a model the schemas do not
    know: whether any model of the endpoint has one; for an endpoint without models: whether
    its requests have one)."""
    sch = schemas.default()
    try:
        known = sch.models(endpoint)
    except KeyError:  # also UnknownEndpoint
        return False
    names: list[object] = [model] if isinstance(model, str) and model in known else list(known)
    return any(where[-1] in _known_keys(endpoint, name, where[:-1]) for name in names or [None])


def takes_media(endpoint: str) -> bool:
    """Whether any request of the endpoint has a field that takes a media URI (sound_effect's
    take none; True for an endpoint the schemas do not know: the API judges it)."""
    try:
        return bool(schemas.default().media_fields(endpoint))
    except schemas.UnknownEndpoint:
        return True


def _model_message(endpoint: str, model: object) -> str:
    current = schemas.default().models(endpoint)
    listed = ", ".join(current)
    if model is None:
        return f"required (current models: {listed})"
    if not isinstance(model, str):
        return f"expected a string naming a model (current: {listed})"
    return (f"{model!r} is not a current {endpoint} model (retired or unknown)"
            f"{_did_you_mean(model, current)}; current: {listed}")


def _did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _at(body: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        try:
            body = body[step]
        except (KeyError, IndexError, TypeError):
            return None
    return body


def _known_keys(endpoint: str, model: object, path: tuple[str | int, ...]) -> set[str]:
    """The property names the schema allows at `path` (through $refs and unions)."""
    try:
        root = schemas.default().schema(endpoint, model if isinstance(model, str) else None)
    except KeyError:
        return set()
    nodes: list[Any] = [root]
    for step in path:
        nodes = [n for node in nodes for n in _step(_branches(node, root), step)]
    return {key for node in nodes for b in _branches(node, root)
            for key in b.get("properties", {})}


def _branches(node: Any, root: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """`node` resolved: its $ref followed, its oneOf/anyOf branches flattened."""
    if not isinstance(node, Mapping):
        return []
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _branches(root["$defs"].get(ref.rsplit("/", 1)[1]), root)
    found = [node]
    for union in ("oneOf", "anyOf"):
        found += [b for branch in node.get(union, ()) for b in _branches(branch, root)]
    return found


def _step(nodes: list[Mapping[str, Any]], step: str | int) -> list[Any]:
    if isinstance(step, int):
        return [n["items"] for n in nodes if "items" in n]
    return [n["properties"][step] for n in nodes if step in n.get("properties", {})]
