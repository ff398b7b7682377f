"""The one clock: every "now" comes from here, so tests can move time instead of sleeping."""
from __future__ import annotations

import datetime as dt
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


def rfc3339(ts: float | dt.datetime | None) -> str | None:
    """Format like Go's RFC3339Nano in UTC: fractions only when they are not zero."""
    if ts is None:
        return None
    if not isinstance(ts, dt.datetime):
        ts = dt.datetime.fromtimestamp(ts, UTC)
    ts = ts.astimezone(UTC)
    base = ts.strftime("%Y-%m-%dT%H:%M:%S")
    if ts.microsecond:
        base += ("." + f"{ts.microsecond:06d}").rstrip("0")
    return base + "Z"


def rfc3339_seconds(ts: int) -> str:
    """Whole-second RFC 3339 in UTC, as the CSV export writes it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def parse_rfc3339(value: str) -> dt.datetime:
    """Parse an RFC 3339 timestamp (also `YYYY-MM-DD HH:MM:SS`, read as UTC)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def now_text() -> str:
    """Now as whole-second RFC 3339, the precision site and user times are kept in."""
    return rfc3339(int(now()))  # type: ignore[return-value]
