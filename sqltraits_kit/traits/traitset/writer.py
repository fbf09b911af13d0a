"""The trait set's TOML writer: scalars, lists, tables and one array of tables, in a stable order
(small diffs under version control); a multi-line query stays readable as a literal string."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from sqltraits_kit.traits.traitset.rules import TraitSetError

__all__ = ["toml_dumps"]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # not allowed raw in a TOML literal string


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_string(key)


def _toml_string(value: str) -> str:
    # JSON escapes are TOML basic-string escapes; TOML also forbids a raw DEL.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: Any, key: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TraitSetError(f"cannot write {value!r}", key=key)
        return repr(value)
    if isinstance(value, str):
        literal_ok = "'''" not in value and not value.endswith("'") and not _CONTROL.search(value)
        if "\n" in value and literal_ok:
            # A multi-line literal string keeps a SQL query readable in the file; the newline
            # after the opening quotes is not part of the value, one before the closing ones is.
            return "'''\n" + value + "'''"
        return _toml_string(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v, key) for v in value) + "]"
    raise TraitSetError(f"cannot write a {type(value).__name__} to TOML", key=key)


def toml_dumps(data: Mapping[str, Any]) -> str:
    """A TOML writer for the trait-set shape: scalars, lists, tables, one array of tables."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    arrays: list[tuple[str, list[Mapping[str, Any]]]] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            arrays.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value, key)}")
    for key, table in tables:
        lines += ["", f"[{_toml_key(key)}]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v, f'{key}.{k}')}" for k, v in table.items()]
    for key, items in arrays:
        for i, item in enumerate(items):
            lines += ["", f"[[{_toml_key(key)}]]"]
            lines += [
                f"{_toml_key(k)} = {_toml_value(v, f'{key}[{i}].{k}')}" for k, v in item.items()
            ]
    return "\n".join(lines) + "\n"
