"""GoatCounter's CSV export format, version 2: the header, the cell encodings, a writer
whose quoting matches Go's encoding/csv byte for byte, and a reader for imports.

Go quotes a field that contains a comma, a double quote, CR or LF, that starts with a
white-space character (Go's unicode.IsSpace), or that is exactly `\\.`; Python's csv
module does neither of the last two, hence a writer of our own.
"""
from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from typing import IO, NamedTuple

from goatcounter import clock

VERSION = "2"
COLUMNS = ("Path", "Title", "Event", "UserAgent", "Browser", "System", "Session", "Bot",
           "Referrer", "Referrer scheme", "Screen size", "Location", "FirstVisit", "Date")
NO_SESSION = "0-0"

# Go's unicode.IsSpace: the Latin-1 spaces plus the Unicode White_Space characters
# above it. Python's str.isspace also counts U+001C..U+001F, which Go doesn't.
_GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
                      "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def quote(value: str) -> str:
    """One field as Go's csv.Writer writes it (with a comma separator and LF endings)."""
    if not value:
        return value
    if value[0] in _GO_SPACE or value == "\\." or _NEEDS_QUOTES.search(value):
        return '"' + value.replace('"', '""') + '"'
    return value


# What a spreadsheet takes as the start of a formula (OWASP's list for CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def escape_formula(value: str) -> str:
    """A cell that a spreadsheet would run as a formula, with `'` before it (which
    spreadsheets show as text); other cells as they are."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def line(fields: Iterable[str]) -> str:
    """One record, ending in a newline."""
    return ",".join(quote(f) for f in fields) + "\n"


HEADER = line((VERSION + COLUMNS[0], *COLUMNS[1:]))


# Cell encodings ----------------------------------------------------------------------

def flag(value: object) -> str:
    """Booleans are written as the integers the database keeps: 1 or 0."""
    return "1" if value else "0"


def name_version(name: str, version: str) -> str:
    """A browser or system cell: `Firefox 131`, `Linux ` (no version), ` ` (neither)."""
    return f"{name} {version}"


def parse_name_version(cell: str) -> tuple[str, str] | None:
    """The (name, version) of a browser or system cell; None for an empty cell, which
    means the hit had none at all. Names may hold spaces, versions don't."""
    if not cell:
        return None
    name, _, version = cell.rpartition(" ")
    return (name, version) if _ else (cell, "")


def session_text(session: bytes | None) -> str:
    """The 128-bit session as upstream prints it: two 64-bit halves in lower-case hex
    without leading zeros, `-` between them; `0-0` without a session."""
    if not session:
        return NO_SESSION
    # Exports write one per hit. Of 16 bytes whose halves don't start with a zero digit
    # (15 in 16 halves), the plain hex with a `-` after 8 bytes is the text.
    text = session.hex("-", 8)
    if len(text) == 33 and text[0] != "0" and text[17] != "0":
        return text
    return (f"{int.from_bytes(session[:8], 'big'):x}-"
            f"{int.from_bytes(session[8:16], 'big'):x}")


def parse_session(cell: str) -> bytes | None:
    """The 16 bytes of a session cell; None for `0-0`. Raises ValueError."""
    high, sep, low = cell.strip().partition("-")
    if not sep:
        raise ValueError(f"not a session id: {cell!r}")
    hi, lo = int(high, 16), int(low, 16)
    if not (0 <= hi < 2**64 and 0 <= lo < 2**64):
        raise ValueError(f"not a session id: {cell!r}")
    if hi == lo == 0:
        return None
    return hi.to_bytes(8, "big") + lo.to_bytes(8, "big")


def size_text(width: int | None) -> str:
    """The screen size cell: the width, then the height and scale upstream no longer keeps."""
    return f"{width or 0},0,1"


def date_text(ts: int) -> str:
    """RFC 3339 in UTC, whole seconds."""
    return clock.rfc3339_seconds(ts)


# Reading -----------------------------------------------------------------------------

class VersionError(ValueError):
    """The file is not a CSV export of the version this reads."""


class Record(NamedTuple):
    """A data record of an export: the line it starts on, and its fields or, when the
    CSV itself is broken there, what is wrong."""

    line: int
    fields: list[str]
    error: str | None = None


# The most characters one record may take; a longer one is refused without ever being
# held whole (a small gzip file can unpack to a line of gigabytes).
MAX_RECORD = 1 << 20
_SKIP = 1 << 16


class RecordTooLong(ValueError):
    """A record longer than MAX_RECORD characters."""


class _Lines:
    """The lines of a text for csv.reader, at most `limit` characters for each record:
    the line that goes over is skipped to its end in bounded pieces, and the record
    refused. Counts lines, including skipped ones."""

    def __init__(self, text: IO[str], limit: int) -> None:
        self.text, self.limit = text, limit
        self.left = limit
        self.count = 0

    def record(self) -> None:
        """A new record starts."""
        self.left = self.limit

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self.text.readline(self.left + 1)
        if not line:
            raise StopIteration
        self.count += 1
        if len(line) <= self.left:
            self.left -= len(line)
            return line
        while line and not line.endswith(("\n", "\r")):
            line = self.text.readline(_SKIP)
        raise RecordTooLong(f"longer than {self.limit:,} characters")


def read(text: IO[str], limit: int = MAX_RECORD) -> Iterator[Record]:
    """The data records of an export, after checking the header's version. An empty
    file has none (GoatCounter writes an export without hits as an empty file). No
    record is read whole when longer than `limit` characters: it is refused.
    `text` must be opened with newline="" (fields may hold CR and LF)."""
    lines = _Lines(text, limit)
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except RecordTooLong as exc:
        raise VersionError(f"not a CSV export: the first line is {exc}") from None
    first = header[0].lstrip("\ufeff") if header else ""
    if not first.startswith(VERSION):
        raise VersionError(f"wrong version of CSV export: {first[:1]!r} (expected {VERSION!r})")
    while True:
        start = lines.count + 1
        lines.record()
        try:
            fields = next(reader)
        except StopIteration:
            return
        except (csv.Error, RecordTooLong) as exc:
            yield Record(start, [], str(exc))
            continue
        # Go's reader skips empty lines; Python's gives an empty record for them.
        if fields:
            yield Record(start, fields)
