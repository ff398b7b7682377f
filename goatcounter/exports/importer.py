"""`goatcounter import`: read a CSV export (GoatCounter's format version 2, written by
GoatCounter or by this server, gzipped or not) into a site: its hits and the
aggregates the stats read.

Rows keep their session and first-visit flag, so the numbers come out as they were at
the source. A bad row is reported by its line number and skipped; the others go in.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import sys
from collections.abc import Callable, Iterator
from typing import IO, Any

import click

from goatcounter import clock
from goatcounter.collect import (
    COLLECT_LOCATION,
    COLLECT_LOCATION_REGION,
    COLLECT_REFERRER,
    COLLECT_SCREEN_SIZE,
    COLLECT_SESSION,
    COLLECT_USER_AGENT,
)
from goatcounter.counting import store
from goatcounter.counting.pipeline import locations, sizes, useragents
from goatcounter.counting.pipeline.process import Hit, valid_utf8, validate
from goatcounter.exports.csvformat import (
    COLUMNS,
    Record,
    parse_name_version,
    parse_session,
    read,
)

# Hits stored per transaction: big enough to be quick, small enough that a running
# server's writers wait only briefly for each.
BATCH = 1000
SCHEMES = ("h", "g", "c", "o")
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


class RowError(ValueError):
    """A row that can't be imported, and why."""


def _bool(column: str, value: str) -> bool:
    # The values Go's strconv.ParseBool takes: upstream's help once wrote true/false.
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise RowError(f"{column}: must be a boolean, not {value!r}")


def _int(column: str, value: str) -> int:
    try:
        number = int(value or "0")
    except ValueError:
        raise RowError(f"{column}: must be a whole number, not {value[:40]!r}") from None
    # The same range as the API's numbers (Go's int64), which the database can hold.
    if not -(2**63) <= number < 2**63:
        raise RowError(f"{column}: out of range")
    return number


def _created_at(value: str) -> int:
    # Any year that can be written is read; validate() then refuses the ones before
    # 1990 or in the future, as the API does.
    try:
        ts = clock.parse_rfc3339_seconds(value)
    except ValueError:
        raise RowError(f"Date: not an RFC 3339 time: {value[:40]!r}") from None
    # Half a second rounds up, as the counting pipeline does.
    return math.floor(ts + 0.5)


def _width(value: str) -> int:
    try:
        return sizes.width(value)
    except sizes.SizeError as exc:
        raise RowError(f"Screen size: {exc}") from None


def _session(value: str) -> bytes | None:
    try:
        return parse_session(value)
    except ValueError:
        raise RowError(f"Session: not a session id: {value[:40]!r}") from None


def hit_from_row(fields: list[str], now: float) -> Hit:
    """The hit of one CSV record. Raises RowError."""
    if len(fields) != len(COLUMNS):
        raise RowError(f"wrong number of fields: {len(fields)} (want: {len(COLUMNS)})")
    if not valid_utf8("".join(fields)):
        raise RowError("not valid UTF-8")
    (path, title, event, user_agent, browser, system, session, bot, ref, scheme, size,
     location, first_visit, date) = fields
    if scheme and scheme not in SCHEMES:
        raise RowError(f"Referrer scheme: must be one of {', '.join(SCHEMES)}, not {scheme!r}")
    created_at = _created_at(date)
    problem = validate(path, title, ref, user_agent, created_at, now, location=location)
    if problem:
        raise RowError(problem.replace("\n", " ").strip())
    found_browser, found_system = parse_name_version(browser), parse_name_version(system)
    if found_browser is None and found_system is None and user_agent:
        # Exports have always left UserAgent empty, but a file made by hand may not.
        found_browser, found_system = useragents.parse(user_agent)
    return Hit(
        path=path, title=title, event=_bool("Event", event), ref=ref,
        ref_scheme=scheme or "o", campaign="", width=_width(size), bot=max(0, _int("Bot", bot)),
        browser=found_browser, system=found_system, location=location, language="",
        user_agent=user_agent, session_key=None, created_at=created_at,
        session=_session(session), first_visit=_bool("FirstVisit", first_visit))


def apply_collect(hit: Hit, settings: dict[str, Any]) -> Hit:
    """Drop what the site doesn't collect, as counting would have."""
    collect = settings["collect"]
    if not collect & COLLECT_REFERRER:
        hit.ref, hit.ref_scheme = "", "o"
    if not collect & COLLECT_USER_AGENT:
        hit.browser = hit.system = None
    if not collect & COLLECT_SCREEN_SIZE:
        hit.width = 0
    if not collect & COLLECT_LOCATION:
        hit.location = ""
    regions = [r.strip() for r in str(settings.get("collect_regions", "")).split(",")
               if r.strip()]
    hit.location = locations.keep_region(
        hit.location, bool(collect & COLLECT_LOCATION_REGION), regions)
    if not collect & COLLECT_SESSION:
        hit.session, hit.first_visit = None, True
    return hit


# Reading the file --------------------------------------------------------------------

@contextlib.contextmanager
def open_export(name: str) -> Iterator[tuple[IO[str], io.BufferedReader, int | None]]:
    """The export `name` (`-` for standard input) as text, gunzipped when it starts
    like a gzip file; with the raw file and its size, for progress."""
    raw = sys.stdin.buffer if name == "-" else open(name, "rb")  # noqa: SIM115
    if not isinstance(raw, io.BufferedReader):
        # A test runner's stdin can't peek.
        raw = io.BufferedReader(raw)
    binary: io.BufferedReader | gzip.GzipFile = raw
    text = None
    try:
        if raw.peek(2)[:2] == b"\x1f\x8b":
            binary = gzip.GzipFile(fileobj=raw)
        total = None if name == "-" else os.fstat(raw.fileno()).st_size
        # Bytes that aren't UTF-8 become lone surrogates, so that only their row is bad.
        text = io.TextIOWrapper(binary, encoding="utf-8", errors="surrogateescape",
                                newline="")
        yield text, raw, total
    finally:
        # Closing the wrappers would close standard input too.
        if text is not None:
            text.detach()
        if binary is not raw:
            binary.close()
        if name != "-":
            raw.close()


def read_position(raw: io.BufferedReader) -> int:
    try:
        return raw.tell()
    except (OSError, ValueError):
        return 0


# Storing -----------------------------------------------------------------------------

class Importer:
    """Collects good rows into batches and stores them; counts and reports bad rows."""

    def __init__(self, site: dict[str, Any],
                 report: Callable[[str], None] | None = None) -> None:
        self.site = site
        self.report = report or (lambda message: click.echo(message, err=True))
        self.batch: list[Hit] = []
        self.rows = self.stored = self.bad = 0
        self.now = clock.now()

    def add(self, record: Record) -> None:
        if record.error is not None:
            self._bad(record.line, record.error)
            return
        try:
            hit = hit_from_row(record.fields, self.now)
        except RowError as exc:
            self._bad(record.line, str(exc))
            return
        self.batch.append(apply_collect(hit, self.site["settings"]))
        self.rows += 1
        if len(self.batch) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self.batch:
            self.stored += store.save(self.site, self.batch, preset_sessions=True)
            self.batch = []

    def _bad(self, line: int, message: str) -> None:
        self.bad += 1
        self.report(f"line {line}: {message}")


def run(site: dict[str, Any], text: IO[str], on_batch: Callable[[], None] | None = None,
        report: Callable[[str], None] | None = None) -> Importer:
    """Import every record of an export's text into `site`. Raises VersionError."""
    importer = Importer(site, report)
    for record in read(text):
        importer.add(record)
        if on_batch is not None and not importer.batch:
            on_batch()
    importer.flush()
    return importer
