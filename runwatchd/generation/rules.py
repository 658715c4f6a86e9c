"""Generation rules: which Runway endpoint a file goes to, and with which request.

A rule comes from a folder's `[folder.rule]` table in the config, or from the nearest
`runwatchd.rules.toml` between the file and its watched folder (nearest wins, re-read when it
changes). Everything that can be checked without the network is checked here, before a
generation POST can spend credits: the endpoint, the request as it will be sent against the
shipped schemas (rule_schema.py: models, fields, types, required fields, enums), the prompt's
length in UTF-16 units, where "{uri}" goes, and whether the file's media kind fits the field it
fills (the schemas' media marks, and endpoints.py for the default input field).
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runwatchd import errors
from runwatchd.config.tomlcheck import check_type, describe
from runwatchd.generation import placements, rule_schema
from runwatchd.generation.prompts import (
    get_at,
    limit_text,
    prompt_fits,
    prompt_length,
    prompt_limit,
    put_at,
    read_prompt,
)
from runwatchd.runway import media
from runwatchd.runway.endpoints import ENDPOINTS

log = logging.getLogger(__name__)

RULES_FILENAME = "runwatchd.rules.toml"
DEFAULT_OUTPUT_DIR = "outputs"
RULE_KEYS = ("endpoint", "input_field", "name", "output_dir", "request")
_PLACEHOLDER = re.compile(r"\{(stem|name|folder)\}")


@dataclass(frozen=True)
class Rule:
    """One generation rule; `request` uses Runway's own field names and is sent as-is."""

    endpoint: str
    output_dir: str = DEFAULT_OUTPUT_DIR
    input_field: str | None = None
    request: Mapping[str, Any] = field(default_factory=dict, hash=False)
    source: str = ""
    name: str | None = None
    # Directory a relative output_dir is taken from: the rules file's directory, or None for
    # a config rule (then the watched folder's root is used).
    base_dir: Path | None = None

    def output_path(self, base: Path) -> Path:
        """The output directory: absolute as given, else relative to base_dir (or `base`)."""
        out = Path(self.output_dir).expanduser()
        return out if out.is_absolute() else (self.base_dir or base) / out


def _json_problems(value: object, keypath: str) -> list[str]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _json_problems(v, f"{keypath}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _json_problems(v, f"{keypath}[{i}]")]
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return [f"{keypath}: {describe(value)} cannot be sent as JSON; quote it as a string"]
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{keypath}: {value} cannot be sent as JSON"]
    return []


def input_field_of(rule: Rule) -> str | None:
    """The request field that receives the file's URI: the rule's override or the default;
    None when the request places it with "{uri}" (placements.py)."""
    if rule.input_field is None and any(placements.uri_paths(rule.request)):
        return None
    return rule.input_field or ENDPOINTS[rule.endpoint].default_input


def uri_places(rule: Rule) -> str:
    """Where the file's URI goes, for people: the input field, or each "{uri}" place."""
    field_name = input_field_of(rule)
    if field_name is not None:
        return field_name
    return ", ".join(placements.shown(p) for p in placements.uri_paths(rule.request))


def parse_rule(table: object, source: str, keypath: str) -> tuple[Rule | None, list[str]]:
    """Validate a rule table; returns (rule, []) or (None, every problem with its key path)."""
    problems: list[str] = []

    def at(key: str) -> str:
        return f"{keypath}.{key}" if keypath else key

    if not isinstance(table, dict):
        return None, [f"{keypath or 'rule'}: expected a table, got {describe(table)}"]
    problems += [f"{at(k)}: unknown key (known: {', '.join(RULE_KEYS)})"
                 for k in table if k not in RULE_KEYS]
    known = ", ".join(sorted(ENDPOINTS))
    endpoint = table.get("endpoint")
    if endpoint is None:
        problems.append(f"{at('endpoint')}: required (known: {known})")
    elif (why := check_type(endpoint, "string")) is not None:
        problems.append(f"{at('endpoint')}: {why}")
    elif endpoint not in ENDPOINTS:
        close = difflib.get_close_matches(endpoint, list(ENDPOINTS), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?; " if close else ""
        problems.append(f"{at('endpoint')}: unknown endpoint {endpoint!r} ({hint}known: {known})")
    strings = {k: table[k] for k in ("output_dir", "input_field", "name") if k in table}
    for key, value in strings.items():
        if (why := check_type(value, "string")) is not None:
            problems.append(f"{at(key)}: {why}")
        elif not value.strip():
            problems.append(f"{at(key)}: must not be empty")
    output_dir = strings.get("output_dir", DEFAULT_OUTPUT_DIR)
    if isinstance(output_dir, str) and output_dir.strip() and os.path.normpath(output_dir) == ".":
        problems.append(f"{at('output_dir')}: must not be the watched folder itself "
                        "(outputs would be picked up as new files)")
    request = table.get("request", {})
    if (why := check_type(request, "table")) is not None:
        problems.append(f"{at('request')}: {why}")
    elif endpoint in ENDPOINTS:
        field_name = strings.get("input_field")
        field_name = field_name if isinstance(field_name, str) else None
        problems += _request_problems(endpoint, field_name, request, at)
    if problems:
        return None, problems
    rule_source = f"{source}: {keypath}" if keypath else source
    return Rule(str(endpoint), output_dir, strings.get("input_field"), request, rule_source,
                strings.get("name")), []


def _request_problems(endpoint: str, input_field: str | None, request: dict[str, Any],
                      at: Callable[[str], str]) -> list[str]:
    spec = ENDPOINTS[endpoint]
    problems = _json_problems(request, at("request"))
    placed = list(placements.uri_paths(request))
    problems += [f"{at('request.' + placements.shown(p))}: {{uri}} must be the whole value"
                 for p in placements.loose_uri_paths(request)]
    problems += [f"{at('request.' + where)}: {why}" for where, why in
                 placements.placement_problems(endpoint, request.get("model"), placed)]
    model = request.get("model")
    if placed and not placements.kinds_for(endpoint, model, placed):
        kinds = [(p, placements.kinds_at(endpoint, model, p) or ()) for p in placed]
        shown = "; ".join(f"{placements.shown(p)} takes {'/'.join(sorted(k))}" for p, k in kinds)
        problems.append(f"{at('request')}: no file fits every {{uri}} ({shown})")
    if placed and input_field is not None:
        problems.append(f"{at('input_field')}: the request places the file with {{uri}}; "
                        "use one of the two")
    target = input_field or (None if placed else spec.default_input)
    if target is None and not placed and not rule_schema.takes_media(endpoint):
        problems.append(f"{at('endpoint')}: {endpoint} takes no media input: no field of its "
                        "requests takes a file, so a rule cannot send files there")
    elif target is None and not placed:
        problems.append(f"{at('input_field')}: endpoint {endpoint} has no default input field;"
                        " set input_field to the request field that should get each file's "
                        'runway:// URI, or place it with "{uri}"')
    elif target in request:
        problems.append(f"{at('request.' + target)}: filled with each file's runway:// URI; "
                        "remove it from the request")
    inp = spec.inputs.get(target) if target is not None else None
    if input_field is not None and not placed and placements.not_media(
            endpoint, model, [(input_field, *(inp.uri_path if inp else ()))]):
        whose = f" ({model})" if isinstance(model, str) else ""
        problems.append(f"{at('input_field')}: {input_field} is not a media field of "
                        f"{endpoint}{whose}; name a field that takes a media URI")
    prompt = get_at(request, spec.prompt)
    limit = prompt_limit(endpoint, request.get("model"), spec.prompt)
    if isinstance(prompt, str) and not prompt_fits(prompt, limit):
        problems.append(f"{at('request.' + '.'.join(spec.prompt))}: must be "
                        f"{limit_text(limit)} characters, got {prompt_length(prompt)}")
    body = rule_schema.sample_body(endpoint, target, inp, request, _expand)
    said = tuple(p.split(":", 1)[0] for p in problems)
    for head, problem in rule_schema.schema_problems(
            endpoint, body, lambda shown: at("request." + shown)):
        mine = at("request." + head) if head else at("request")
        if not any(s == mine or s.startswith((mine + ".", mine + "[")) for s in said):
            problems.append(problem)
    return problems


def _expand(value: Any, values: Mapping[str, str]) -> Any:
    # Only the three known placeholders are replaced: str.format_map would crash on a lone "{"
    # or "{}" in a prompt, and prompts are free text.
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], value)
    if isinstance(value, dict):
        return {k: _expand(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, values) for v in value]
    return value


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return path.name


def check_media(rule: Rule, media_path: Path, folder_root: Path) -> str:
    """The media kind of `media_path` if the rule's input field takes it, else InvalidFile.

    Cheap (by extension), so a caller may run it before uploading. Errors name the file
    relative to `folder_root`.
    """
    shown = _shown(media_path, folder_root)
    spec = ENDPOINTS[rule.endpoint]
    kind = media.media_kind(media_path)
    target = input_field_of(rule)
    placed = list(placements.uri_paths(rule.request)) if target is None else []
    if placed:
        fits = placements.kinds_for(rule.endpoint, rule.request.get("model"), placed)
        if kind is None or kind not in fits:
            where = ", ".join(placements.shown(p) for p in placed)
            raise errors.InvalidFile(f"{shown}: {rule.endpoint} ({where}) takes "
                                     f"{' or '.join(sorted(fits)) or 'no'} files, not "
                                     f"{kind or repr(media_path.suffix)}")
        return kind
    if target is None:
        raise errors.InvalidFile(f"{shown}: endpoint {rule.endpoint} takes no media input and "
                                 "the rule sets no input_field")
    inp = spec.inputs.get(target)
    accepted = inp.kinds if inp else frozenset().union(*(i.kinds for i in spec.inputs.values()))
    if kind is None or (accepted and kind not in accepted):
        wanted = " or ".join(sorted(accepted)) or "media"
        got = kind or f"'{media_path.suffix}'"
        raise errors.InvalidFile(f"{shown}: {rule.endpoint} ({target}) takes {wanted} files, "
                                 f"not {got}")
    return kind


def build_request(rule: Rule, media_path: Path, runway_uri: str,
                  folder_root: Path) -> dict[str, Any]:
    """The JSON body for POST /v1/<endpoint>; InvalidFile if this file cannot fit the rule.

    Errors name the file relative to `folder_root`.
    """
    kind = check_media(rule, media_path, folder_root)
    spec = ENDPOINTS[rule.endpoint]
    target = input_field_of(rule)
    values = {"stem": media_path.stem, "name": media_path.name, "folder": media_path.parent.name}
    body: dict[str, Any] = _expand(copy.deepcopy(dict(rule.request)), values)
    prompt, where = read_prompt(media_path), spec.prompt
    if prompt is not None and (get_at(body, where) is not None
                               or rule_schema.takes_prompt(rule.endpoint, body.get("model"),
                                                           where)):
        put_at(body, where, prompt)
    if target is None:  # check_media refused a rule with neither an input field nor "{uri}"
        body = placements.put_uri(body, runway_uri)
    else:
        inp = spec.inputs.get(target)
        body[target] = inp.value(kind, runway_uri) if inp else runway_uri
    text = get_at(body, where)
    limit = prompt_limit(rule.endpoint, body.get("model"), where)
    if text is not None and not (isinstance(text, str) and prompt_fits(text, limit)):
        length = prompt_length(text) if isinstance(text, str) else 0
        raise errors.InvalidFile(f"{_shown(media_path, folder_root)}: {'.'.join(where)} is "
                                 f"{length} characters for this file; Runway takes "
                                 f"{limit_text(limit)}")
    return body


def rule_fingerprint(rule: Rule) -> str:
    """A stable sha256 of what gets billed: endpoint, input field and request."""
    doc = {"endpoint": rule.endpoint, "input_field": input_field_of(rule), "request": rule.request}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
