"""Stats replies as JSON text, the same text as `responses.dumps` writes, faster.

Indented output puts every hourly number on its own line, and the standard encoder
walks those one at a time in Python when it indents: for a page of paths over a month
that took longer than the queries. Lists of plain integers are written in one join here.
"""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from flask import Response

from goatcounter.responses import compact_response

_encode_str = json.encoder.encode_basestring


class Ints(list[int]):
    """A list known to hold only plain integers (hourly numbers): written without
    looking at each item."""


@lru_cache(maxsize=64)
def _ints_format(length: int, indent: str) -> str:
    """The text of `length` integers at this indent with `%d` for each: one formatting
    call writes a day's hourly numbers, in C (joining their texts took twice as long)."""
    inner = indent + "  "
    return f"[\n{inner}" + f",\n{inner}".join(["%d"] * length) + f"\n{indent}]"


@lru_cache(maxsize=1024)
def _key(key: str, indent: str) -> str:
    """A key's text at this indent: replies have few distinct keys, written many times."""
    return f"{indent}{_encode_str(key)}: "


def _write(obj: Any, indent: str, out: list[str]) -> None:
    kind = type(obj)
    if kind is dict:
        if not obj:
            out.append("{}")
            return
        inner = indent + "  "
        sep = "{\n"
        for key, value in obj.items():
            head = sep + (_key(key, inner) if type(key) is str
                          else f"{inner}{_encode_str(str(key))}: ")
            sep = ",\n"
            # Plain numbers, texts and hourly numbers are most values: written here,
            # not by a call.
            kind = type(value)
            if kind is int:
                out.append(head + str(value))
            elif kind is str:
                out.append(head + _encode_str(value))
            elif kind is Ints and value:
                out.append(head + _ints_format(len(value), inner) % tuple(value))
            else:
                out.append(head)
                _write(value, inner, out)
        out.append(f"\n{indent}}}")
    elif kind is Ints and obj:
        out.append(_ints_format(len(obj), indent) % tuple(obj))
    elif kind is list or kind is Ints:
        if not obj:
            out.append("[]")
            return
        inner = indent + "  "
        if all(type(v) is int for v in obj):
            out.append(f"[\n{inner}" + f",\n{inner}".join(map(str, obj)) + f"\n{indent}]")
            return
        sep = "[\n"
        for value in obj:
            out.append(sep + inner)
            _write(value, inner, out)
            sep = ",\n"
        out.append(f"\n{indent}]")
    elif kind is str:
        out.append(_encode_str(obj))
    elif kind is int:
        out.append(str(obj))
    else:
        out.append(json.dumps(obj, ensure_ascii=False))


def dumps(data: Any) -> str:
    """Two-space indented JSON ending in a newline."""
    out: list[str] = []
    _write(data, "", out)
    out.append("\n")
    return "".join(out)


def reply(data: Any) -> Response:
    """A 200 JSON reply."""
    return compact_response(dumps(data), 200)
