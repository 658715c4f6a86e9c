"""Prompts: the `<file>.prompt.txt` beside a media file, where its text goes in a request, and how
long it may be (Runway counts UTF-16 code units, and the limit is the model's: the schemas'
x-maxUtf16, from the official SDK, not one number for every model).

Where the prompt goes is the endpoint's (runway/endpoints.py): `promptText` at the top for most,
`input.promptText` for the model routers (generate/*), `prompt` for the recipes that take one.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runwatchd import errors, fsutil
from runwatchd.runway import schemas

PROMPT_SUFFIX = ".prompt.txt"
# The limit for a model or endpoint the shipped schemas do not know (Runway's usual 1,000).
PROMPT_MAX = 1000
TOP = ("promptText",)
_READ_LIMIT = 64 * 1024


def prompt_limit(endpoint: str, model: object, where: tuple[str, ...] = TOP) -> int | None:
    """The most UTF-16 units the prompt at `where` may have for `model`: the schema's
    x-maxUtf16 (from the official SDK; 1,000 to 32,000 by model), None where the schemas know
    the field without a limit, PROMPT_MAX for a model, endpoint or field they do not know (the
    API judges the rest). An endpoint without models (generate/*, recipes) needs none."""
    return model_prompt_limit(endpoint, model if isinstance(model, str) else None, tuple(where))


@functools.lru_cache(maxsize=256)
def model_prompt_limit(endpoint: str, model: str | None,
                       where: tuple[str, ...] = TOP) -> int | None:
    """prompt_limit worked out once per endpoint, model (None: not a string) and field: every
    submission asks, and the schema is a JSON file parsed on each read (the shipped schemas never
    change while the process runs). benchmarks/ case 7: 4-8% of a node's Python time before."""
    sch = schemas.default()
    try:
        if model is None and sch.models(endpoint):
            return PROMPT_MAX
        root = sch.schema(endpoint, model)
    except KeyError:  # also UnknownEndpoint
        return PROMPT_MAX
    node = _field(root, root, where)
    if node is None:
        return PROMPT_MAX
    limit = node.get("x-maxUtf16")
    return limit if isinstance(limit, int) else None


def _field(node: Any, root: Mapping[str, Any], where: tuple[str, ...]) -> Mapping[str, Any] | None:
    """The schema of the field at `where` (through $refs and union branches), if any."""
    if not isinstance(node, Mapping):
        return None
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _field(root.get("$defs", {}).get(ref.rsplit("/", 1)[1]), root, where)
    if not where:
        return node
    prop = node.get("properties", {}).get(where[0])
    if prop is not None:
        return _field(prop, root, where[1:])
    for branch in (*node.get("oneOf", ()), *node.get("anyOf", ())):
        if (found := _field(branch, root, where)) is not None:
            return found
    return None


def prompt_length(text: str) -> int:
    """Length as Runway counts it: UTF-16 code units (an emoji is 2). A file name that is not
    UTF-8 brings lone surrogates (one unit each), which a strict encoder refuses."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def prompt_fits(text: str, limit: int | None) -> bool:
    return 1 <= prompt_length(text) and (limit is None or prompt_length(text) <= limit)


def limit_text(limit: int | None) -> str:
    return f"1-{limit}" if limit is not None else "at least 1"


def get_at(body: Mapping[str, Any], where: tuple[str, ...]) -> Any:
    """The value at `where` in a request body; None where there is none."""
    node: Any = body
    for key in where:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def put_at(body: dict[str, Any], where: tuple[str, ...], value: Any) -> None:
    """Set the value at `where` in a request body, making the tables on the way; a non-table
    in the way is left alone (the request is refused by the schemas at load anyway)."""
    node = body
    for key in where[:-1]:
        nested = node.setdefault(key, {})
        if not isinstance(nested, dict):
            return
        node = nested
    node[where[-1]] = value


def prompt_file_for(path: Path) -> Path | None:
    """The prompt file beside `path` (shot.jpg.prompt.txt, else shot.prompt.txt), if any."""
    for name in (path.name, path.stem):
        candidate = path.with_name(name + PROMPT_SUFFIX)
        if candidate.is_file():
            return candidate
    return None


def read_prompt(path: Path) -> str | None:
    """The stripped UTF-8 prompt beside `path`, None if there is no prompt file."""
    prompt_file = prompt_file_for(path)
    if prompt_file is None:
        return None
    try:
        raw = fsutil.read_small_file(prompt_file, _READ_LIMIT)
    except OSError as e:
        raise errors.InvalidFile(f"{prompt_file.name}: cannot read ({e.strerror})") from e
    try:
        text = raw.decode("utf-8-sig").strip()
    except UnicodeDecodeError as e:
        raise errors.InvalidFile(f"{prompt_file.name}: not UTF-8 text (byte {e.start})") from e
    if not text:
        raise errors.InvalidFile(f"{prompt_file.name}: the prompt file is empty")
    return text
