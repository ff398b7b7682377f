"""The dashboard's period: `period-start` / `period-end` (dates in the user's zone, as
upstream), the presets, the previous and next period, and hourly or daily charts."""
from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from goatcounter.errors import BadRequest
from goatcounter.stats import ranges
from goatcounter.stats.query import go_quote

# The presets, in the order the page lists them: (id, label).
PRESETS = (
    ("today", "Today"), ("yesterday", "Yesterday"),
    ("this-week", "This week"), ("last-week", "Last week"),
    ("this-month", "This month"), ("last-month", "Last month"),
    ("this-quarter", "This quarter"), ("last-quarter", "Last quarter"),
    ("this-year", "This year"), ("last-year", "Last year"),
    ("last-7-days", "Last 7 days"), ("last-30-days", "Last 30 days"),
)
# Upstream's rules: a short range is drawn by hour, a long one by day.
HOURLY_ONLY_DAYS = 7
DAILY_ONLY_DAYS = 90


def _months_back(day: dt.date, months: int) -> dt.date:
    """The same day of the month `months` earlier (the month's last day if shorter)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day.day, last))


def _month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _month_end(day: dt.date) -> dt.date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _quarter_start(day: dt.date) -> dt.date:
    return dt.date(day.year, (day.month - 1) // 3 * 3 + 1, 1)


def preset(name: str, today: dt.date, sunday_first: bool) -> tuple[dt.date, dt.date]:
    """The first and last date of a preset, or KeyError."""
    week_start = today - dt.timedelta(days=(today.weekday() + (1 if sunday_first else 0)) % 7)
    if name == "today":
        return today, today
    if name == "yesterday":
        day = today - dt.timedelta(days=1)
        return day, day
    if name == "this-week":
        return week_start, week_start + dt.timedelta(days=6)
    if name == "last-week":
        return week_start - dt.timedelta(days=7), week_start - dt.timedelta(days=1)
    if name == "this-month":
        return _month_start(today), _month_end(today)
    if name == "last-month":
        last = _month_start(today) - dt.timedelta(days=1)
        return _month_start(last), last
    if name == "this-quarter":
        first = _quarter_start(today)
        return first, _month_end(_months_back(first, -2))
    if name == "last-quarter":
        first = _months_back(_quarter_start(today), 3)
        return first, _month_end(_months_back(first, -2))
    if name == "this-year":
        return dt.date(today.year, 1, 1), dt.date(today.year, 12, 31)
    if name == "last-year":
        return dt.date(today.year - 1, 1, 1), dt.date(today.year - 1, 12, 31)
    if name == "last-7-days":
        return today - dt.timedelta(days=6), today
    if name == "last-30-days":
        return today - dt.timedelta(days=29), today
    raise KeyError(name)


def saved_view(period: Any, today: dt.date, sunday_first: bool) -> tuple[dt.date, dt.date]:
    """The range of a saved view's `period`, as upstream reads it: `day`, `week`,
    `month`, `quarter`, `half-year`, `year` (the same day one period ago to today),
    `week-cur`, `month-cur`, `year-cur`, or a number of days; else a week."""
    text = str(period).strip().lower()
    if text in ("day", "0"):
        return today, today
    back = {"week": None, "month": 1, "quarter": 3, "half-year": 6, "year": 12}
    if text in back:
        months = back[text]
        first = today - dt.timedelta(days=7) if months is None else _months_back(today, months)
        return first, today
    current = {"week-cur": "this-week", "month-cur": "this-month", "year-cur": "this-year"}
    if text in current:
        return preset(current[text], today, sunday_first)
    try:
        days = round(float(text))
    except ValueError:
        days = 0
    if days > 0:
        return today - dt.timedelta(days=min(days, ranges.MAX_DAYS) - 1), today
    return today - dt.timedelta(days=7), today


def parse_date(text: str, field: str) -> dt.date:
    try:
        if len(text) != 10:
            raise ValueError
        day = dt.date.fromisoformat(text)
    except ValueError as exc:
        raise BadRequest(f"{field} must be a date as YYYY-MM-DD, not {go_quote(text)}") from exc
    if day.year < 1970 or day.year > 9998:
        raise BadRequest(f"{field} must be a date between 1970 and 9998")
    return day


@dataclasses.dataclass(frozen=True)
class Period:
    """The dates a dashboard shows (in the user's zone) and how its charts group them."""

    first: dt.date
    last: dt.date
    tz: dt.tzinfo
    group: str
    # Why the group is fixed ("" when the user may pick).
    fixed: str = ""

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def range(self) -> ranges.Range:
        """From 00:00 of the first date to 23:59:59 of the last, in the user's zone."""
        start = dt.datetime.combine(self.first, dt.time(), self.tz)
        end = dt.datetime.combine(self.last + dt.timedelta(days=1), dt.time(), self.tz)
        return ranges.Range(int(start.timestamp()), int(end.timestamp()) - 1, self.tz)

    def shifted(self, step: int) -> tuple[dt.date, dt.date]:
        """The period `step` periods later (earlier when negative): whole months move by
        months, anything else by its number of days."""
        if self.first.day == 1 and self.last == _month_end(self.last):
            months = ((self.last.year - self.first.year) * 12 + self.last.month
                      - self.first.month + 1)
            first = _months_back(self.first, -months * step)
            return first, _month_end(_months_back(first, -(months - 1)))
        delta = dt.timedelta(days=self.days * step)
        return self.first + delta, self.last + delta

    def previous(self) -> Period:
        first, last = self.shifted(-1)
        return dataclasses.replace(self, first=first, last=last)


def group_for(days: int, wanted: str) -> tuple[str, str]:
    """(group, why it is fixed) for a range of `days` dates."""
    if days <= HOURLY_ONLY_DAYS:
        return "hour", f"Ranges of up to {HOURLY_ONLY_DAYS} days are shown by hour"
    if days > DAILY_ONLY_DAYS:
        return "day", f"Ranges over {DAILY_ONLY_DAYS} days are shown by day"
    return wanted, ""


def parse(args: Mapping[str, str], settings: dict[str, Any], tz: dt.tzinfo, now: float,
          first_hit: float) -> Period:
    """The period of a dashboard request: `period-start`/`period-end`, a `period`
    preset, or the saved view; `group` (hour or day), else the saved view's."""
    today = dt.datetime.fromtimestamp(now, tz).date()
    sunday = bool(settings.get("sunday_starts_week"))
    views = settings.get("views") or [{}]
    view = views[0] if isinstance(views[0], dict) else {}
    name = args.get("period", "")
    if name:
        try:
            first, last = preset(name, today, sunday)
        except KeyError:
            raise BadRequest(f"unknown period {go_quote(name)}; must be one of "
                             + ", ".join(p for p, _ in PRESETS)) from None
    elif "period-start" in args or "period-end" in args:
        default_first, default_last = saved_view(view.get("period", "week"), today, sunday)
        first = parse_date(args["period-start"], "period-start") if "period-start" in args \
            else default_first
        last = parse_date(args["period-end"], "period-end") if "period-end" in args \
            else default_last
    else:
        first, last = saved_view(view.get("period", "week"), today, sunday)
        # As upstream: a saved view starts no earlier than a week before the first hit.
        earliest = dt.datetime.fromtimestamp(first_hit, tz).date() - dt.timedelta(days=7)
        first = min(max(first, earliest), last)
    if last < first:
        raise BadRequest("period-end is before period-start")
    days = (last - first).days + 1
    if days > ranges.MAX_DAYS:
        raise BadRequest(f"the period is longer than {ranges.MAX_DAYS} days")
    wanted = args.get("group") or ("day" if str(view.get("group")) in ("1", "day") else "hour")
    if wanted not in ("hour", "day"):
        raise BadRequest(f"group must be hour or day, not {go_quote(wanted)}")
    group, fixed = group_for(days, wanted)
    return Period(first, last, tz, group, fixed)


def matching_preset(period: Period, now: float, sunday_first: bool) -> str:
    """The preset the period is, or ""."""
    today = dt.datetime.fromtimestamp(now, period.tz).date()
    for name, _ in PRESETS:
        if preset(name, today, sunday_first) == (period.first, period.last):
            return name
    return ""
