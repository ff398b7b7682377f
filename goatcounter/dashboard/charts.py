"""Chart geometry for inline SVG, computed here so that templates only place it.

A chart is a row of slots (an hour or a day each). Its SVG uses a view box one unit wide
per slot and HEIGHT units high, stretched to the box it is drawn in
(preserveAspectRatio="none"). Two styles, as upstream's: bars, where a bar is a vertical
stroke at the slot's middle (its width comes from the stroke width the group sets), and
a line through the slots' middles with the area under it filled, which stops where the
future begins. Every slot carries its text (date, hour and numbers) for the hover title,
the keyboard focus and the table that screen readers get instead of the picture.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

HEIGHT = 100
# Room above the highest bar, so that it never touches the top line.
HEADROOM = 4
MIN_SCALE = 10
# How many labels the time axis shows at most.
AXIS_LABELS = 5
STYLES = ("line", "bar")
# Past this many slots a line is drawn thinner (upstream: 1.5 px up to 14 days by hour).
DENSE = 14 * 24


@dataclasses.dataclass(frozen=True)
class Slot:
    """One hour or day of a chart, as the template draws it."""

    x: float  # the slot's middle, in view box units
    tops: tuple[float, ...]  # per series: where its bar ends (HEIGHT is the baseline)
    values: tuple[int, ...]
    label: str  # "Mon 3 Nov 14:00–14:59"
    text: str  # "Mon 3 Nov 14:00–14:59: 12 visits, 30 pageviews"
    numbers: tuple[str, ...]  # the values, formatted
    future: bool = False
    # The bars to draw, back to front: (series number, SVG path); none for zeros.
    bars: tuple[tuple[int, str], ...] = ()
    hit: str = ""  # a full-height path over the slot that takes the pointer

    def path(self, series: int) -> str:
        """The SVG path of a series' bar ("" when it has none)."""
        top = self.tops[series]
        if top >= HEIGHT:
            return ""
        return f"M{_num(self.x)} {HEIGHT}V{_num(top)}"


@dataclasses.dataclass(frozen=True)
class Tick:
    """A label under the chart, at `left` percent of its width."""

    left: float
    text: str


@dataclasses.dataclass(frozen=True)
class Line:
    """One series of a line chart: the line and the closed area under it."""

    series: int
    line: str
    area: str


@dataclasses.dataclass(frozen=True)
class Chart:
    """A bar or line chart of one or more series over the same slots."""

    slots: tuple[Slot, ...]
    scale: int  # the value of the top line
    scale_text: str
    ticks: tuple[Tick, ...]
    future_from: float | None  # view box x where the future begins, if within the chart
    style: str = "bar"
    lines: tuple[Line, ...] = ()  # line charts, back to front

    @property
    def dense(self) -> bool:
        return self.width > DENSE

    @property
    def width(self) -> int:
        return len(self.slots)

    @property
    def view_box(self) -> str:
        return f"0 0 {max(1, self.width)} {HEIGHT}"

    @property
    def bar_width(self) -> str:
        """The stroke width of the bars: a gap between them only while there is room."""
        return "0.8" if self.width <= 400 else "1"

    @property
    def grid(self) -> tuple[str, ...]:
        """Paths of the horizontal lines: the top, the middle and the baseline."""
        w = max(1, self.width)
        return tuple(f"M0 {_num(y)}H{w}" for y in (HEADROOM, (HEIGHT + HEADROOM) / 2, HEIGHT))

    @property
    def future_path(self) -> str:
        if self.future_from is None:
            return ""
        return f"M{_num(self.future_from)} 0H{self.width}V{HEIGHT}H{_num(self.future_from)}Z"


def _num(value: float) -> str:
    """A coordinate with at most two decimals and no trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text if text != "-0" else "0"


def nice_scale(highest: int) -> int:
    """The top of the scale: the highest value rounded up to 1, 2 or 5 times a power of
    ten, and at least MIN_SCALE (so that a handful of visits doesn't fill the chart)."""
    if highest <= MIN_SCALE:
        return MIN_SCALE
    power = 10 ** math.floor(math.log10(highest))
    for step in (1, 2, 5, 10):
        if highest <= step * power:
            return step * power
    return 10 * power  # pragma: no cover (the loop always returns)


def top_of(value: int, scale: int) -> float:
    """Where a bar of `value` ends: HEIGHT is zero, HEADROOM is the scale."""
    if value <= 0:
        return float(HEIGHT)
    return HEIGHT - value / scale * (HEIGHT - HEADROOM)


@dataclasses.dataclass(frozen=True)
class Point:
    """What a chart is made from: one slot's label, its values and whether it lies in
    the future."""

    label: str
    values: tuple[int, ...]
    future: bool = False


def bars(points: Sequence[Point], names: Sequence[str], number: Callable[[int], str],
         ticks: Sequence[tuple[int, str]] = (), scale: int | None = None) -> Chart:
    """A bar chart of the points; `names` name each series in the texts ("visits"),
    `number` formats a value, `ticks` are (slot index, label) for the axis. The scale is
    the given one (to share it between charts) or the highest value's."""
    return draw("bar", points, names, number, ticks, scale)


def line(points: Sequence[Point], names: Sequence[str], number: Callable[[int], str],
         ticks: Sequence[tuple[int, str]] = (), scale: int | None = None) -> Chart:
    """A line chart of the points, with the same arguments as `bars`."""
    return draw("line", points, names, number, ticks, scale)


def draw(style: str, points: Sequence[Point], names: Sequence[str],
         number: Callable[[int], str], ticks: Sequence[tuple[int, str]] = (),
         scale: int | None = None) -> Chart:
    """A chart of the points in a style of STYLES (an unknown one draws lines, upstream's
    default)."""
    is_line = style != "bar"
    highest = max((max(p.values, default=0) for p in points), default=0)
    top = scale or nice_scale(highest)
    slots = []
    cache: dict[int, str] = {}
    future_from = None
    for i, p in enumerate(points):
        if p.future and future_from is None:
            future_from = float(i)
        shown = tuple(cache[v] if v in cache else cache.setdefault(v, number(v))
                      for v in p.values)
        numbers = ", ".join(f"{v} {n[:-1] if value == 1 else n}"
                            for v, value, n in zip(shown, p.values, names, strict=True))
        text = f"{p.label}: {'in the future' if p.future else numbers}"
        x = _num(i + 0.5)
        tops = tuple(top_of(v, top) for v in p.values)
        # A line chart's slots have no shapes of their own: the line goes through them.
        drawn = () if is_line else tuple(
            (j, f"M{x} {HEIGHT}V{_num(tops[j])}")
            for j in reversed(range(len(tops))) if tops[j] < HEIGHT)
        slots.append(Slot(x=i + 0.5, tops=tops, values=p.values, label=p.label, text=text,
                          numbers=shown, future=p.future, bars=drawn, hit=f"M{x} 0V{HEIGHT}"))
    width = max(1, len(points))
    marks = tuple(Tick(left=round(i / width * 100, 2), text=t) for i, t in ticks)
    lines: tuple[Line, ...] = ()
    if is_line:
        past = slots[:len(slots) if future_from is None else int(future_from)]
        if past:
            lines = tuple(Line(j, *_line_paths([s.tops[j] for s in past]))
                          for j in reversed(range(len(names))))
    return Chart(tuple(slots), top, number(top), marks, future_from,
                 "line" if is_line else "bar", lines)


def _line_paths(tops: Sequence[float]) -> tuple[str, str]:
    """The line through the slots' middles, level from the chart's left edge to the
    first middle and from the last middle to the last slot's right edge, and the area
    between it and the baseline. A run of equal values is one segment."""
    parts = [f"M0 {_num(tops[0])}"]
    level = True  # points at the current height not yet drawn to
    for i in range(1, len(tops)):
        if tops[i] == tops[i - 1]:
            level = True
            continue
        if level:
            parts.append(f"H{_num(i - 0.5)}")
        parts.append(f"L{_num(i + 0.5)} {_num(tops[i])}")
        level = False
    parts.append(f"H{len(tops)}")
    text = "".join(parts)
    return text, f"{text}V{HEIGHT}H0Z"


def spread_ticks(count: int, labels: Sequence[str], most: int = AXIS_LABELS
                 ) -> list[tuple[int, str]]:
    """Up to `most` evenly spread (index, label) pairs of `count` slots, the first one
    always included."""
    if count <= 0:
        return []
    step = max(1, math.ceil(count / most))
    return [(i, labels[i]) for i in range(0, count, step)]
