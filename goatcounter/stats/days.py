"""Day entries (HitListStat): 24 hourly numbers per day in the user's zone, the day's
total, and the totals of 7-day blocks and calendar months."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from itertools import repeat

from goatcounter.stats.ranges import Slots
from goatcounter.stats.render import Ints

# `group` values, with the numbers upstream also accepts.
GROUPS = {"hour": "hour", "day": "day", "week": "week", "month": "month",
          "0": "hour", "1": "day", "2": "week", "3": "month"}


class Series:
    """The numbers of one path (or of the whole site) over a range, by local day."""

    def __init__(self, slots: Slots, hourly: list[Ints] | None = None) -> None:
        self.slots = slots
        self.hourly = hourly if hourly is not None else [Ints([0] * 24) for _ in slots.dates]

    @classmethod
    def of_hours(cls, slots: Slots, hours: list[int], visits: list[int]) -> Series:
        """The series with `visits[k]` at hour number `hours[k]` (no hour number twice),
        as `add` would make it, but with a lookup per local hour in C instead of a
        Python step per row (a month of 100 paths has 74,400 of them)."""
        source = slots.source
        if source is None:
            series = cls(slots)
            series.add(zip(hours, visits, strict=True))
            return series
        at = dict(zip(hours, visits, strict=True))
        flat = list(map(at.get, source, repeat(0)))
        return cls(slots, [Ints(flat[k:k + 24]) for k in range(0, len(flat), 24)])

    def add(self, rows: Iterable[tuple[int, int]]) -> None:
        """Add (hour number in the range, visits) rows: the queries compute the number
        as `(hour - :h0) / 3600`, so it indexes `Slots.slots` directly."""
        slots, hourly = self.slots.slots, self.hourly
        for i, n in rows:
            day, h = slots[i]
            if day >= 0:
                hourly[day][h] += n

    @property
    def count(self) -> int:
        return sum(sum(day) for day in self.hourly)

    def entries(self) -> tuple[list[dict[str, object]], dict[str, int]]:
        """The day entries, and the highest hourly, daily, weekly and monthly values."""
        return day_entries(self.slots.dates, [sum(day) for day in self.hourly], self.hourly,
                           self.slots.labels)

    def numbers(self) -> tuple[int, list[dict[str, object]], dict[str, int]]:
        """`count` and `entries()`, adding up each day once."""
        daily = [sum(day) for day in self.hourly]
        return (sum(daily), *day_entries(self.slots.dates, daily, self.hourly,
                                         self.slots.labels))


def day_entries(dates: list[dt.date], daily: list[int], hourly: list[Ints] | None = None,
                labels: list[str] | None = None
                ) -> tuple[list[dict[str, object]], dict[str, int]]:
    """Day entries for `dates` with these daily totals (and hourly numbers, if given:
    without them the entries have no `hourly`), and the highest hourly (0 without
    them), daily, weekly and monthly values; `labels` are the dates as text, if known.

    `weekly` is on entries 0, 7, 14, ... of the range (the last block may be shorter);
    `monthly` on the first entry and on each 1st of a month; both are left out when 0,
    as upstream."""
    highest = {"hour": 0, "day": 0, "week": 0, "month": 0}
    n = len(dates)
    if not n:
        return [], highest
    if labels is None:
        labels = [d.isoformat() for d in dates]
    if hourly is None:
        out: list[dict[str, object]] = [{"day": d, "daily": t}
                                          for d, t in zip(labels, daily, strict=True)]
    else:
        out = [{"day": d, "hourly": h, "daily": t}
               for d, h, t in zip(labels, hourly, daily, strict=True)]
        highest["hour"] = max(0, max(map(max, hourly)))
    highest["day"] = max(0, max(daily))
    starts = [0] + [i for i in range(1, n) if dates[i].day == 1]
    ends = [*starts[1:], n]
    # (when it was known, weekly before monthly, entry, key, value): a key is added
    # once its block or month has ended, so an entry holding both has them in the
    # order their blocks ended, as clients reading the text may expect.
    totals = [(min(b + 7, n), 0, b, "weekly", sum(daily[b:b + 7])) for b in range(0, n, 7)]
    totals += [(e, 1, a, "monthly", sum(daily[a:e])) for a, e in zip(starts, ends, strict=True)]
    totals.sort()
    for _, kind, at, key, value in totals:
        _set(out[at], key, value)
        group = "week" if kind == 0 else "month"
        highest[group] = max(highest[group], value)
    return out, highest


def _set(entry: dict[str, object], key: str, value: int) -> None:
    if value:
        entry[key] = value
