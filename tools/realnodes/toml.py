"""A minimal TOML writer for containerd's configuration (Python reads TOML, but cannot write it)."""

from __future__ import annotations

import json
from typing import Any

Table = dict[str, Any]


def _key(name: str) -> str:
    return name if name.replace("_", "").replace("-", "").isalnum() else json.dumps(name)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def _write_table(lines: list[str], path: list[str], table: Table) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and (scalars or not tables):
        lines.append("")
        lines.append("[" + ".".join(_key(p) for p in path) + "]")
    lines.extend(f"{_key(k)} = {_value(v)}" for k, v in scalars.items())
    for name, sub in tables.items():
        _write_table(lines, [*path, name], sub)


def dumps(document: Table) -> str:
    """TOML text of nested dicts of strings, numbers, booleans and lists of them."""
    lines: list[str] = []
    _write_table(lines, [], document)
    return "\n".join(lines).lstrip("\n") + "\n"
