"""The trait set's TOML writer: scalars, lists, tables and one array of tables, in a stable order
(small diffs under version control); a multi-line query stays readable as a literal string.

A new file is written by :func:`toml_dumps`; an existing one is changed by :func:`toml_merge`
(tomlkit), which keeps the comments and layout people wrote."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from sqltraits_kit.traits.traitset.rules import TraitSetError

__all__ = ["toml_dumps", "toml_merge"]

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


def toml_merge(text: str, data: Mapping[str, Any]) -> str:
    """``text`` (a trait-set file) changed to hold ``data``, keeping its comments and layout.

    Keys whose value is unchanged are not touched (their comments stay beside them); changed
    values are replaced in place; keys ``data`` lacks are removed; new keys are added at the end
    of their table. An array of tables (``[[derived]]``) is updated entry by entry. Without
    ``text``, the same as :func:`toml_dumps`.
    """
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    if not text.strip():
        return toml_dumps(data)
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise TraitSetError(f"not valid TOML: {exc}") from None
    _merge_table(doc, data)
    return tomlkit.dumps(doc)


def _plain(value: Any) -> Any:
    return value.unwrap() if hasattr(value, "unwrap") else value


def _merge_table(table: Any, data: Mapping[str, Any]) -> None:
    import tomlkit

    for key in [k for k in table if k not in data]:
        del table[key]
    for key, value in data.items():
        current = table.get(key)
        if isinstance(value, Mapping):
            if current is None or not isinstance(_plain(current), dict):
                table[key] = tomlkit.table()
                current = table[key]
            _merge_table(current, value)
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            if isinstance(current, tomlkit.items.AoT) and len(current) == len(value):
                for item, new in zip(current, value, strict=True):
                    _merge_table(item, new)
            else:
                array = tomlkit.aot()
                for new in value:
                    item = tomlkit.table()
                    _merge_table(item, new)
                    array.append(item)
                table[key] = array
        elif current is None or _plain(current) != _value_for_compare(value):
            if isinstance(value, str) and "\n" in value:
                table[key] = tomlkit.string(value, literal=True, multiline=True)
            else:
                table[key] = list(value) if isinstance(value, tuple) else value


def _value_for_compare(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
