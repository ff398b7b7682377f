"""Settings objects of the API: SiteSettings (spec 11.3) and UserSettings (a site's
`user_defaults`, 11.4): decoding, upstream's defaults and merging, and validation."""
from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import zoneinfo
from typing import Any

from goatcounter import collect, decoding
from goatcounter.errors import BadRequest
from goatcounter.validation import (
    MSG_IP,
    MSG_REQUIRED,
    MSG_URL,
    FieldErrors,
    decode_object,
    length_error,
    one_of,
    quote_char,
    valid_ip,
    valid_url,
)

# Defaults, as upstream fills them in.

_SITE_SETTINGS: dict[str, Any] = {
    "public": "private",
    "secret": "",
    "allow_counter": False,
    "allow_bosmang": False,
    "data_retention": 0,
    "ignore_ips": "",
    "collect": collect.DEFAULT_COLLECT,
    "collect_regions": "US,RU,CN",
    "allow_embed": "",
}

_USER_SETTINGS: dict[str, Any] = {
    "twenty_four_hours": False,
    "sunday_starts_week": False,
    "language": "en-GB",
    "date_format": "2 Jan ’06",
    "number_format": 8239,
    "timezone": ".UTC",
    "widgets": [
        {"n": "pages", "s": {"limit_pages": 10, "limit_refs": 10, "style": "line"}},
        {"n": "totalpages", "s": {"align": False, "no-events": False, "style": "line"}},
        {"n": "toprefs", "s": {"key": None, "limit": 6}},
        {"n": "campaigns", "s": {"key": None, "limit": 6}},
        {"n": "browsers", "s": {"key": None, "limit": 6}},
        {"n": "systems", "s": {"key": None, "limit": 6}},
        {"n": "locations", "s": {"key": "", "limit": 6}},
        {"n": "languages", "s": {"limit": 6}},
        {"n": "sizes", "s": {"key": None}},
    ],
    "views": [{"name": "default", "filter": "", "group": 0, "period": "week"}],
    "email_reports": 0,
    "fewer_numbers": False,
    "fewer_numbers_lock_until": "0001-01-01T00:00:00Z",
    "theme": "",
    "datepicker": False,
}


def default_site_settings() -> dict[str, Any]:
    """A fresh copy of the default SiteSettings."""
    return copy.deepcopy(_SITE_SETTINGS)


def default_user_settings() -> dict[str, Any]:
    """A fresh copy of the default UserSettings (also a site's `user_defaults`)."""
    return copy.deepcopy(_USER_SETTINGS)


PUBLIC_VALUES = ["private", "secret", "public"]
# Stored and shown as one comma-separated string, as upstream does.
LIST_SETTINGS = ("ignore_ips", "collect_regions", "allow_embed")


def j_string_list(value: Any, field: str) -> list[str]:
    """A list setting: upstream's comma (or space) separated string, or a JSON array of
    strings (DECISIONS: list settings); blank items are dropped."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, list):
        text = ",".join(decoding.j_str(v, f"{field}[{i}]") for i, v in enumerate(value))
    else:
        raise decoding.json_error(field, value, "comma-separated string or array of strings")
    return [item.strip() for item in text.replace(",", " ").split() if item.strip()]


def j_collect(value: Any, field: str) -> int:
    """The collect bitmask: upstream reads it as an unsigned 16-bit number."""
    num = decoding.j_int(value, field)
    if not 0 <= num <= 0xFFFF:
        raise BadRequest(f'invalid JSON: {num} is out of range for field "{field}"')
    return num


SETTINGS_FIELDS: dict[str, decoding.Converter] = {
    "public": decoding.j_str,
    "secret": decoding.j_str,
    "allow_counter": decoding.j_bool,
    "allow_bosmang": decoding.j_bool,
    "data_retention": decoding.j_int,
    "ignore_ips": j_string_list,
    "collect": j_collect,
    "collect_regions": j_string_list,
    "allow_embed": j_string_list,
}


def decode_settings(value: Any, field: str) -> dict[str, Any]:
    """The fields of a SiteSettings object that were sent."""
    return decode_object(value, field, SETTINGS_FIELDS)


def merge_settings(base: dict[str, Any], changes: dict[str, Any], *,
                   or_collect: bool = False) -> dict[str, Any]:
    """`base` with `changes` applied, then upstream's defaults for every saved site.

    With `or_collect` (PATCH) the sent collect bits are added to the current ones:
    upstream decodes the bitmask by OR-ing it in, so a PATCH can't clear bits."""
    out = default_site_settings()
    out.update(base)
    for key, value in changes.items():
        if key in LIST_SETTINGS:
            value = ",".join(value)
        elif key == "collect" and or_collect:
            value |= out["collect"]
        out[key] = value
    public = out["public"].strip().lower()
    # Upstream matches these ignoring case and spaces but stores the raw text, which then
    # never equals "public" when the site is read; storing the matched value avoids that.
    out["public"] = public if public in PUBLIC_VALUES or not public else out["public"]
    if not out["public"]:
        out["public"] = "private"
    if out["collect"] == 0:
        out["collect"] = collect.UPSTREAM_DEFAULT_COLLECT
    if out["collect"] & collect.COLLECT_LOCATION_REGION:
        # Regions without their country make no sense.
        out["collect"] |= collect.COLLECT_LOCATION
    return out


def settings_errors(settings: dict[str, Any]) -> FieldErrors:
    """Upstream's SiteSettings checks; keys are relative (`public`, not `settings.public`)."""
    errors = FieldErrors()
    if settings["public"] not in PUBLIC_VALUES:
        errors.add("public", one_of(PUBLIC_VALUES))
    if settings["public"] == "secret":
        secret = settings["secret"]
        problem = length_error(secret, 8, 40)
        if problem:
            errors.add("secret", problem)
        bad = [quote_char(c) for c in secret if not (c.isascii() and c.isalnum())]
        if bad:
            errors.add("secret", f"cannot contain the characters {', '.join(bad)}")
    retention = settings["data_retention"]
    # 0 keeps data forever. Upstream lets negative numbers through; they mean nothing.
    if retention < 31 and retention != 0:
        errors.add("data_retention", "must be 31 or higher")
    if retention > 365 * 5:
        errors.add("data_retention", f"must be {365 * 5} or lower")
    for ip in filter(None, settings["ignore_ips"].split(",")):
        if not valid_ip(ip):
            errors.add("ignore_ips", MSG_IP)
    for url in filter(None, settings["allow_embed"].split(",")):
        if url == "*":
            errors.add("allow_embed", "'*' is not allowed")
        elif not valid_url(url):
            errors.add("allow_embed", MSG_URL)
    return errors


# UserSettings (a site's user_defaults, spec 11.4) -------------------------------------

ZERO_TIME = "0001-01-01T00:00:00Z"
THEMES = ["", "light", "dark"]
EMAIL_REPORTS = range(5)
# Numeric widget settings and their ranges, and the chart styles, as upstream checks them.
WIDGET_RANGES: dict[str, dict[str, tuple[int, int]]] = {
    "pages": {"limit_pages": (1, 100), "limit_refs": (1, 100)},
    **{name: {"limit": (1, 20)} for name in
       ("toprefs", "browsers", "systems", "locations", "languages", "campaigns")},
}
WIDGET_STYLES = {"pages": ["line", "bar", "text"], "totalpages": ["line", "bar"]}


def j_uint8(value: Any, field: str) -> int:
    num = decoding.j_int(value, field)
    if not 0 <= num <= 255:
        raise BadRequest(f'invalid JSON: {num} is out of range for field "{field}"')
    return num


def j_rune(value: Any, field: str) -> int:
    """A Unicode code point sent as a number (number_format)."""
    num = decoding.j_int(value, field)
    if not 0 <= num <= 0x10FFFF:
        raise BadRequest(f'invalid JSON: {num} is out of range for field "{field}"')
    return num


# Listing the zones walks the zone files on disk; the list doesn't change while running.
known_zones = functools.cache(zoneinfo.available_timezones)


def j_timezone(value: Any, field: str) -> str:
    """`<country code>.<zone>`, e.g. `NL.Europe/Amsterdam` or `.UTC`."""
    text = decoding.j_str(value, field)
    _, dot, zone = text.partition(".")
    known = known_zones()
    # Without a time zone database on the machine only the shape can be checked.
    if not dot or (known and zone not in known and zone != "UTC"):
        raise BadRequest(f"invalid JSON: {field}: unknown timezone: {json.dumps(text)}")
    return text


def time_text(value: dt.datetime) -> str:
    """RFC 3339 in UTC for any year (strftime pads no year below 1000 on glibc)."""
    text = value.astimezone(dt.UTC).replace(tzinfo=None).isoformat()
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + "Z"


def j_time_text(value: Any, field: str) -> str:
    parsed = decoding.j_time(value, field)
    return ZERO_TIME if parsed is None else time_text(parsed)


def j_widgets(value: Any, field: str) -> list[dict[str, Any]]:
    """Widgets are free-form `{"n": name, "s": {settings}}` objects upstream; the parts
    its own code relies on must have the right type (upstream fails with a 500)."""
    if not isinstance(value, list):
        raise decoding.json_error(field, value, "array")
    out = []
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        widget = dict(decoding.j_object(item, where))
        if widget.get("n") is not None:
            decoding.j_str(widget["n"], where + ".n")
        conf = widget.get("s")
        if conf is not None:
            conf = dict(decoding.j_object(conf, where + ".s"))
            for key in WIDGET_RANGES.get(widget.get("n") or "", {}):
                if conf.get(key) is not None:
                    conf[key] = decoding.j_int(conf[key], f"{where}.s.{key}")
            if conf.get("style") is not None:
                decoding.j_str(conf["style"], where + ".s.style")
            widget["s"] = conf
        out.append(widget)
    return out


VIEW_FIELDS: dict[str, decoding.Converter] = {
    "name": decoding.j_str, "filter": decoding.j_str, "group": j_uint8, "period": decoding.j_str}


def j_views(value: Any, field: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise decoding.json_error(field, value, "array")
    out = []
    for i, item in enumerate(value):
        view = {"name": "", "filter": "", "group": 0, "period": ""}
        view.update(decode_object(item, f"{field}[{i}]", VIEW_FIELDS))
        out.append(view)
    return out


USER_FIELDS: dict[str, decoding.Converter] = {
    "twenty_four_hours": decoding.j_bool,
    "sunday_starts_week": decoding.j_bool,
    "language": decoding.j_str,
    "date_format": decoding.j_str,
    "number_format": j_rune,
    "timezone": j_timezone,
    "widgets": j_widgets,
    "views": j_views,
    "email_reports": j_uint8,
    "fewer_numbers": decoding.j_bool,
    "fewer_numbers_lock_until": j_time_text,
    "theme": decoding.j_str,
    "datepicker": decoding.j_bool,
}


def decode_user_defaults(value: Any, field: str) -> dict[str, Any]:
    """The fields of a UserSettings object that were sent."""
    return decode_object(value, field, USER_FIELDS)


def build_user_defaults(given: dict[str, Any]) -> dict[str, Any]:
    """A complete UserSettings from the fields sent: upstream starts from empty values
    and fills in defaults for the empty ones that can't stay empty."""
    full = default_user_settings()
    out: dict[str, Any] = {"twenty_four_hours": False, "sunday_starts_week": False,
                           "language": "",
           "date_format": "", "number_format": 0, "timezone": "", "widgets": [], "views": [],
           "email_reports": 0, "fewer_numbers": False, "fewer_numbers_lock_until": ZERO_TIME,
           "theme": "", "datepicker": False}
    out.update(given)
    for key in ("language", "date_format", "number_format", "timezone", "widgets", "views"):
        if not out[key]:
            out[key] = full[key]
    theme = out["theme"].strip().lower()
    out["theme"] = theme if theme in THEMES else out["theme"]
    return out


def user_defaults_errors(user: dict[str, Any]) -> FieldErrors:
    """Upstream's UserSettings checks; keys are relative (`views`, `widgets[0].limit`)."""
    errors = FieldErrors()
    for i, widget in enumerate(user["widgets"]):
        name = widget.get("n")
        if not name:
            errors.add(f"widgets[{i}].n", MSG_REQUIRED)
            continue
        conf = widget.get("s") or {}
        for key, (low, high) in WIDGET_RANGES.get(name, {}).items():
            num = conf.get(key)
            if num is not None and num < low:
                errors.add(f"widgets[{i}].{key}", f"must be {low} or higher")
            if num is not None and num > high:
                errors.add(f"widgets[{i}].{key}", f"must be {high} or lower")
        style = conf.get("style")
        if name in WIDGET_STYLES and style is not None \
                and style.strip().lower() not in WIDGET_STYLES[name]:
            errors.add(f"widgets[{i}].style", one_of(WIDGET_STYLES[name]))
    views = user["views"]
    if len(views) != 1 or views[0]["name"].lower() != "default":
        errors.add("views", "view not set")
    if user["email_reports"] not in EMAIL_REPORTS:
        errors.add("email_reports", "invalid value")
    if user["theme"] not in THEMES:
        errors.add("theme", one_of(THEMES))
    return errors
