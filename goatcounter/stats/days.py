"""Day entries (HitListStat): 24 hourly numbers per day in the user's zone, the day's
total, and the totals of 7-day blocks and calendar months."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from goatcounter.stats.ranges import Slots
from goatcounter.stats.render import Ints

# `group` values, with the numbers upstream also accepts.
GROUPS = {"hour": "hour", "day": "day", "week": "week", "month": "month",
          "0": "hour", "1": "day", "2": "week", "3": "month"}


class Series:
    """The numbers of one path (or of the whole site) over a range, by local day."""

    def __init__(self, slots: Slots) -> None:
        self.slots = slots
        self.hourly = [Ints([0] * 24) for _ in slots.dates]

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
        return day_entries(self.slots.dates, [sum(day) for day in self.hourly], self.hourly)


def day_entries(dates: list[dt.date], daily: list[int], hourly: list[Ints] | None = None
                ) -> tuple[list[dict[str, object]], dict[str, int]]:
    """Day entries for `dates` with these daily totals (and hourly numbers, if given:
    without them the entries have no `hourly`), and the highest hourly (0 without
    them), daily, weekly and monthly values.

    `weekly` is on entries 0, 7, 14, ... of the range (the last block may be shorter);
    `monthly` on the first entry and on each 1st of a month; both are left out when 0,
    as upstream."""
    out: list[dict[str, object]] = []
    highest = {"hour": 0, "day": 0, "week": 0, "month": 0}
    week = month = 0
    month_at = 0
    for i, (date, total) in enumerate(zip(dates, daily, strict=True)):
        if i and i % 7 == 0:
            _set(out[i - 7], "weekly", week)
            highest["week"] = max(highest["week"], week)
            week = 0
        if i and date.day == 1:
            _set(out[month_at], "monthly", month)
            highest["month"] = max(highest["month"], month)
            month, month_at = 0, i
        highest["day"] = max(highest["day"], total)
        week += total
        month += total
        if hourly is None:
            out.append({"day": date.isoformat(), "daily": total})
        else:
            highest["hour"] = max(highest["hour"], *hourly[i])
            out.append({"day": date.isoformat(), "hourly": hourly[i], "daily": total})
    if out:
        last = len(out) - 1
        _set(out[last - last % 7], "weekly", week)
        _set(out[month_at], "monthly", month)
        highest["week"] = max(highest["week"], week)
        highest["month"] = max(highest["month"], month)
    return out, highest


def _set(entry: dict[str, object], key: str, value: int) -> None:
    if value:
        entry[key] = value
