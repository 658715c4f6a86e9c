"""How long a generation's prompt may be: Runway counts UTF-16 code units, and the limit is the
model's (the schemas' x-maxUtf16, from the official SDK), not one number for every model."""

from __future__ import annotations

import functools

from runwatchd.runway import schemas

# The limit for a model or endpoint the shipped schemas do not know (Runway's usual 1,000).
PROMPT_MAX = 1000


def prompt_limit(endpoint: str, model: object) -> int | None:
    """The most UTF-16 units a promptText may have for `model`: the schema's x-maxUtf16 (from the
    official SDK; 1,000 to 32,000 by model), None for a model the schemas know without a limit,
    PROMPT_MAX for a model or endpoint they do not know (the API judges the rest)."""
    if not isinstance(model, str):
        return PROMPT_MAX
    return model_prompt_limit(endpoint, model)


@functools.lru_cache(maxsize=256)
def model_prompt_limit(endpoint: str, model: str) -> int | None:
    """prompt_limit for a model named by a string, worked out once: every submission asks, and
    the schema is a JSON file parsed on each read (the shipped schemas never change while the
    process runs). benchmarks/ case 7: 5-8% of a node's Python time before."""
    try:
        schema = schemas.default().schema(endpoint, model)
    except KeyError:  # also UnknownEndpoint
        return PROMPT_MAX
    prompt = schema.get("properties", {}).get("promptText")
    if not isinstance(prompt, dict):
        return PROMPT_MAX
    limit = prompt.get("x-maxUtf16")
    return limit if isinstance(limit, int) else None


def prompt_length(text: str) -> int:
    """Length as Runway counts it: UTF-16 code units (an emoji is 2). A file name that is not
    UTF-8 brings lone surrogates (one unit each), which a strict encoder refuses."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def prompt_fits(text: str, limit: int | None) -> bool:
    return 1 <= prompt_length(text) and (limit is None or prompt_length(text) <= limit)


def limit_text(limit: int | None) -> str:
    return f"1-{limit}" if limit is not None else "at least 1"
