"""The dashboard's widgets: which stats function answers each one under the request's
filters, and its numbers, dates and charts made ready to print.

Where the answer comes from, by filter:
- none, or paths only (`filter`, `path`): the functions behind /api/v0/stats/*;
- one referrer, browser, system, size, location, language or campaign: the pages and
  totals from that dimension's aggregates (segmented.py), its own list as the API's
  detail of the value (versions, regions, widths, sources);
- anything else (the other lists under such a filter, two of them at once, pageviews
  under one, unique visitors under any): the raw hits of the range when there are few
  enough of them (rawhits.py), else a note saying why there is no number.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from collections.abc import Callable
from typing import Any

from goatcounter import collect
from goatcounter.counting.pipeline import languages
from goatcounter.dashboard import charts
from goatcounter.dashboard.formatting import Formats
from goatcounter.dashboard.period import Period
from goatcounter.stats import dims, filters, hitlist, rawhits, refs, segmented, segments, totals
from goatcounter.stats.days import Series
from goatcounter.stats.filters import PathSet
from goatcounter.stats.ranges import Range, Slots, local
from goatcounter.stats.segments import Segment

# A link maker: the current dashboard URL with some parameters changed (None removes).
Link = Callable[..., str]

# widget name: (heading, filter kind, stats page). Order and settings come from the
# user's `widgets`.
LISTS = {
    "toprefs": ("Top referrers", "ref", "toprefs"),
    "campaigns": ("Campaigns", "campaign", "campaigns"),
    "browsers": ("Browsers", "browser", "browsers"),
    "systems": ("Systems", "system", "systems"),
    "sizes": ("Sizes", "size", "sizes"),
    "locations": ("Locations", "location", "locations"),
    "languages": ("Languages", "language", "languages"),
}
# The heading of a list widget that its `key` setting pins to one value.
PINNED_HEADINGS = {"ref": "Visits from {}", "location": "Locations for {}"}
DETAIL_HEADINGS = {"browser": "{} versions", "system": "{} versions",
                   "location": "Regions of {}", "size": "Widths of {}",
                   "campaign": "Sources of {}", "ref": "Referrer {}", "language": "{}"}
SIZE_NAMES = {"phone": "Phones", "tablet": "Tablets and large phones",
              "desktop": "Computer monitors", "desktophd": "Computer monitors larger than HD",
              "unknown": "(unknown)"}
COLLECT_FLAGS = {"ref": collect.COLLECT_REFERRER, "campaign": collect.COLLECT_REFERRER,
                 "browser": collect.COLLECT_USER_AGENT, "system": collect.COLLECT_USER_AGENT,
                 "size": collect.COLLECT_SCREEN_SIZE, "location": collect.COLLECT_LOCATION,
                 "language": collect.COLLECT_LANGUAGE}
PAGE_STYLES = ("line", "bar", "text")
# Hourly bars per page row at most; longer ranges draw the rows by day.
ROW_HOURS_MAX = 8 * 24
MORE_ROWS = 50

NOTE_TOO_MANY = ("Not shown for this filter: no summary table holds this combination, and "
                 "the period has more than {cap} pageviews to count one by one. Pick a shorter "
                 "period or fewer filters.")
NOTE_REF_PATHS = ("Not shown for this filter: the paths a referrer sent visits to are counted "
                  "only without filters on browsers, systems, sizes, locations, languages or "
                  "campaigns.")
NOTE_NOT_KEPT = ("Not shown for this filter: no summary table holds this combination, and "
                 "this site doesn't keep every individual pageview of the period.")


@dataclasses.dataclass
class Request:
    """What every widget needs to know about the request."""

    conn: sqlite3.Connection
    site: dict[str, Any]
    period: Period
    paths: PathSet
    segment: Segment
    fmt: Formats
    link: Link
    now: float
    raw_cap: int
    more: str = ""
    pages_limit: int = 0
    path_id: int | None = None
    no_events: bool = False  # the paths are those without events (the totals' setting)
    settings_link: str = ""  # the site settings' collect section, when that page exists
    _raw: Any = None
    _raw_checked: bool = False
    _labels: list[str] | None = None
    _short: list[str] | None = None
    sizes: dict[str, Any] | None = None

    @property
    def rng(self) -> Range:
        return self.period.range()

    def labels(self, dates: list[dt.date]) -> list[str]:
        """The dates as charts name them ("Mon 3 Nov ’26"), made once per request."""
        if self._labels is None:
            weekday = "Mon" not in self.fmt.date_layout
            self._labels = [f"{d:%a} {self.fmt.date(d)}" if weekday else self.fmt.date(d)
                            for d in dates]
        return self._labels

    def short_labels(self, dates: list[dt.date]) -> list[str]:
        """The dates without their year, for the time axis."""
        if self._short is None:
            self._short = [self.fmt.date(d, year=False) for d in dates]
        return self._short

    def hour_labels(self) -> list[str]:
        return [self.fmt.hours(h) for h in range(24)]

    @property
    def filtered(self) -> bool:
        return not self.paths.everything or not self.segment.empty

    def raw(self) -> rawhits.Counts | str:
        """The raw-hit counts of the request, or the note saying why there are none."""
        if not self._raw_checked:
            self._raw_checked = True
            why = rawhits.refusal(self.conn, self.site["id"], self.rng, self.raw_cap)
            if why is None:
                self._raw = rawhits.count(self.conn, self.site["id"], self.rng, self.paths,
                                          self.segment)
            else:
                self._raw = (NOTE_TOO_MANY.format(cap=self.fmt.number(self.raw_cap))
                             if why == "too many" else NOTE_NOT_KEPT)
        return self._raw


# Widget settings -------------------------------------------------------------------
# Stored as upstream stores them: numbers as floats, checkboxes as booleans, selects as
# text. The API checks them, but settings written by older versions (or by hand) are
# read leniently: anything unusable means the default.

def setting_number(settings: dict[str, Any], key: str, default: int, low: int,
                   high: int) -> int:
    """A number setting (`limit`, `limit_pages`, ...) within upstream's range."""
    value = settings.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return default
    try:
        number = int(float(value))
    except ValueError:
        return default
    return default if number < 1 else min(max(number, low), high)


def setting_flag(settings: dict[str, Any], key: str) -> bool:
    """A checkbox setting (`align`, `no-events`): true, or upstream's form value "on"."""
    value = settings.get(key)
    return value is True or (isinstance(value, str) and value.strip().lower() in ("on", "true"))


def setting_choice(settings: dict[str, Any], key: str, choices: tuple[str, ...]) -> str:
    """A select setting (`style`): one of `choices`, else the first (the default)."""
    value = settings.get(key)
    text = value.strip().lower() if isinstance(value, str) else ""
    return text if text in choices else choices[0]


def setting_key(settings: dict[str, Any]) -> str:
    """A list widget's `key`: the value whose detail it shows instead of its list
    (upstream's hidden setting; "" or null for none)."""
    value = settings.get("key")
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


# Time slots ------------------------------------------------------------------------

def _points(rq: Request, hours: list[list[int]] | None, days: list[int] | None,
            extra: list[list[int]] | None = None, group: str | None = None) -> list[charts.Point]:
    """Chart points from per-date hourly numbers (24 per date) or per-date totals;
    `extra` is a second hourly series (pageviews)."""
    period = rq.period
    dates = rq.rng.local_dates()
    now = local(int(rq.now), period.tz)
    today = now.date()
    group = group or period.group
    names = rq.labels(dates)
    out = []
    if group == "hour" and hours is not None:
        spans = rq.hour_labels()
        for i, day in enumerate(dates):
            row, more, name = hours[i], extra[i] if extra is not None else None, names[i]
            for h in range(24):
                values = (row[h],) if more is None else (row[h], more[h])
                out.append(charts.Point(f"{name} {spans[h]}", values,
                                        day > today or (day == today and h > now.hour)))
        return out
    for i, day in enumerate(dates):
        first = sum(hours[i]) if hours is not None else (days or [0] * len(dates))[i]
        values = (first,) if extra is None else (first, sum(extra[i]))
        out.append(charts.Point(names[i], values, day > today))
    return out


def _ticks(rq: Request, count: int, group: str) -> list[tuple[int, str]]:
    """Axis labels: at the start of evenly spread dates (hours for a single day)."""
    dates = rq.rng.local_dates()
    if not dates or not count:
        return []
    per = 24 if group == "hour" else 1
    if len(dates) == 1 and group == "hour":
        return [(h, rq.fmt.hour(h)) for h in range(0, 24, 4)]
    return [(i * per, text) for i, text in charts.spread_ticks(len(dates), rq.short_labels(dates))]


def _hour_grid(rq: Request, rows: list[tuple[int, int]]) -> list[list[int]]:
    """(hour number in the range, n) rows as 24 numbers per local date."""
    series = Series(Slots(rq.rng))
    series.add(rows)
    return [list(h) for h in series.hourly]


# Totals ----------------------------------------------------------------------------

@dataclasses.dataclass
class Total:
    label: str
    value: str
    change: str = ""
    trend: str = ""
    note: str = ""


@dataclasses.dataclass
class TotalsWidget:
    kind = "totals"
    heading: str
    figures: list[Total]
    chart: charts.Chart | None
    names: tuple[str, ...]
    group: str
    note: str = ""
    visits: int = 0  # what the figures show (without events when they are left out)
    subtitle: str = ""
    align: bool = False  # the chart lines up with the pages widget's charts
    no_events: bool = False  # the numbers leave out the visits of events
    # The visits of every path, events included: what the pages widget's heading and
    # the referrers' percentages are of, as upstream's.
    all_visits: int = 0


def _prev_visits(rq: Request, prev: Range) -> int | None:
    site_id, seg = rq.site["id"], rq.segment
    if seg.empty:
        # The per-month running totals answer a sum over many paths at once.
        return sum(n for _, n in hitlist.ranked(rq.conn, site_id, prev, rq.paths, [], 10**9))
    if len(seg.dims) == 1:
        return sum(n for _, n in segmented.site_rows(rq.conn, site_id, prev, rq.paths,
                                                     seg.dims[0]))
    return None


def totals_widget(rq: Request, settings: dict[str, Any]) -> TotalsWidget:
    """The totals: visits, pageviews and unique visitors, and their chart. With the
    `no-events` setting, of the paths that aren't events (as upstream's, which reads
    only those paths' counts)."""
    style = setting_choice(settings, "style", charts.STYLES)
    align = setting_flag(settings, "align")
    everything = rq
    if setting_flag(settings, "no-events"):
        not_events = filters.without_events(rq.conn, rq.site["id"], rq.paths)
        if not_events is not None:
            rq = dataclasses.replace(rq, paths=not_events, _raw=None, _raw_checked=False,
                                     no_events=True)
    out = _totals(rq, style, everything.filtered)
    out.align = align
    out.all_visits = out.visits if rq is everything else _visits_of(everything)
    out.no_events = setting_flag(settings, "no-events")
    out.subtitle = f"{rq.fmt.number(out.visits)} visits" + \
        ("; excluding events" if out.no_events else "")
    return out


def _visits_of(rq: Request) -> int:
    """The visits under the request's filters (the totals' number, without the rest)."""
    site_id, seg = rq.site["id"], rq.segment
    if seg.empty:
        return sum(n for _, n in totals.hourly(rq.conn, site_id, rq.rng, rq.paths))
    if len(seg.dims) == 1:
        return sum(n for _, n in segmented.site_rows(rq.conn, site_id, rq.rng, rq.paths,
                                                     seg.dims[0]))
    raw = rq.raw()
    return sum(v for _, v, _ in raw.hours) if isinstance(raw, rawhits.Counts) else 0


def _totals(rq: Request, style: str, page_filtered: bool) -> TotalsWidget:
    conn, site_id, rng, fmt, seg = rq.conn, rq.site["id"], rq.rng, rq.fmt, rq.segment
    prev = rq.period.previous().range()
    note = ""
    group = rq.period.group
    hours = days = views = None
    views_total = views_prev = None
    if seg.empty:
        both = totals.hourly_with_pageviews(conn, site_id, rng, rq.paths)
        hours = _hour_grid(rq, [(h, v) for h, v, _ in both])
        views = _hour_grid(rq, [(h, pv) for h, _, pv in both])
        views_total = sum(map(sum, views))
        if rq.paths.everything or rq.no_events:
            views_prev = sum(pv for _, _, pv in totals.hourly_with_pageviews(
                conn, site_id, prev, rq.paths))
    elif len(seg.dims) == 1:
        dim = seg.dims[0]
        rows = segmented.site_rows(conn, site_id, rng, rq.paths, dim)
        if segmented.hourly(dim):
            hours = _hour_grid(rq, rows)
        else:
            days = segmented.days_of(rows, rng)
            group = "day"
    raw = rq.raw() if not seg.empty else None
    if isinstance(raw, rawhits.Counts):
        views = _hour_grid(rq, [(h, pv) for h, _, pv in raw.hours])
        views_total = sum(map(sum, views))
        if hours is None and days is None:
            hours = _hour_grid(rq, [(h, v) for h, v, _ in raw.hours])
            group = rq.period.group
    elif isinstance(raw, str) and hours is None and days is None:
        note = raw
    visits = sum(map(sum, hours)) if hours is not None else sum(days or [])
    before = _prev_visits(rq, prev)
    figures = [_figure("Visits", visits, before, fmt, shown=hours is not None or days is not None)]
    figures.append(_figure("Pageviews", views_total, views_prev, fmt,
                           none_note="not counted per browser, system, size, location, "
                                     "language, campaign or referrer for this period"))
    figures.append(_visitors(rq, raw, page_filtered))
    chart = None
    if hours is not None or days is not None:
        points = _points(rq, hours, days, views if hours is not None else None, group)
        names = ("visits", "pageviews") if hours is not None and views is not None else ("visits",)
        chart = charts.draw(style, points, names, fmt.number, _ticks(rq, len(points), group))
    else:
        names = ("visits",)
    return TotalsWidget("Totals", figures, chart, names, group, note, visits)


def _figure(label: str, now: int | None, before: int | None, fmt: Formats, shown: bool = True,
            none_note: str = "") -> Total:
    if now is None or not shown:
        return Total(label, "—", note=none_note)
    if before is None:
        return Total(label, fmt.number(now))
    text, trend = fmt.change(now, before)
    return Total(label, fmt.number(now), text, trend)


def _visitors(rq: Request, raw: Any, page_filtered: bool) -> Total:
    if not rq.filtered:
        return Total("Unique visitors",
                     rq.fmt.number(totals.visitors(rq.conn, rq.site["id"], rq.rng)))
    if raw is None:
        raw = rq.raw()
    if isinstance(raw, rawhits.Counts):
        return Total("Unique visitors", rq.fmt.number(raw.visitors))
    site_wide = totals.visitors(rq.conn, rq.site["id"], rq.rng)
    why = "under these filters" if page_filtered else "without events"
    return Total("Unique visitors", rq.fmt.number(site_wide),
                 note=f"for the whole site{', events included' if rq.no_events else ''}:"
                      f" not counted {why} for this period")


# Pages -----------------------------------------------------------------------------

@dataclasses.dataclass
class PageRow:
    path_id: int
    path: str
    title: str
    event: bool
    visits: str
    pageviews: str
    change: str
    trend: str
    chart: charts.Chart | None
    link: str  # filter to this path (or remove that filter)
    selected: bool
    refs: list[ListRow] | None = None
    refs_more: str = ""  # the link that lists more of them


@dataclasses.dataclass
class PagesWidget:
    kind = "pages"
    heading: str
    subtitle: str
    rows: list[PageRow]
    more_link: str
    style: str
    group: str
    note: str = ""


def _row_group(rq: Request, hourly_ok: bool) -> str:
    if rq.period.group == "hour" and hourly_ok and rq.period.days * 24 <= ROW_HOURS_MAX:
        return "hour"
    return "day"


def pages_widget(rq: Request, settings: dict[str, Any], total_visits: int) -> PagesWidget:
    conn, site_id, rng, fmt, seg = rq.conn, rq.site["id"], rq.rng, rq.fmt, rq.segment
    page_size = setting_number(settings, "limit_pages", 10, 1, 100)
    limit = rq.pages_limit or page_size
    style = setting_choice(settings, "style", PAGE_STYLES)
    note = ""
    prev = rq.period.previous().range()
    grids: dict[int, tuple[list[list[int]] | None, list[int] | None]] = {}
    views: dict[int, int | None] = {}
    before: dict[int, int] = {}
    hourly_ok = True
    if seg.empty:
        found = hitlist.ranked(conn, site_id, rng, rq.paths, [], limit + 1)
        top = found[:limit]
        ids = [p for p, _ in top]
        per_path = hitlist.path_hours(conn, site_id, rng, ids)
        for p in ids:
            grids[p] = (_hour_grid(rq, list(per_path[p].pairs())), None)
        views.update(hitlist.pageviews(conn, site_id, rng, ids))
        before = dict(hitlist.ranked(conn, site_id, prev, PathSet(tuple(ids)), [], len(ids) or 1))
    elif len(seg.dims) == 1:
        dim = seg.dims[0]
        found = segmented.ranked(conn, site_id, rng, rq.paths, dim, limit + 1)
        top = found[:limit]
        ids = [p for p, _ in top]
        rows = segmented.path_rows(conn, site_id, rng, dim, ids)
        hourly_ok = segmented.hourly(dim)
        for p in ids:
            grids[p] = (_hour_grid(rq, rows[p]), None) if hourly_ok \
                else (None, segmented.days_of(rows[p], rng))
        before = dict(segmented.ranked(conn, site_id, prev, PathSet(tuple(ids)), dim,
                                       len(ids) or 1))
        raw = rq.raw()
        views.update({p: raw.paths.get(p, (0, 0))[1] for p in ids}
                     if isinstance(raw, rawhits.Counts) else dict.fromkeys(ids))
    else:
        raw = rq.raw()
        if isinstance(raw, str):
            return PagesWidget("Pages", "", [], "", style, "day", raw)
        ordered = sorted(((p, v) for p, (v, _) in raw.paths.items() if v),
                         key=lambda r: (-r[1], -r[0]))
        found = ordered[:limit + 1]
        top = found[:limit]
        ids = [p for p, _ in top]
        for p in ids:
            grids[p] = (_hour_grid(rq, raw.path_hours.get(p, [])), None)
        views.update({p: raw.paths[p][1] for p in ids})
    info = {r["id"]: r for r in conn.execute(
        "SELECT id, path, title, event FROM paths WHERE site_id = :site AND id IN"
        " (SELECT value FROM json_each(:ids))",
        {"site": site_id, "ids": PathSet(tuple(ids)).json()})}
    group = _row_group(rq, hourly_ok)
    scale = 0
    points_of = {}
    for p in ids:
        hours, days = grids[p]
        points = _points(rq, hours, days, None, group)
        points_of[p] = points
        scale = max(scale, max((pt.values[0] for pt in points), default=0))
    out = []
    shown = 0
    for p, visits in top:
        shown += visits
        row = info[p]
        points = points_of[p]
        chart = None if style == "text" else charts.draw(
            style, points, ("visits",), fmt.number, _ticks(rq, len(points), group),
            scale=charts.nice_scale(scale))
        change, trend = ("", "") if seg.dims[1:] else fmt.change(visits, before.get(p, 0))
        selected = rq.path_id == p
        pv = views.get(p)
        out.append(PageRow(p, row["path"], row["title"], bool(row["event"]), fmt.number(visits),
                           "—" if pv is None else fmt.number(pv), change, trend, chart,
                           rq.link(path=None if selected else row["path"]), selected))
        if selected:
            _path_refs(rq, out[-1], settings)
    more = rq.link(pages=limit + page_size) if len(found) > limit else ""
    subtitle = f"{fmt.number(shown)} out of {fmt.number(total_visits)} visits shown"
    return PagesWidget("Pages", subtitle, out, more, style, group, note)


def _path_refs(rq: Request, row: PageRow, settings: dict[str, Any]) -> None:
    """The referrers of the selected path (as GET /api/v0/stats/hits/{id})."""
    limit = setting_number(settings, "limit_refs", 10, 1, 100)
    if rq.more == "refs":
        limit = MORE_ROWS
    if rq.segment.empty:
        got = refs.path_refs(rq.conn, rq.site["id"], row.path_id, rq.rng, limit, 0)
        items = [{"id": r["name"], **r} if r["name"] else r for r in got["refs"]]
        total = sum(r["count"] for r in items)
        row.refs = _list_rows(rq, items, "ref", max(total, 1), clickable=True)
        row.refs_more = rq.link(more="refs") if got["more"] and rq.more != "refs" else ""


# Lists -----------------------------------------------------------------------------

@dataclasses.dataclass
class ListRow:
    name: str
    count: str
    percent: str
    width: float  # of the bar behind the name, in percent
    link: str  # filter on this row ("" when it can't be)
    unknown: bool = False  # an empty name, shown as "(unknown)"
    generated: bool = False  # a referrer name made by us ("Google"), shown in italics
    visit: str = ""  # an outside address to open (http referrers)
    active: bool = False


@dataclasses.dataclass
class ListWidget:
    kind = "list"
    name: str
    heading: str
    subtitle: str
    rows: list[ListRow]
    more_link: str
    note: str = ""
    remove_link: str = ""
    collected: bool = True  # the site collects what this list is of
    settings_link: str = ""  # where that is turned on, when the page exists


def _label(kind: str, item: dict[str, Any]) -> str:
    if kind == "size" and "id" in item and not item.get("name"):
        return SIZE_NAMES.get(item["id"], item["id"])
    return item.get("name") or ""


def _list_rows(rq: Request, items: list[dict[str, Any]], kind: str | None, whole: int,
               clickable: bool) -> list[ListRow]:
    out = []
    for item in items:
        name = _label(kind or "", item)
        count = int(item["count"])
        ident = item.get("id")
        unknown = not name or name == dims.UNKNOWN
        if kind == "ref" and not name:
            name = "(no referrer)"
        link = ""
        if clickable and kind and ident and not unknown and not (kind == "size"
                                                                   and ident == "unknown"):
            link = rq.link(**{kind: str(ident)})
        scheme = item.get("ref_scheme")
        visit = f"http://{name}" if scheme == "h" and name else ""
        width = min(100.0, count / whole * 100) if whole else 0.0
        out.append(ListRow(name or dims.UNKNOWN, rq.fmt.number(count),
                           rq.fmt.percent(count, whole), round(width, 2), link, unknown,
                           scheme == "g", visit))
    return out


def list_widget(rq: Request, name: str, settings: dict[str, Any], whole_hours: int,
                whole_days: int) -> ListWidget:
    """A list widget: its list under the request's filters, or the detail of the value
    it is filtered on, or of the value its `key` setting names (upstream's hidden
    setting, which makes the widget show that value's detail)."""
    heading, kind, page = LISTS[name]
    conn, site, rng, seg = rq.conn, rq.site, rq.rng, rq.segment
    # Upstream's sizes have no limit setting; their widths are listed six at a time.
    limit = 6 if kind == "size" else setting_number(settings, "limit", 6, 1, 20)
    if rq.more == name:
        limit = MORE_ROWS
    collected = bool(site["settings"].get("collect", collect.DEFAULT_COLLECT)
                     & COLLECT_FLAGS[kind])
    whole = whole_hours if kind == "ref" else whole_days
    mine = seg.get(kind)
    others = [d for d in seg.dims if d.kind != kind]
    pinned = "" if mine is not None else pinned_key(kind, settings)
    detail = mine.value if mine is not None else (pinned or None)
    q = dims.Query(conn, site["id"], rng, rq.paths)
    got: dict[str, Any] | str
    if not others and detail is None:
        if kind == "ref":
            got = refs.top_refs(conn, site, rng, rq.paths, limit, 0)
        elif kind == "size" and rq.sizes is not None:
            got = rq.sizes  # the five classes, already read for the percentages
        else:
            got = dims.LISTS[page](q, limit, 0)
    elif not others and pinned and kind == "ref":
        got = refs.ref_paths(conn, site["id"], pinned, rng, rq.paths, limit, 0)
    elif not others and detail is not None:
        got = _detail(rq, q, kind, detail, limit, whole)
    elif pinned and kind == "ref":
        got = NOTE_REF_PATHS
    else:
        raw = rq.raw()
        got = raw if isinstance(raw, str) else rawhits.items(conn, site, raw, kind, detail,
                                                             limit)
        if isinstance(raw, rawhits.Counts) and kind == "ref" and detail:
            got = _one(detail, sum(raw.lists["ref"].values()))
        elif isinstance(raw, rawhits.Counts) and kind == "language" and detail:
            got = _one(languages.name(detail), sum(raw.lists["language"].values()), detail)
    remove = ""
    if mine is not None:
        heading = DETAIL_HEADINGS[kind].format(_value_name(kind, mine.value, conn, site))
        remove = rq.link(**{kind: None})
    elif pinned:
        heading = PINNED_HEADINGS.get(kind, DETAIL_HEADINGS[kind]).format(
            _value_name(kind, pinned, conn, site))
    out = ListWidget(name, heading, "", [], "", remove_link=remove, collected=collected,
                     settings_link=rq.settings_link)
    if isinstance(got, str):
        out.note = got
        return out
    out.rows = _list_rows(rq, got["stats"], kind, whole, clickable=detail is None)
    out.more_link = rq.link(more=name) if got.get("more") and rq.more != name else ""
    return out


def pinned_key(kind: str, settings: dict[str, Any]) -> str:
    """The value a list widget's `key` setting pins it to, if it is one the widget can
    show the detail of (a country code, a size class, a campaign number, a name)."""
    key = setting_key(settings)
    if not key or len(key) > segments.MAX_TEXT or kind == "language":
        return ""
    if kind == "location":
        return key.upper() if len(key) == 2 and key.isascii() and key.isalpha() else ""
    if kind == "size":
        return key if key in SIZE_NAMES and key != "unknown" else ""
    if kind == "campaign":
        return key if key.isascii() and key.isdigit() and int(key) > 0 else ""
    return key


def _one(name: str, count: int, ident: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": ident or name, "name": name, "count": count}
    return {"stats": [item] if count else [], "more": False}


def _detail(rq: Request, q: dims.Query, kind: str, value: str, limit: int,
            whole: int) -> dict[str, Any]:
    """A list filtered on its own kind: what the API's detail of the value lists."""
    if kind == "browser":
        return dims.browser(q, value, limit, 0)
    if kind == "system":
        return dims.system(q, value, limit, 0)
    if kind == "location":
        return dims.location(q, value, limit, 0)
    if kind == "size":
        return dims.size(q, value, limit, 0)
    if kind == "campaign":
        return dims.campaign(q, int(value), limit, 0)
    if kind == "language":
        return _one(languages.name(value), whole, value)
    return _one(value, whole)


def _value_name(kind: str, value: str, conn: sqlite3.Connection, site: dict[str, Any]) -> str:
    """How a filter value is named on the page."""
    if kind == "location":
        return dims.country_name(value)
    if kind == "language":
        return languages.name(value)
    if kind == "size":
        return SIZE_NAMES.get(value, value)
    if kind == "campaign":
        row = conn.execute("SELECT name FROM campaigns WHERE site_id = :s AND id = :id",
                           {"s": site["id"], "id": int(value)}).fetchone()
        return row[0] if row else value
    return value


def chip_label(kind: str, value: str, conn: sqlite3.Connection, site: dict[str, Any]) -> str:
    """The text of an active filter's chip: "Browser: Chrome"."""
    names = {"ref": "Referrer", "campaign": "Campaign", "browser": "Browser",
             "system": "System", "size": "Size", "location": "Location",
             "language": "Language", "path": "Path", "filter": "Paths containing"}
    shown = value if kind in ("path", "filter") else _value_name(kind, value, conn, site)
    return f"{names[kind]}: {shown}"


# The page --------------------------------------------------------------------------

def build(rq: Request, widgets: list[dict[str, Any]]) -> list[Any]:
    """Every widget of the user's list, in its order (unknown names are left out)."""
    totals_settings = next((w.get("s") or {} for w in widgets if w.get("n") == "totalpages"),
                           {})
    top = totals_widget(rq, totals_settings)
    whole_days = _daily_whole(rq)
    out: list[Any] = []
    seen = set()
    for widget in widgets:
        name = widget.get("n")
        conf = widget.get("s") or {}
        if name in seen:
            continue
        seen.add(name)
        if name == "totalpages":
            out.append(top)
        elif name == "pages":
            out.append(pages_widget(rq, conf, top.all_visits))
        elif name in LISTS:
            out.append(list_widget(rq, name, conf, top.all_visits, whole_days))
    if "totalpages" not in seen:
        out.insert(0, top)
    return out


def _daily_whole(rq: Request) -> int:
    """Visits over the range's whole UTC days under the filters: what the daily lists'
    percentages are of (every visit has a size class, "unknown" included)."""
    seg = rq.segment
    if seg.empty:
        if rq.sizes is None:
            rq.sizes = dims.size_list(dims.Query(rq.conn, rq.site["id"], rq.rng, rq.paths), 5, 0)
        return sum(s["count"] for s in rq.sizes["stats"])
    if len(seg.dims) == 1 and not segmented.hourly(seg.dims[0]):
        return sum(n for _, n in segmented.site_rows(rq.conn, rq.site["id"], rq.rng, rq.paths,
                                                     seg.dims[0]))
    raw = rq.raw()
    if isinstance(raw, rawhits.Counts):
        return sum(raw.lists["size"].values())
    return 0

