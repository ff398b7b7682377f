"""The time side of a stats question: `start`/`end` as clients send them, the user's
time zone, and how a range maps onto the hourly and daily aggregate tables.

Times are whole seconds since the epoch. `hour` and `day` columns hold the start of a
UTC hour or day. A range includes every hour whose start lies within [start, end], as
upstream's `hour >= start and hour <= end`: `end=2026-11-25` (midnight) therefore takes
only hour 00 of that day from the hourly tables, while the daily tables (browsers,
sizes, ...) include that whole day.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
import zoneinfo
from functools import lru_cache
from typing import Any

from goatcounter.errors import BadRequest

HOUR = 3600
DAY = 86400
UTC = dt.UTC
# The last second a range may reach (the end of 9998).
LAST = int(dt.datetime(9999, 1, 1, tzinfo=UTC).timestamp()) - 1
# The longest range with hourly numbers (stats/total, stats/hits): about 10 years, so
# that no request makes a reply of millions of days.
MAX_DAYS = 3660

# Upstream's wording for a time it can't read; clients may match on it.
BAD_TIME = "invalid query parameters: formam: could not parse field: no suitable time formats"
# A "+01:00" offset whose "+" became a space in an unencoded query string.
_SPACED_OFFSET = re.compile(r"^(.*\d)\s(\d\d:?\d\d)$")


def parse_time(value: str, field: str) -> int:
    """A query time: `YYYY-MM-DD` (midnight UTC), RFC 3339 (any offset), or
    `YYYY-MM-DD HH:MM:SS` / `YYYY-MM-DDTHH:MM:SS` (read as UTC). Returns epoch seconds;
    fractions are dropped (the tables hold whole hours)."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
            return min(max(int(day.timestamp()), 0), LAST)
        fixed = _SPACED_OFFSET.sub(r"\1+\2", text) if "T" in text else text
        if fixed.endswith(("Z", "z")):
            fixed = fixed[:-1] + "+00:00"
        parsed = dt.datetime.fromisoformat(fixed)
    except ValueError as exc:
        raise BadRequest(BAD_TIME) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    # The tables start in 1970; times outside 1970-9998 would only overflow the
    # conversions to local dates.
    return min(max(int(parsed.timestamp() // 1), 0), LAST)


def check_days(rng: Range) -> None:
    """Refuse a range with more than MAX_DAYS days of hourly numbers."""
    if rng.days > MAX_DAYS:
        raise BadRequest(f"invalid query parameters: the range is longer than {MAX_DAYS}"
                         " days; ask for hourly numbers in smaller ranges")


@lru_cache(maxsize=256)
def zone(setting: str) -> dt.tzinfo:
    """The zone of a user's `timezone` setting, `<country code>.<IANA name>` such as
    `NL.Europe/Amsterdam` or `.UTC`; UTC when it is empty or unknown."""
    name = setting.partition(".")[2] if "." in setting else setting
    if not name or name.upper() == "UTC":
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return UTC


def user_zone(user: dict[str, Any]) -> dt.tzinfo:
    settings = user.get("settings") or {}
    value = settings.get("timezone") if isinstance(settings, dict) else None
    return zone(value if isinstance(value, str) else "")


def floor_to(ts: int, step: int) -> int:
    return ts - ts % step


def ceil_to(ts: int, step: int) -> int:
    return -(-ts // step) * step


def local(ts: int, tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, tz)


def day_start(date: dt.date) -> int:
    """The epoch second of a date's UTC midnight (the `day` column's value)."""
    return (date - dt.date(1970, 1, 1)).days * DAY


@dataclasses.dataclass(frozen=True)
class Range:
    """A stats range: [start, end] in epoch seconds, shown in the zone `tz`."""

    start: int
    end: int
    tz: dt.tzinfo = UTC

    @property
    def first_hour(self) -> int:
        return ceil_to(self.start, HOUR)

    @property
    def last_hour(self) -> int:
        return floor_to(self.end, HOUR)

    @property
    def empty(self) -> bool:
        return self.first_hour > self.last_hour

    @property
    def days(self) -> int:
        """How many dates the range shows (in the user's zone)."""
        first = local(self.start, self.tz).date()
        last = local(self.end, self.tz).date()
        return max(0, (last - first).days + 1)

    def local_dates(self) -> list[dt.date]:
        """Every date (in the user's zone) from the start's to the end's."""
        first = local(self.start, self.tz).date()
        last = local(self.end, self.tz).date()
        return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]

    def daily_span(self) -> tuple[int, int]:
        """The UTC days the daily tables (browsers, sizes, ...) are read for: from the
        start's date to the end's date in the user's zone, as upstream."""
        return (day_start(local(self.start, self.tz).date()),
                day_start(local(self.end, self.tz).date()))

    def shifted_to_wall_clock(self) -> Range:
        """The range whose UTC times read like this range's local times. Upstream's
        `total_utc` counts this range: for a range chosen in the user's zone it is the
        same UTC days the daily tables count."""
        def wall(ts: int) -> int:
            offset = local(ts, self.tz).utcoffset() or dt.timedelta(0)
            return ts + int(offset.total_seconds())
        return Range(wall(self.start), wall(self.end), UTC)

    def split(self) -> tuple[tuple[int, int] | None, list[tuple[int, int, int]]]:
        """The range's hours as whole UTC days (first and last day start, inclusive)
        plus hour spans (first hour, last hour, sign) at its edges, so that a question
        can read a daily table for the bulk and an hourly one for the rest. An edge day
        mostly inside the range is read whole, less the hours outside it (sign -1):
        fewer hourly rows to read."""
        h0, h1 = self.first_hour, self.last_hour
        if h0 > h1:
            return None, []
        d0 = ceil_to(h0, DAY)
        d1 = floor_to(h1 + HOUR, DAY) - DAY
        if d0 > d1:
            return None, [(h0, h1, 1)]
        edges = []
        if h0 < d0:
            if d0 - h0 > DAY // 2:
                d0 -= DAY
                edges.append((d0, h0 - HOUR, -1))
            else:
                edges.append((h0, d0 - HOUR, 1))
        if d1 + DAY <= h1:
            if h1 + HOUR - (d1 + DAY) > DAY // 2:
                d1 += DAY
                edges.append((h1 + HOUR, d1 + DAY - HOUR, -1))
            else:
                edges.append((d1 + DAY, h1, 1))
        return (d0, d1), edges


def default_range(now: float, tz: dt.tzinfo) -> tuple[int, int]:
    """Upstream's defaults: from the start of the UTC day 7 days ago to the end of today
    (UTC)."""
    today = floor_to(int(now), DAY)
    return today - 7 * DAY, today + DAY - 1


class Slots:
    """Where each UTC hour of a range goes in the user's zone: (index of the local date
    in `Range.local_dates()`, local hour). Computed once per request, since converting
    every row's hour would cost more than the query.

    `source` is the other direction, for filling a path's hours without a Python step
    per hour: the hour number in each local (date, hour), day after day, -1 where no
    UTC hour falls; None when some local hour takes two (a clock set back)."""

    def __init__(self, rng: Range) -> None:
        self.first = rng.first_hour
        self.dates = rng.local_dates()
        self.labels = [d.isoformat() for d in self.dates]
        index = {d: i for i, d in enumerate(self.dates)}
        self.slots: list[tuple[int, int]] = []
        self.source: list[int] | None = [-1] * (24 * len(self.dates))
        if rng.empty:
            return
        hours = (rng.last_hour - self.first) // HOUR + 1
        if rng.tz is UTC:
            base = index[local(self.first, UTC).date()]
            start_hour = local(self.first, UTC).hour
            self.slots = [(base + (start_hour + i) // 24, (start_hour + i) % 24)
                          for i in range(hours)]
            lead = base * 24 + start_hour
            self.source[lead:lead + hours] = range(hours)
            return
        # The offset only changes at a zone's transitions: convert one hour per UTC day
        # and every hour of the days where it changes.
        offset_at: dict[int, int | None] = {}
        for i in range(hours):
            ts = self.first + i * HOUR
            day = floor_to(ts, DAY)
            if day not in offset_at:
                a = local(day, rng.tz).utcoffset() or dt.timedelta(0)
                b = local(day + DAY - 1, rng.tz).utcoffset() or dt.timedelta(0)
                offset_at[day] = int(a.total_seconds()) if a == b else None
            off = offset_at[day]
            if off is None:
                when = local(ts, rng.tz).replace(tzinfo=None)
            else:
                when = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=ts + off)
            self.slots.append((index.get(when.date(), -1), when.hour))
        source = self.source
        for i, (day, hour) in enumerate(self.slots):
            if day >= 0:
                if source[day * 24 + hour] >= 0:
                    self.source = None
                    return
                source[day * 24 + hour] = i
