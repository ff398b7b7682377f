"""The dashboard's pure parts: chart geometry, number and date formats, periods."""
from __future__ import annotations

import datetime as dt

import pytest

from goatcounter.dashboard import charts, period, widgets
from goatcounter.dashboard.formatting import Formats
from goatcounter.errors import BadRequest

UTC = dt.UTC


@pytest.mark.parametrize(("highest", "scale"), [
    (0, 10), (7, 10), (10, 10), (11, 20), (20, 20), (21, 50), (99, 100), (101, 200),
    (4_999, 5_000), (5_001, 10_000)])
def test_scale_rounds_up_to_1_2_5(highest, scale):
    assert charts.nice_scale(highest) == scale


def test_bars_end_where_their_value_is_on_the_scale():
    assert charts.top_of(0, 10) == charts.HEIGHT
    assert charts.top_of(10, 10) == charts.HEADROOM
    assert charts.top_of(5, 10) == pytest.approx((charts.HEIGHT + charts.HEADROOM) / 2)


def test_a_chart_has_a_slot_per_point_with_its_numbers():
    points = [charts.Point("Mon", (3, 5)), charts.Point("Tue", (0, 0)),
              charts.Point("Wed", (20, 40)), charts.Point("Thu", (0, 0), future=True)]
    c = charts.bars(points, ("visits", "pageviews"), str, [(0, "Mon"), (2, "Wed")])
    assert c.width == 4 and c.view_box == "0 0 4 100"
    assert c.scale == 50 and c.scale_text == "50"
    assert [s.x for s in c.slots] == [0.5, 1.5, 2.5, 3.5]
    assert c.slots[0].text == "Mon: 3 visits, 5 pageviews"
    assert c.slots[3].text == "Thu: in the future"
    assert c.slots[1].path(0) == ""  # nothing to draw for zero
    # 40 of a scale of 50: 4/5 of the 96 units between the baseline and the top line.
    assert c.slots[2].path(1) == "M2.5 100V23.2"
    assert c.slots[2].path(0) == "M2.5 100V61.6"
    assert c.slots[0].hit == "M0.5 0V100"
    assert c.future_from == 3.0 and c.future_path == "M3 0H4V100H3Z"
    assert [(t.left, t.text) for t in c.ticks] == [(0.0, "Mon"), (50.0, "Wed")]


def test_a_line_chart_goes_through_the_middles_and_stops_at_the_future():
    points = [charts.Point("Mon", (3, 5)), charts.Point("Tue", (0, 0)),
              charts.Point("Wed", (20, 40)), charts.Point("Thu", (0, 0), future=True)]
    c = charts.line(points, ("visits", "pageviews"), str, [(0, "Mon"), (2, "Wed")])
    assert c.style == "line" and c.scale == 50 and c.view_box == "0 0 4 100"
    # Back to front: pageviews, then visits; level from the left edge to the first
    # middle and from the last middle to where the future begins.
    assert [(ln.series, ln.line, ln.area) for ln in c.lines] == [
        (1, "M0 90.4H0.5L1.5 100L2.5 23.2H3", "M0 90.4H0.5L1.5 100L2.5 23.2H3V100H0Z"),
        (0, "M0 94.24H0.5L1.5 100L2.5 61.6H3", "M0 94.24H0.5L1.5 100L2.5 61.6H3V100H0Z")]
    # Each slot has no bars but its place and text, as for bars.
    assert all(s.bars == () for s in c.slots)
    assert c.slots[2].tops == pytest.approx((61.6, 23.2))
    assert [s.text for s in c.slots] == ["Mon: 3 visits, 5 pageviews",
                                         "Tue: 0 visits, 0 pageviews",
                                         "Wed: 20 visits, 40 pageviews", "Thu: in the future"]
    assert c.slots[0].hit == "M0.5 0V100"
    assert c.future_path == "M3 0H4V100H3Z"
    assert [(t.left, t.text) for t in c.ticks] == [(0.0, "Mon"), (50.0, "Wed")]


@pytest.mark.parametrize(("values", "line"), [
    ((0, 0, 0, 5, 5), "M0 100H2.5L3.5 52H5"),  # a run of equal values is one segment
    ((5, 5, 0), "M0 52H1.5L2.5 100H3"),
    ((10,), "M0 4H1"),
    ((1, 2, 3), "M0 90.4H0.5L1.5 80.8L2.5 71.2H3"),
])
def test_line_paths(values, line):
    c = charts.line([charts.Point(str(i), (v,)) for i, v in enumerate(values)], ("visits",),
                    str, scale=10)
    assert [ln.line for ln in c.lines] == [line]
    assert c.lines[0].area == line + "V100H0Z"


def test_a_chart_all_in_the_future_has_no_line():
    c = charts.line([charts.Point("a", (0,), future=True)], ("visits",), str)
    assert c.lines == () and c.future_path == "M0 0H1V100H0Z"
    assert charts.line([], ("visits",), str).lines == ()


def test_styles():
    points = [charts.Point("a", (3,)), charts.Point("b", (4,))]
    assert charts.draw("bar", points, ("visits",), str) == charts.bars(points, ("visits",), str)
    assert charts.draw("line", points, ("visits",), str) == charts.line(points, ("visits",), str)
    assert charts.draw("bar", points, ("visits",), str).lines == ()
    # Upstream's default for anything else.
    assert charts.draw("pie", points, ("visits",), str).style == "line"
    # Lines are drawn thinner past two weeks by hour.
    many = [charts.Point(str(i), (1,)) for i in range(charts.DENSE + 1)]
    assert charts.line(many, ("visits",), str).dense
    assert not charts.line(many[:-1], ("visits",), str).dense


def test_a_shared_scale_is_kept():
    c = charts.bars([charts.Point("a", (1,))], ("visits",), str, scale=200)
    assert c.scale == 200 and c.slots[0].tops[0] == pytest.approx(100 - 96 / 200)


def test_ticks_are_spread_and_start_at_the_first():
    labels = [str(i) for i in range(30)]
    assert charts.spread_ticks(30, labels) == [(0, "0"), (6, "6"), (12, "12"), (18, "18"),
                                               (24, "24")]
    assert charts.spread_ticks(3, labels) == [(0, "0"), (1, "1"), (2, "2")]
    assert charts.spread_ticks(0, labels) == []


@pytest.mark.parametrize(("sep", "text"), [
    (8239, "1\u202f234\u202f567"), (44, "1,234,567"), (46, "1.234.567"), (39, "1'234'567"),
    (160, "1\xa0234\xa0567"), (1, "1234567"), (0, "1234567")])
def test_numbers_use_the_users_separator(sep, text):
    assert Formats(separator=sep).number(1234567) == text
    assert Formats(separator=sep).number(999) == "999"


@pytest.mark.parametrize(("part", "whole", "text"), [
    (0, 10, "0%"), (1, 1000, ".1%"), (4, 1000, ".4%"), (5, 1000, "1%"), (1, 3, "33%"),
    (3, 3, "100%"), (5, 0, "0%")])
def test_percentages_as_upstream(part, whole, text):
    assert Formats().percent(part, whole) == text


@pytest.mark.parametrize(("now", "before", "text", "trend"), [
    (12, 10, "+20%", "up"), (8, 10, "−20%", "down"), (10, 10, "±0%", "same"),
    (5, 0, "new", "new"), (0, 0, "±0%", "same"), (1001, 1000, "±0%", "same"),
    (3000, 10, "+29,900%", "up")])
def test_change_against_the_previous_period(now, before, text, trend):
    assert Formats(separator=44).change(now, before) == (text, trend)


@pytest.mark.parametrize(("layout", "full", "short"), [
    ("2006-01-02", "2026-03-05", "03-05"), ("02-01-2006", "05-03-2026", "05-03"),
    ("01/02/06", "03/05/26", "03/05"), ("2 Jan ’06", "5 Mar ’26", "5 Mar"),
    ("Mon Jan 2 2006", "Thu Mar 5 2026", "Thu Mar 5")])
def test_dates_in_the_users_layout(layout, full, short):
    f = Formats(date_layout=layout)
    assert f.date(dt.date(2026, 3, 5)) == full
    assert f.date(dt.date(2026, 3, 5), year=False) == short


def test_hours_in_12_or_24_hour_clock():
    assert Formats(twenty_four=True).hours(14) == "14:00–14:59"
    assert Formats(twenty_four=True).hour(9) == "09:00"
    assert Formats().hours(14) == "2–3 pm"
    assert Formats().hours(11) == "11 am – 12 pm"
    assert Formats().hours(23) == "11 pm – 12 am"
    assert Formats().hour(0) == "12 am"


def test_formats_from_user_settings():
    f = Formats.of({"number_format": 44, "date_format": "2006-01-02", "twenty_four_hours": True})
    assert (f.number(1000), f.date(dt.date(2026, 1, 2)), f.hour(7)) == ("1,000", "2026-01-02",
                                                                      "07:00")
    assert Formats.of({}) == Formats()


TODAY = dt.date(2026, 11, 26)  # a Thursday


@pytest.mark.parametrize(("name", "first", "last"), [
    ("today", "2026-11-26", "2026-11-26"), ("yesterday", "2026-11-25", "2026-11-25"),
    ("this-week", "2026-11-23", "2026-11-29"), ("last-week", "2026-11-16", "2026-11-22"),
    ("this-month", "2026-11-01", "2026-11-30"), ("last-month", "2026-10-01", "2026-10-31"),
    ("this-quarter", "2026-10-01", "2026-12-31"), ("last-quarter", "2026-07-01", "2026-09-30"),
    ("this-year", "2026-01-01", "2026-12-31"), ("last-year", "2025-01-01", "2025-12-31"),
    ("last-7-days", "2026-11-20", "2026-11-26"), ("last-30-days", "2026-10-28", "2026-11-26")])
def test_presets(name, first, last):
    assert period.preset(name, TODAY, False) == (dt.date.fromisoformat(first),
                                                 dt.date.fromisoformat(last))


def test_sunday_starts_the_week_when_asked():
    assert period.preset("this-week", TODAY, True) == (dt.date(2026, 11, 22), dt.date(2026, 11, 28))


@pytest.mark.parametrize(("saved", "first"), [
    ("week", "2026-11-19"), ("day", "2026-11-26"), ("0", "2026-11-26"), ("month", "2026-10-26"),
    ("quarter", "2026-08-26"), ("half-year", "2026-05-26"), ("year", "2025-11-26"),
    ("30", "2026-10-28"), ("54.96", "2026-10-03"), ("nonsense", "2026-11-19")])
def test_saved_views_as_upstream(saved, first):
    assert period.saved_view(saved, TODAY, False)[0] == dt.date.fromisoformat(first)


def test_previous_and_next_move_by_the_length_or_by_months():
    p = period.Period(dt.date(2026, 11, 20), dt.date(2026, 11, 26), UTC, "hour")
    assert p.shifted(-1) == (dt.date(2026, 11, 13), dt.date(2026, 11, 19))
    assert p.shifted(1) == (dt.date(2026, 11, 27), dt.date(2026, 12, 3))
    m = period.Period(dt.date(2026, 2, 1), dt.date(2026, 2, 28), UTC, "day")
    assert m.shifted(-1) == (dt.date(2026, 1, 1), dt.date(2026, 1, 31))
    assert m.shifted(1) == (dt.date(2026, 3, 1), dt.date(2026, 3, 31))
    q = period.Period(dt.date(2026, 10, 1), dt.date(2026, 12, 31), UTC, "day")
    assert q.previous().first == dt.date(2026, 7, 1) and q.previous().last == dt.date(2026, 9, 30)


def test_a_period_is_whole_days_in_the_users_zone():
    import zoneinfo
    tz = zoneinfo.ZoneInfo("Europe/Amsterdam")
    rng = period.Period(dt.date(2026, 11, 26), dt.date(2026, 11, 26), tz, "hour").range()
    assert rng.start == int(dt.datetime(2026, 11, 25, 23, tzinfo=UTC).timestamp())
    assert rng.end == rng.start + 86400 - 1


NOW = dt.datetime(2026, 11, 26, 12, tzinfo=UTC).timestamp()


def parse(args, settings=None):
    return period.parse(args, settings or {}, UTC, NOW, NOW - 365 * 86400)


def test_group_rules():
    assert parse({"period-start": "2026-11-20", "period-end": "2026-11-26",
                  "group": "day"}).group == "hour"
    assert parse({"period-start": "2026-10-01", "period-end": "2026-11-26",
                  "group": "day"}).group == "day"
    assert parse({"period-start": "2026-10-01", "period-end": "2026-11-26"}).group == "hour"
    assert parse({"period-start": "2026-10-01", "period-end": "2026-11-26"},
                 {"views": [{"group": 1}]}).group == "day"
    assert parse({"period-start": "2026-01-01", "period-end": "2026-11-26",
                  "group": "hour"}).group == "day"


@pytest.mark.parametrize("args", [
    {"period-start": "2026-13-01"}, {"period-start": "yesterday"}, {"period-end": "2026-1-1"},
    {"period-start": "2026-11-26", "period-end": "2026-11-01"}, {"period": "fortnight"},
    {"group": "week"}, {"period-start": "1900-01-01"},
    {"period-start": "1990-01-01", "period-end": "2026-01-01"}])
def test_bad_periods_are_refused(args):
    with pytest.raises(BadRequest):
        parse(args)


def test_a_saved_view_starts_no_earlier_than_a_week_before_the_first_hit():
    p = period.parse({}, {"views": [{"period": "year"}]}, UTC, NOW, NOW - 3 * 86400)
    assert p.first == dt.date(2026, 11, 16)


@pytest.mark.parametrize(("value", "number"), [
    (None, 6), (0, 6), (-1, 6), (3, 3), (3.0, 3), (3.7, 3), ("4", 4), ("4.0", 4), ("x", 6),
    (True, 6), (99, 20), ([3], 6)])
def test_number_settings(value, number):
    assert widgets.setting_number({"limit": value}, "limit", 6, 1, 20) == number


@pytest.mark.parametrize(("value", "on"), [
    (True, True), (False, False), (None, False), ("on", True), ("true", True), ("off", False),
    (1, False)])
def test_checkbox_settings(value, on):
    assert widgets.setting_flag({"align": value}, "align") is on


@pytest.mark.parametrize(("value", "style"), [
    ("line", "line"), ("bar", "bar"), ("text", "text"), (" Bar ", "bar"), ("pie", "line"),
    (None, "line"), (3, "line")])
def test_select_settings(value, style):
    assert widgets.setting_choice({"style": value}, "style", widgets.PAGE_STYLES) == style


@pytest.mark.parametrize(("kind", "key", "pinned"), [
    ("location", "US", "US"), ("location", "nl", "NL"), ("location", "USA", ""),
    ("location", "1A", ""), ("size", "phone", "phone"), ("size", "unknown", ""),
    ("size", "big", ""), ("campaign", "3", "3"), ("campaign", 3.0, "3"), ("campaign", "0", ""),
    ("campaign", "x", ""), ("browser", " Chrome ", "Chrome"), ("browser", None, ""),
    ("browser", "", ""), ("browser", False, ""), ("ref", "example.com", "example.com"),
    ("language", "deu", ""), ("browser", "x" * 1001, "")])
def test_pinned_keys(kind, key, pinned):
    assert widgets.pinned_key(kind, {"key": key}) == pinned
