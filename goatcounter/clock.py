"""The one clock: every "now" comes from here, so tests can move time instead of sleeping."""
from __future__ import annotations

import datetime as dt
import re
import time

_offset = 0.0
_frozen: float | None = None

UTC = dt.UTC


def now() -> float:
    """Seconds since the epoch, as the server sees them."""
    return _frozen if _frozen is not None else time.time() + _offset


def freeze(at: float | dt.datetime | None) -> None:
    """Stop the clock at `at` (None lets it run again). For tests."""
    global _frozen
    _frozen = at.timestamp() if isinstance(at, dt.datetime) else at


def advance(seconds: float) -> None:
    """Move the clock forward. For tests."""
    global _offset, _frozen
    if _frozen is not None:
        _frozen += seconds
    else:
        _offset += seconds


def reset() -> None:
    """Back to the wall clock."""
    global _offset, _frozen
    _offset, _frozen = 0.0, None


def _date_time(ts: dt.datetime) -> str:
    # strftime's %Y writes year 1 as "1" (glibc), which no RFC 3339 reader takes back.
    return (f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}"
            f"T{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}")


def rfc3339(ts: float | dt.datetime | None) -> str | None:
    """Format like Go's RFC3339Nano in UTC: fractions only when they are not zero."""
    if ts is None:
        return None
    if not isinstance(ts, dt.datetime):
        ts = dt.datetime.fromtimestamp(ts, UTC)
    ts = ts.astimezone(UTC)
    base = _date_time(ts)
    if ts.microsecond:
        base += ("." + f"{ts.microsecond:06d}").rstrip("0")
    return base + "Z"


def rfc3339_seconds(ts: int) -> str:
    """Whole-second RFC 3339 in UTC, as the CSV export writes it."""
    if _YEAR_1000 <= ts < _YEAR_10000:
        # strftime is faster, and pads these years itself; exports write one per row.
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
    return _date_time(_EPOCH + dt.timedelta(seconds=ts)) + "Z"


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_YEAR_1000 = int(dt.datetime(1000, 1, 1, tzinfo=UTC).timestamp())
_YEAR_10000 = int(dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()) + 1
# A year written with fewer than four digits: what this server stored before it padded
# years ("1-01-01T12:00:00Z"). Read back as the same year.
_SHORT_YEAR = re.compile(r"^(\d{1,3})-")


def _parse(value: str) -> dt.datetime:
    """The time as written, with its own offset (UTC when it has none)."""
    text = value.strip()
    short = _SHORT_YEAR.match(text)
    if short:
        text = f"{int(short.group(1)):04d}" + text[short.end() - 1:]
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_rfc3339(value: str) -> dt.datetime:
    """Parse an RFC 3339 timestamp (also `YYYY-MM-DD HH:MM:SS`, read as UTC). Raises
    ValueError, also for a time whose UTC date is outside years 1 to 9999."""
    parsed = _parse(value)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"time out of range: {value!r}") from exc


def parse_rfc3339_seconds(value: str) -> float:
    """Seconds since the epoch of an RFC 3339 timestamp, for any time that can be written
    (even one whose UTC date is in year 0 or 10000, which a datetime can't hold), so
    that range checks, not the parser, decide about it. Raises ValueError."""
    parsed = _parse(value)
    offset = parsed.utcoffset() or dt.timedelta(0)
    naive = parsed.replace(tzinfo=None) - dt.datetime(1970, 1, 1)
    return naive.total_seconds() - offset.total_seconds()


def now_text() -> str:
    """Now as whole-second RFC 3339, the precision site and user times are kept in."""
    return rfc3339(int(now()))  # type: ignore[return-value]
