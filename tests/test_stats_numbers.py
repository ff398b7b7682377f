"""The numbers of stats replies built without a Python step per hour: a path's hours
placed by lookup (Series.of_hours), day entries from slices, and the reply text, each
checked against the plain way of making them; and the hour index the ranking of a
range's edges reads."""
from __future__ import annotations

import datetime as dt
import random
import sqlite3
import zoneinfo

import pytest

from goatcounter import responses
from goatcounter.stats import days, ranges, render
from goatcounter.stats.days import Series
from goatcounter.stats.ranges import Range, Slots
from goatcounter.storage import db

HOUR = 3600


def utc(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp())


# Zones with a clock set forward and back inside the ranges below (Lord Howe by half an
# hour), one with a half-hour offset and none, and UTC.
ZONES = ["UTC", "Europe/Amsterdam", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
RANGES = [
    ("2026-03-20T00:00:00", "2026-04-10T00:00:00"),   # Europe and Lord Howe change
    ("2026-10-20T09:00:00", "2026-11-05T15:00:00"),   # back in Europe and the US
    ("2026-11-02T09:30:10", "2026-11-02T20:00:00"),   # within a day
    ("2026-09-30T23:00:00", "2026-10-06T01:59:59"),   # Lord Howe forward
    ("2026-12-31T22:00:00", "2027-01-01T03:00:00"),
]


def _added(slots: Slots, hours: list[int], visits: list[int]) -> Series:
    series = Series(slots)
    series.add(zip(hours, visits, strict=True))
    return series


@pytest.mark.parametrize("zone", ZONES)
def test_a_paths_hours_are_placed_as_adding_them_row_by_row_places_them(zone):
    tz = ranges.zone(f".{zone}")
    rnd = random.Random(zone)
    for start, end in RANGES:
        rng = Range(utc(start), utc(end), tz)
        slots = Slots(rng)
        n = len(slots.slots)
        for share in (0, 0.1, 0.7, 1):
            hours = [i for i in range(n) if rnd.random() < share]
            rnd.shuffle(hours)
            visits = [rnd.randrange(1, 500) for _ in hours]
            want = _added(slots, hours, visits)
            got = Series.of_hours(slots, hours, visits)
            assert got.hourly == want.hourly, (zone, start, share)
            assert all(type(day) is render.Ints for day in got.hourly)
            assert got.numbers() == (want.count, *want.entries())


def test_a_clock_set_back_puts_two_hours_in_one_and_the_lookup_gives_way():
    """In Amsterdam 2026-10-25 has 02:00 twice: both hours' visits count there."""
    tz = zoneinfo.ZoneInfo("Europe/Amsterdam")
    rng = Range(utc("2026-10-24T22:00:00"), utc("2026-10-25T22:59:59"), tz)
    slots = Slots(rng)
    assert slots.source is None
    # 00:00 and 01:00 UTC are 02:00 local, summer time and then winter time.
    series = Series.of_hours(slots, [2, 3], [5, 7])
    assert series.hourly[0][2] == 12
    assert Slots(Range(utc("2026-03-28T22:00:00"), utc("2026-03-29T22:59:59"), tz)).source


def _day_entries_by_day(dates, daily, hourly=None):
    """The day entries as the running count made them, a day at a time."""
    out, highest = [], {"hour": 0, "day": 0, "week": 0, "month": 0}
    week = month = month_at = 0
    for i, (date, total) in enumerate(zip(dates, daily, strict=True)):
        if i and i % 7 == 0:
            if week:
                out[i - 7]["weekly"] = week
            highest["week"] = max(highest["week"], week)
            week = 0
        if i and date.day == 1:
            if month:
                out[month_at]["monthly"] = month
            highest["month"] = max(highest["month"], month)
            month, month_at = 0, i
        highest["day"] = max(highest["day"], total)
        week += total
        month += total
        entry = {"day": date.isoformat()}
        if hourly is not None:
            highest["hour"] = max(highest["hour"], *hourly[i])
            entry["hourly"] = hourly[i]
        entry["daily"] = total
        out.append(entry)
    if out:
        last = len(out) - 1
        if week:
            out[last - last % 7]["weekly"] = week
        if month:
            out[month_at]["monthly"] = month
        highest["week"] = max(highest["week"], week)
        highest["month"] = max(highest["month"], month)
    return out, highest


@pytest.mark.parametrize("first", ["2026-01-01", "2026-01-26", "2026-02-25", "2026-11-28",
                                   "2026-12-31"])
def test_day_entries_are_those_of_a_day_by_day_count_keys_in_the_same_order(first):
    rnd = random.Random(first)
    start = dt.date.fromisoformat(first)
    for length in (0, 1, 6, 7, 8, 13, 14, 15, 31, 35, 62, 70):
        dates = [start + dt.timedelta(days=i) for i in range(length)]
        for zeros in (0, 0.5, 1):
            hourly = [render.Ints(0 if rnd.random() < zeros else rnd.randrange(40)
                                  for _ in range(24)) for _ in dates]
            daily = [sum(h) for h in hourly]
            for with_hours in (True, False):
                want = _day_entries_by_day(dates, daily, hourly if with_hours else None)
                got = days.day_entries(dates, daily, hourly if with_hours else None)
                assert got == want
                # The same keys in the same order: the reply text is the same.
                assert [list(e) for e in got[0]] == [list(e) for e in want[0]]
                assert render.dumps(got[0]) == responses.dumps(want[0])


def test_hourly_numbers_are_written_as_json_writes_them_at_any_depth():
    ints = render.Ints([0, -3, 10**12, 7] + [1] * 20)
    body = {"a": ints, "b": [ints, {"c": ints, "d": [[ints]]}], "e": render.Ints([]),
            "f": [render.Ints([5])], 1: "one", "g": {"hourly": render.Ints([2, 0])}}
    assert render.dumps(body) == responses.dumps(body)
    assert render.dumps([ints, ints]) == responses.dumps([ints, ints])


# The hour index ------------------------------------------------------------------------

def _plans(conn: sqlite3.Connection, sql: str, args: dict) -> list[str]:
    return [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args)]


_EDGE = ("SELECT path_id, -total FROM hit_counts WHERE site_id = :site"
         " AND hour >= :a AND hour <= :b")
_SOME_PATHS = ("SELECT (hour - :a) / 3600, sum(total) FROM hit_counts WHERE site_id = :site"
               " AND " + db.in_list("path_id", "paths") + " AND hour >= :a AND hour <= :b"
               " GROUP BY hour")


@pytest.mark.sqlite_only("SQLite's plans and statistics")
def test_the_hours_at_a_ranges_edges_are_read_from_the_index_alone(tmp_path):
    """A database that had statistics before migration 0026 (as one analyzed by hand):
    after it the edges are read from the new index without the table, and some paths'
    hours still by their key, not by a scan of every path's hours."""
    conn = db.connect(str(tmp_path / "db.sqlite3"))
    migrations = db._migrations()
    names = [name for name, _ in migrations]
    at = names.index("0026_hit_counts_hour_total")
    db._migrate(conn, migrations[:at])
    h0 = utc("2026-11-01T00:00:00")

    def fill(c):
        # 10,000 paths over 200 hours: on a small table the planner rightly prefers
        # any covering index.
        c.execute("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n"
                  " WHERE i < 2000000 - 1)"
                  " INSERT INTO hit_counts (site_id, path_id, hour, total, pageviews)"
                  " SELECT 1, i / 200 + 1, :h0 + i % 200 * 3600, i % 5 + 1, 1 FROM n"
                  " WHERE i % 3 = 0", {"h0": h0})
        c.execute("ANALYZE")
    db.write(fill, conn)
    args = {"site": 1, "a": h0, "b": h0 + 48 * HOUR, "paths": db.list_param([3, 4])}
    assert any("INDEX hit_counts_hour " in p for p in _plans(conn, _EDGE, args))
    db._migrate(conn, migrations)
    assert _plans(conn, _EDGE, args) == [
        "SEARCH hit_counts USING COVERING INDEX hit_counts_hour_total"
        " (site_id=? AND hour>? AND hour<?)"]
    assert _plans(conn, _SOME_PATHS, args)[0].startswith(
        "SEARCH hit_counts USING PRIMARY KEY (site_id=? AND path_id=?")
    stats = {r[0] for r in conn.execute("SELECT idx FROM sqlite_stat1 WHERE tbl = 'hit_counts'")}
    assert stats == {"hit_counts", "hit_counts_hour_total"}
