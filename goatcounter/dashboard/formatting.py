"""Numbers, dates and hours as the user's settings ask for them (UserSettings
`number_format`, `date_format`, `twenty_four_hours`), so that templates only print text."""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

# Go's layout tokens in the date formats upstream offers, longest first.
_TOKENS = re.compile(r"January|Monday|2006|Jan|Mon|_2|01|02|06|1|2")
_YEAR = re.compile(r"[\s,/’'-]*(2006|’06|'06|06)[\s,/’'-]*")
DEFAULT_DATE = "2 Jan ’06"
NO_SEPARATOR = 1
THIN_SPACE = 8239


@dataclasses.dataclass(frozen=True)
class Formats:
    """How one user reads numbers, dates and times."""

    separator: int = THIN_SPACE
    date_layout: str = DEFAULT_DATE
    twenty_four: bool = False

    @classmethod
    def of(cls, settings: dict[str, Any]) -> Formats:
        sep = settings.get("number_format")
        layout = settings.get("date_format")
        return cls(separator=sep if isinstance(sep, int) else THIN_SPACE,
                   date_layout=layout if isinstance(layout, str) and layout else DEFAULT_DATE,
                   twenty_four=bool(settings.get("twenty_four_hours")))

    def number(self, n: int) -> str:
        """A whole number with the user's thousands separator (none for 1 or below)."""
        text = f"{abs(int(n)):,}"
        sep = "" if self.separator <= NO_SEPARATOR else chr(self.separator)
        return ("-" if n < 0 else "") + text.replace(",", sep)

    def percent(self, part: int, whole: int) -> str:
        """Upstream's percentages: "0%", one decimal below 0.5 (".3%"), else rounded."""
        if not whole or not part:
            return "0%"
        value = part / whole * 100
        if value < 0.5:
            return f"{value:.1f}".lstrip("0") + "%"
        return f"{int(value + 0.5)}%"

    def change(self, now: int, before: int) -> tuple[str, str]:
        """The change against the previous period as (text, "up" | "down" | "same" |
        "new")."""
        if before == 0:
            return ("new", "new") if now else ("±0%", "same")
        value = (now - before) / before * 100
        if round(value) == 0:
            return "±0%", "same"
        shown = max(1, abs(round(value)))
        return (f"+{self.number(shown)}%", "up") if value > 0 \
            else (f"−{self.number(shown)}%", "down")

    def date(self, day: dt.date, year: bool = True) -> str:
        """A date in the user's layout; without the year when `year` is false."""
        layout = self.date_layout if year else (_YEAR.sub(" ", self.date_layout).strip()
                                                or self.date_layout)
        return _TOKENS.sub(lambda m: _token(m.group(0), day), layout)

    def hour(self, hour: int) -> str:
        """The start of an hour: "14:00", or "2 pm"."""
        if self.twenty_four:
            return f"{hour:02d}:00"
        return f"{hour % 12 or 12} {'am' if hour < 12 else 'pm'}"

    def hours(self, hour: int) -> str:
        """An hour as a span: "14:00–14:59", or "2–3 pm"."""
        if self.twenty_four:
            return f"{hour:02d}:00–{hour:02d}:59"
        end = (hour + 1) % 24
        if (hour < 12) == (end < 12) and end != 0:
            return f"{hour % 12 or 12}–{end % 12 or 12} {'am' if hour < 12 else 'pm'}"
        return f"{self.hour(hour)} – {self.hour(end)}"


def _token(token: str, day: dt.date) -> str:
    return {
        "2006": f"{day.year:04d}", "06": f"{day.year % 100:02d}",
        "01": f"{day.month:02d}", "1": str(day.month),
        "January": day.strftime("%B"), "Jan": day.strftime("%b"),
        "02": f"{day.day:02d}", "2": str(day.day), "_2": f"{day.day:2d}",
        "Monday": day.strftime("%A"), "Mon": day.strftime("%a"),
    }[token]
