"""TOML checks shared by the config file and rules files: value types, and one-line problems.

Every problem names what was found in TOML terms (`expected an integer, got 'ten'`) and, for a
document that does not parse, its line and column; callers prefix the key path.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import tomllib
from typing import Any


def describe(value: object) -> str:
    """A TOML-ish rendering of a value for a problem message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return f"a date/time ({value.isoformat()})"
    return repr(value)


def check_type(value: object, kind: str) -> str | None:
    """Why `value` is not of TOML `kind` (string, integer, number, boolean, table, strings)."""
    got = describe(value)
    if kind == "integer":
        if isinstance(value, bool):
            return f"expected an integer, got {got} (a bool is not an int)"
        return None if isinstance(value, int) else f"expected an integer, got {got}"
    if kind == "number":
        if isinstance(value, bool):
            return f"expected a number, got {got} (a bool is not a number)"
        if not isinstance(value, (int, float)):
            return f"expected a number, got {got}"
        return None if math.isfinite(value) else f"expected a finite number, got {got}"
    if kind == "strings":
        if not isinstance(value, list):
            return f"expected an array of strings, got {got}"
        bad = [i for i, item in enumerate(value) if not isinstance(item, str)]
        if bad:
            return f"expected an array of strings, got {describe(value[bad[0]])} at [{bad[0]}]"
        return None
    typ, words = {"string": (str, "a string"), "boolean": (bool, "true or false"),
                  "table": (dict, "a table")}[kind]
    return None if isinstance(value, typ) else f"expected {words}, got {got}"


def _toml_problem(e: tomllib.TOMLDecodeError, text: str) -> str:
    msg = str(e)
    if (m := re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", msg, re.S)) is not None:
        return f"line {m.group(2)}, column {m.group(3)}: {m.group(1)}"
    if (m := re.fullmatch(r"(.*) \(at end of document\)", msg, re.S)) is not None:
        lines = text.split("\n")
        return f"line {len(lines)}, column {len(lines[-1]) + 1}: {m.group(1)} (at end of document)"
    return msg


def parse_toml_text(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(data, None) or (None, "line L, column C: message") for TOML bytes."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, f"not UTF-8 text (byte {e.start})"
    try:
        return tomllib.loads(text), None
    except tomllib.TOMLDecodeError as e:
        return None, _toml_problem(e, text)
