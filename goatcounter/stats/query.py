"""The query parameters of /api/v0/paths and /api/v0/stats/*, their defaults and limits.

Besides upstream's parameters, every stats endpoint a known client calls also takes what
that client sends (goatcounter-mcp-server: `filter`, `after`, `daily` everywhere), so
that it gets an answer instead of `unknown parameter`.
"""
from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

from goatcounter import clock, decoding
from goatcounter.errors import BadRequest, ValidationError
from goatcounter.stats import ranges
from goatcounter.stats.days import GROUPS

STATS_MAX = 100
PATHS_MAX = 200
DEFAULT_LIMIT = 20

_INT = re.compile(r"^[+-]?[0-9]+$")
_INT64 = 2**63


def go_quote(text: str) -> str:
    """A string quoted the way upstream's messages quote it."""
    return json.dumps(text, ensure_ascii=False)


def parse_int(text: str) -> int | None:
    """A base-10 integer as upstream reads one (sign, ASCII digits, 64 bits), else None."""
    if not _INT.match(text):
        return None
    value = int(text)
    return value if -_INT64 <= value < _INT64 else None


def int_error(text: str) -> str:
    """Upstream's words for a number it can't read."""
    why = "value out of range" if _INT.match(text) else "invalid syntax"
    return f"strconv.ParseInt: parsing {go_quote(text)}: {why}"


def q_int(value: str, field: str) -> int:
    """A whole number; one beyond 64 bits is taken as the nearest that fits (they only
    limit, skip or page, where such values mean "all" or "none")."""
    if not _INT.match(value):
        raise BadRequest("invalid query parameters: formam: could not parse number: "
                         + int_error(value))
    return max(-_INT64, min(int(value), _INT64 - 1))


def q_time(value: str, field: str) -> int:
    return ranges.parse_time(value, field)


def q_group(value: str, field: str) -> str:
    group = GROUPS.get(value.strip().lower())
    if group is None:
        raise BadRequest(f"invalid query parameters: {field}: unknown value {go_quote(value)}; "
                         "must be one of hour, day, week, month (or 0 to 3)")
    return group


def q_list(value: str, field: str) -> list[str]:
    return decoding.split_list(value)


_COMMON = {"start": q_time, "end": q_time}
_PATHS = {"include_paths": q_list, "path_by_name": decoding.q_bool}
_CLIENT_EXTRAS = {"filter": decoding.q_str, "after": q_int, "daily": decoding.q_bool}

FIELDS: dict[str, Mapping[str, decoding.Converter]] = {
    "paths": {"limit": q_int, "after": q_int},
    "total": {**_COMMON, **_PATHS, "filter": decoding.q_str, "daily": decoding.q_bool},
    "hits": {**_COMMON, **_PATHS, "limit": q_int, "exclude_paths": q_list, "group": q_group,
             **_CLIENT_EXTRAS},
    "refs": {**_COMMON, "limit": q_int, "offset": q_int},
    "page": {**_COMMON, **_PATHS, "limit": q_int, "offset": q_int, **_CLIENT_EXTRAS},
}
_LISTS = frozenset({"include_paths", "exclude_paths"})


@dataclasses.dataclass
class Args:
    """A stats request's parameters with defaults and limits applied."""

    rng: ranges.Range
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    include: list[str] = dataclasses.field(default_factory=list)
    exclude: list[str] = dataclasses.field(default_factory=list)
    by_name: bool = False
    group: str = "hour"
    filter: str = ""
    after: int | None = None


def clamp(limit: int, highest: int) -> int:
    return max(1, min(limit, highest))


def decode(kind: str, user: dict[str, Any]) -> Args:
    """Read the query string of a stats endpoint (`total`, `hits`, `refs` or `page`)."""
    got = decoding.decode_query(FIELDS[kind], lists=_LISTS)
    tz = ranges.user_zone(user)
    start, end = ranges.default_range(clock.now(), tz)
    args = Args(rng=ranges.Range(got.get("start", start), got.get("end", end), tz),
                limit=clamp(got.get("limit", DEFAULT_LIMIT), STATS_MAX),
                include=got.get("include_paths", []), exclude=got.get("exclude_paths", []),
                by_name=got.get("path_by_name", False), filter=got.get("filter", "").strip())
    if kind in ("total", "hits"):
        ranges.check_days(args.rng)
    offset = got.get("offset")
    if kind == "page" and offset is None and "after" in got:
        # This client pages the lists by `after`; on these lists it can only mean an
        # offset (their items have no numeric id).
        offset = got["after"]
    args.offset = max(0, offset or 0)
    if kind == "hits":
        args.after = got.get("after")
        group = got.get("group", "hour")
        # `daily` is upstream's older spelling of group=day.
        args.group = "day" if got.get("daily") and group == "hour" else group
    return args


def decode_paths() -> tuple[int, int]:
    """GET /api/v0/paths: (limit, after)."""
    got = decoding.decode_query(FIELDS["paths"])
    return clamp(got.get("limit", DEFAULT_LIMIT), PATHS_MAX), got.get("after", 0)


def path_id(text: str) -> int:
    """A path id in the URL: a 32-bit whole number, as upstream validates it."""
    number = parse_int(text)
    if number is None or not -(2**31) <= number < 2**31:
        raise ValidationError({"path_id": ["must be a whole number"]})
    return number


def campaign_id(text: str) -> int:
    number = parse_int(text)
    if number is None:
        raise BadRequest(f"campaign id must be a number, not {go_quote(text)}")
    return number
