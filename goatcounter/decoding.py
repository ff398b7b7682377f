"""Request parameters: the JSON body of writes and the query string of reads.

Both reject names they don't know with `unknown parameter: "<name>"`, and match names
like Go's encoding/json does: the exact name first, then ignoring case.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any

from flask import request

from goatcounter import clock
from goatcounter.errors import BadRequest, UnsupportedMediaType

Converter = Callable[[Any, str], Any]

_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "bool", int: "number",
               float: "number", type(None): "null"}


def type_name(value: Any) -> str:
    """The JSON name of a Python value's type."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


def json_error(field: str, value: Any, want: str) -> BadRequest:
    """The error for a JSON value of the wrong type."""
    return BadRequest(f"invalid JSON: cannot use {type_name(value)} as {want} for field "
                      f"\"{field}\"")


# JSON value converters ---------------------------------------------------------------

def j_str(value: Any, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise json_error(field, value, "string")
    return value


def j_int(value: Any, field: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise json_error(field, value, "number")
    if isinstance(value, float):
        if not value.is_integer():
            raise BadRequest(f"invalid JSON: {value} is not a whole number for field \"{field}\"")
        value = int(value)
    if not -(2**63) <= value < 2**63:
        raise BadRequest(f"invalid JSON: {value} is out of range for field \"{field}\"")
    return value


def j_bool(value: Any, field: str) -> bool:
    """A plain JSON boolean; null is false, as in Go."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise json_error(field, value, "bool")
    return value


_LOOSE_TRUE = {"true", "1", "on", "t", "yes"}
_LOOSE_FALSE = {"false", "0", "off", "f", "no", ""}


def j_loose_bool(value: Any, field: str) -> bool:
    """A boolean that also takes 1/0 and "on"/"off" (quoted or not); null is an error,
    as upstream's zdb.Bool."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _LOOSE_TRUE | _LOOSE_FALSE:
        return value.strip().lower() in _LOOSE_TRUE
    shown = "null" if value is None else json.dumps(value)
    raise BadRequest(f"invalid JSON: {field}: unknown value: {shown}")


def j_str_list(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise json_error(field, value, "array of strings")
    return [j_str(v, f"{field}[{i}]") for i, v in enumerate(value)]


def j_time(value: Any, field: str) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise json_error(field, value, "RFC 3339 time")
    try:
        return clock.parse_rfc3339(value)
    except ValueError as exc:
        raise BadRequest(f"invalid JSON: {field}: not an RFC 3339 time: {value!r}") from exc


def j_time_seconds(value: Any, field: str) -> float | None:
    """An RFC 3339 time as seconds since the epoch; any year that can be written is
    read, so that the caller's range check (not a crash) decides about it."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise json_error(field, value, "RFC 3339 time")
    try:
        return clock.parse_rfc3339_seconds(value)
    except ValueError as exc:
        raise BadRequest(f"invalid JSON: {field}: not an RFC 3339 time: {value!r}") from exc


def j_object(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise json_error(field, value, "object")
    return value


def j_any(value: Any, field: str) -> Any:
    return value


def _folded(fields: Mapping[str, Converter], key: str) -> str | None:
    """The field `key` names ignoring case. Only asked for names that don't match
    exactly (rare): a count batch matches hundreds of objects, and folding every field
    name for each would cost more than the rest."""
    wanted = key.casefold()
    return next((name for name in fields if name.casefold() == wanted), None)


def match_keys(data: Mapping[str, Any], fields: Mapping[str, Converter],
               prefix: str = "") -> dict[str, Any]:
    """Map the keys of `data` onto `fields` (exact, then ignoring case), convert each
    value, and reject unknown keys. Returns only the keys that were present."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = key if key in fields else _folded(fields, key)
        if name is None:
            raise BadRequest(f'unknown parameter: "{key}"')
        out[name] = fields[name](value, prefix + name)
    return out


# The JSON body -----------------------------------------------------------------------

def _reject_constant(name: str) -> float:
    raise ValueError(f"invalid value {name}")


def content_type_ok() -> bool:
    """Whether a body-reading endpoint can decode this request's Content-Type: JSON,
    or (only for an empty body) the form types, as upstream."""
    mime = (request.headers.get("Content-Type") or "").split(";", 1)[0].strip()
    if mime == "application/json":
        return True
    return mime in ("application/x-www-form-urlencoded", "multipart/form-data") \
        and not request.get_data(cache=True)


def body() -> dict[str, Any]:
    """The request's JSON object; an empty body is `{}`."""
    if not content_type_ok():
        raise UnsupportedMediaType(
            f'unable to handle Content-Type "{request.headers.get("Content-Type", "")}"')
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise BadRequest(f"invalid JSON: body is not valid UTF-8 ({exc.reason})") from exc
    except (json.JSONDecodeError, ValueError, RecursionError) as exc:
        raise BadRequest(f"invalid JSON: {_json_message(exc)}") from exc
    if not isinstance(data, dict):
        raise BadRequest(f"invalid JSON: expected an object, got {type_name(data)}")
    return data


def _json_message(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        if exc.pos >= len(exc.doc.rstrip()):
            return "unexpected EOF"
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)


def decode_body(fields: Mapping[str, Converter]) -> dict[str, Any]:
    """The JSON body checked against `fields`."""
    return match_keys(body(), fields)


# The query string --------------------------------------------------------------------

def q_int(value: str, field: str) -> int:
    """A whole number in 64 bits, as Go reads one."""
    try:
        number = int(value.strip())
    except ValueError as exc:
        raise BadRequest(f"invalid query parameters: could not parse number for {field}: "
                         f"{value!r}") from exc
    if not -(2**63) <= number < 2**63:
        raise BadRequest(f"invalid query parameters: {field}: value out of range: {value!r}")
    return number


_QUERY_TRUE = {"true", "on", "1", "checked"}


def q_bool(value: str, field: str) -> bool:
    return value.strip().lower() in _QUERY_TRUE


def q_str(value: str, field: str) -> str:
    return value


def q_time(value: str, field: str) -> dt.datetime:
    """`YYYY-MM-DD` (midnight UTC), RFC 3339, or `YYYY-MM-DD HH:MM:SS` (UTC)."""
    text = value.strip()
    try:
        if len(text) == 10:
            return dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.UTC)
        return clock.parse_rfc3339(text)
    except ValueError as exc:
        raise BadRequest(f"invalid query parameters: could not parse {field}: no suitable "
                         f"time format for {value!r}") from exc


def split_list(value: str) -> list[str]:
    """A list given as one value split on commas and/or spaces; empty items dropped."""
    return [p for p in value.replace(",", " ").split() if p]


def decode_query(fields: Mapping[str, Converter],
                 lists: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The query string checked against `fields`. Names in `lists` may repeat: their
    values are joined with commas before conversion (clients send both forms)."""
    raw: dict[str, list[str]] = {}
    for key, value in request.args.items(multi=True):
        name = key if key in fields else _folded(fields, key)
        if name is None:
            raise BadRequest(f'unknown parameter: "{key}"')
        raw.setdefault(name, []).append(value)
    out: dict[str, Any] = {}
    for name, values in raw.items():
        value = ",".join(values) if name in lists else values[-1]
        out[name] = fields[name](value, name)
    return out
