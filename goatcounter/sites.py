"""Sites: storage, lookup by Host header, the Sites API's rules (validation, merging of
settings, creation and updates of child sites), and the `db create site` command."""
from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import json
import re
import sqlite3
import time
import unicodedata
import urllib.parse
import zoneinfo
from collections.abc import Callable, Mapping
from typing import Any

import click
from flask.cli import with_appcontext

from . import clock, db, defaults, encoding, params
from .errors import BadRequest, NotFound, ValidationError

SITE_COLUMNS = ("id, parent, cname, cname_setup_at, code, link_domain, settings, user_defaults,"
                " received_data, state, created_at, updated_at, first_hit_at")


def now_text() -> str:
    """Now as whole-second RFC 3339, the precision site and user times are kept in."""
    return clock.rfc3339(int(clock.now()))  # type: ignore[return-value]


def random_code() -> str:
    """A site code as upstream makes them in self-hosted mode: serve-<base36>."""
    return "serve-" + encoding.random_base36(64)


def decode(row: sqlite3.Row) -> dict[str, Any]:
    """A site row with its JSON columns decoded."""
    site = dict(row)
    site["settings"] = json.loads(site["settings"])
    site["user_defaults"] = json.loads(site["user_defaults"])
    return site


def to_api(site: dict[str, Any]) -> dict[str, Any]:
    """The Site object of the API (spec 11.2), keys in upstream's order and spelling."""
    return {
        "id": site["id"],
        "parent": site["parent"],
        "cname": site["cname"],
        "cname_setup_at": site["cname_setup_at"],
        "code": site["code"],
        "link_domain": site["link_domain"],
        "setttings": site["settings"],
        "user_defaults": site["user_defaults"],
        "received_data": bool(site["received_data"]),
        "state": site["state"],
        "created_at": site["created_at"],
        "updated_at": site["updated_at"],
        "first_hit_at": site["first_hit_at"],
    }


def get(conn: sqlite3.Connection, site_id: int) -> dict[str, Any] | None:
    """The site with this id, or None."""
    row = conn.execute(f"SELECT {SITE_COLUMNS} FROM sites WHERE id = :id",
                       {"id": site_id}).fetchone()
    return decode(row) if row else None


def strip_port(host: str) -> str:
    """The host name of a Host header value, without its port."""
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    return host.split(":", 1)[0] if host.count(":") == 1 else host


def by_host(conn: sqlite3.Connection, host: str) -> dict[str, Any]:
    """The site a request is for, from its Host header: the site whose cname matches
    (with or without the port), or the only site when there is just one."""
    bare = strip_port(host)
    # Host names are case-insensitive; NOCASE is also how the unique index compares.
    rows = conn.execute(
        f"SELECT {SITE_COLUMNS} FROM sites"
        " WHERE state = 'a' AND cname COLLATE NOCASE IN (:host, :bare)",
        {"host": host, "bare": bare}).fetchall()
    if rows:
        return decode(rows[0])
    rows = conn.execute(f"SELECT {SITE_COLUMNS} FROM sites WHERE state = 'a' LIMIT 2").fetchall()
    if len(rows) == 1:
        return decode(rows[0])
    raise BadRequest(f'no site at this domain ("{host}")')


def ignored_ips(settings: dict[str, Any]) -> frozenset[str]:
    """The addresses of a site's `ignore_ips` setting."""
    return _split_ips(str(settings.get("ignore_ips", "")))


@functools.lru_cache(maxsize=256)
def _split_ips(text: str) -> frozenset[str]:
    return frozenset(ip.strip() for ip in text.split(",") if ip.strip())


class HostCache:
    """Sites by Host header, kept a second per process: the pixel endpoint looks its site
    up on every pageview. A change made by this process clears it at once; other
    workers see a change within TTL seconds. Callers must not modify what they get."""

    TTL = 1.0

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, dict[str, Any]]] = {}

    def get(self, conn: sqlite3.Connection, host: str) -> dict[str, Any]:
        now = time.monotonic()
        entry = self._entries.get(host)
        if entry is not None and entry[0] > now:
            return entry[1]
        site = by_host(conn, host)
        if len(self._entries) > 1000:
            self._entries.clear()
        self._entries[host] = (now + self.TTL, site)
        return site

    def clear(self) -> None:
        self._entries.clear()


def create(conn: sqlite3.Connection, *, cname: str | None, parent: int | None = None,
           code: str | None = None, link_domain: str = "",
           settings: dict[str, Any] | None = None,
           user_defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Insert a site (inside the caller's write transaction) and return it."""
    now = now_text()
    full = defaults.site_settings()
    full.update(settings or {})
    cur = conn.execute(
        "INSERT INTO sites (parent, code, cname, cname_setup_at, link_domain, settings,"
        " user_defaults, created_at, first_hit_at)"
        " VALUES (:parent, :code, :cname, :setup, :link, :settings, :ud, :now, :now)",
        {"parent": parent, "code": code or random_code(), "cname": cname,
         "setup": now if cname else None, "link": link_domain,
         "settings": json.dumps(full),
         "ud": json.dumps(user_defaults or defaults.user_settings()), "now": now})
    site = get(conn, int(cur.lastrowid or 0))
    assert site is not None
    return site


def account_id(site: dict[str, Any]) -> int:
    """The account a site belongs to: its parent, or itself."""
    return site["parent"] or site["id"]


# Validation, the way upstream's validator reports it ----------------------------------

# Upstream's messages, word for word; clients match on them.
MSG_REQUIRED = "must be set"
MSG_URL = "must be a valid url"
MSG_IP = "must be a valid IPv4 or IPv6 address"
MSG_WHOLE_NUMBER = "must be a whole number"
MSG_EXISTS = "already exists"


class FieldErrors:
    """Field errors collected before answering once: every message of every field, with
    nested keys joined by a dot (`settings.public`), as upstream's validator does."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.errors.setdefault(field, []).append(message)

    def sub(self, prefix: str, other: FieldErrors) -> None:
        for key, messages in other.errors.items():
            self.errors.setdefault(f"{prefix}.{key}", []).extend(messages)

    def __bool__(self) -> bool:
        return bool(self.errors)

    def check(self) -> None:
        """Raise the collected errors, if any. Keys are sorted: upstream's errors are a Go
        map, which encoding/json always writes in key order."""
        if self.errors:
            raise ValidationError({k: self.errors[k] for k in sorted(self.errors)})


def one_of(values: list[str]) -> str:
    return f"must be one of ‘{', '.join(values)}’"


def length_error(value: str, low: int, high: int) -> str | None:
    """Upstream's length check, in characters; the bounds themselves are fine."""
    if len(value) < low:
        return f"must be longer than {low} characters"
    if len(value) > high:
        return f"must be shorter than {high} characters"
    return None


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\v": "\\v", "'": "\\'", "\\": "\\\\"}


def quote_char(char: str) -> str:
    """A character as Go's %q prints a rune (`'x'`, `'\\n'`, `'\\u200b'`): upstream puts
    the offending characters in some messages."""
    if char in _GO_ESCAPES:
        return f"'{_GO_ESCAPES[char]}'"
    if char.isprintable():
        return f"'{char}'"
    code = ord(char)
    if code < 0x80:
        return f"'\\x{code:02x}'"
    return f"'\\u{code:04x}'" if code < 0x10000 else f"'\\U{code:08x}'"


def domain_error(value: str, min_labels: int = 2) -> str | None:
    """Why `value` is not a domain name, in upstream's words, or None when it is one.

    Letters and digits of any script, `-` and `_` are allowed; punycode labels are
    checked after decoding. Like upstream, two labels are needed ("localhost" is not a
    domain) and an IPv4 address passes (its labels are digits)."""
    if len(value.encode()) < 3 or value.startswith("."):
        return "too short"
    labels = value.removesuffix(".").split(".")
    if len(labels) < min_labels:
        return f"need at least {min_labels} labels"
    total = 0
    for label in labels:
        size = len(label.encode())
        if size > 63:
            return "label is longer than 63 bytes"
        total += size
        if label.startswith("xn--"):
            try:
                label = label[4:].encode("ascii").decode("punycode")
            except (UnicodeError, ValueError):
                return f"not valid punycode: {json.dumps(label, ensure_ascii=False)}"
        for char in label:
            cat = unicodedata.category(char)
            if not (cat.startswith("L") or cat == "Nd" or char in "-_"):
                return f"invalid character: {quote_char(char)}"
    if total > 255:
        return "domain is longer than 255 bytes"
    return None


def valid_url(value: str) -> bool:
    """Whether `value` is a URL with a public-looking host; the scheme may be left out
    (then http is assumed), as upstream's link_domain and allow_embed accept."""
    text = "http:" + value if value.startswith("//") else value
    try:
        parts = urllib.parse.urlsplit(text)
        if not parts.scheme:
            parts = urllib.parse.urlsplit("http://" + text)
    except ValueError:
        return False
    host = parts.netloc.rpartition("@")[2]
    if host.startswith("["):
        return False  # an IPv6 literal is not a domain (upstream agrees)
    host, _, port = host.partition(":")
    if not host or (port and not port.isdigit()):
        return False
    return domain_error(host) is None


def valid_ip(value: str) -> bool:
    # Go's ParseIP takes no IPv6 zone (`fe80::1%eth0`); Python's parser does.
    if "%" in value:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def cname_errors(errors: FieldErrors, cname: str) -> None:
    """Length and domain checks of a cname that was given."""
    problem = length_error(cname, 4, 255)
    if problem:
        errors.add("cname", problem)
    if cname:
        reason = domain_error(cname)
        if reason:
            errors.add("cname", f"must be a valid domain: {reason}")


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_json(value: Any) -> Any:
    """The decoded body with lone UTF-16 surrogates (valid JSON escapes, but not text)
    replaced by U+FFFD, as Go's decoder does; SQLite and the reply can't encode them."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    if isinstance(value, dict):
        return {clean_json(k): clean_json(v) for k, v in value.items()}
    return value


def nullable(conv: params.Converter) -> params.Converter:
    """A converter that passes null through: in Go, null leaves a field as it was."""
    return lambda value, field: None if value is None else conv(value, field)


def decode_object(value: Any, field: str,
                  fields: Mapping[str, params.Converter]) -> dict[str, Any]:
    """A nested JSON object checked against `fields` (unknown keys are a 400, keys match
    ignoring case); only keys that were sent with a non-null value are returned."""
    obj = params.j_object(value, field)
    got = params.match_keys(obj, {k: nullable(c) for k, c in fields.items()}, field + ".")
    return {k: v for k, v in got.items() if v is not None}


# SiteSettings (spec 11.3) -------------------------------------------------------------

PUBLIC_VALUES = ["private", "secret", "public"]
# Stored and shown as one comma-separated string, as upstream does.
LIST_SETTINGS = ("ignore_ips", "collect_regions", "allow_embed")


def j_string_list(value: Any, field: str) -> list[str]:
    """A list setting: upstream's comma (or space) separated string, or a JSON array of
    strings (DECISIONS: list settings); blank items are dropped."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, list):
        text = ",".join(params.j_str(v, f"{field}[{i}]") for i, v in enumerate(value))
    else:
        raise params.json_error(field, value, "comma-separated string or array of strings")
    return [item.strip() for item in text.replace(",", " ").split() if item.strip()]


def j_collect(value: Any, field: str) -> int:
    """The collect bitmask: upstream reads it as an unsigned 16-bit number."""
    num = params.j_int(value, field)
    if not 0 <= num <= 0xFFFF:
        raise BadRequest(f'invalid JSON: {num} is out of range for field "{field}"')
    return num


SETTINGS_FIELDS: dict[str, params.Converter] = {
    "public": params.j_str,
    "secret": params.j_str,
    "allow_counter": params.j_bool,
    "allow_bosmang": params.j_bool,
    "data_retention": params.j_int,
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
    out = defaults.site_settings()
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
        out["collect"] = defaults.UPSTREAM_DEFAULT_COLLECT
    if out["collect"] & defaults.COLLECT_LOCATION_REGION:
        # Regions without their country make no sense.
        out["collect"] |= defaults.COLLECT_LOCATION
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
    num = params.j_int(value, field)
    if not 0 <= num <= 255:
        raise BadRequest(f'invalid JSON: {num} is out of range for field "{field}"')
    return num


def j_rune(value: Any, field: str) -> int:
    """A Unicode code point sent as a number (number_format)."""
    num = params.j_int(value, field)
    if not 0 <= num <= 0x10FFFF:
        raise BadRequest(f'invalid JSON: {num} is out of range for field "{field}"')
    return num


# Listing the zones walks the zone files on disk; the list doesn't change while running.
known_zones = functools.cache(zoneinfo.available_timezones)


def j_timezone(value: Any, field: str) -> str:
    """`<country code>.<zone>`, e.g. `NL.Europe/Amsterdam` or `.UTC`."""
    text = params.j_str(value, field)
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
    parsed = params.j_time(value, field)
    return ZERO_TIME if parsed is None else time_text(parsed)


def j_widgets(value: Any, field: str) -> list[dict[str, Any]]:
    """Widgets are free-form `{"n": name, "s": {settings}}` objects upstream; the parts
    its own code relies on must have the right type (upstream fails with a 500)."""
    if not isinstance(value, list):
        raise params.json_error(field, value, "array")
    out = []
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        widget = dict(params.j_object(item, where))
        if widget.get("n") is not None:
            params.j_str(widget["n"], where + ".n")
        conf = widget.get("s")
        if conf is not None:
            conf = dict(params.j_object(conf, where + ".s"))
            for key in WIDGET_RANGES.get(widget.get("n") or "", {}):
                if conf.get(key) is not None:
                    conf[key] = params.j_int(conf[key], f"{where}.s.{key}")
            if conf.get("style") is not None:
                params.j_str(conf["style"], where + ".s.style")
            widget["s"] = conf
        out.append(widget)
    return out


VIEW_FIELDS: dict[str, params.Converter] = {
    "name": params.j_str, "filter": params.j_str, "group": j_uint8, "period": params.j_str}


def j_views(value: Any, field: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise params.json_error(field, value, "array")
    out = []
    for i, item in enumerate(value):
        view = {"name": "", "filter": "", "group": 0, "period": ""}
        view.update(decode_object(item, f"{field}[{i}]", VIEW_FIELDS))
        out.append(view)
    return out


USER_FIELDS: dict[str, params.Converter] = {
    "twenty_four_hours": params.j_bool,
    "sunday_starts_week": params.j_bool,
    "language": params.j_str,
    "date_format": params.j_str,
    "number_format": j_rune,
    "timezone": j_timezone,
    "widgets": j_widgets,
    "views": j_views,
    "email_reports": j_uint8,
    "fewer_numbers": params.j_bool,
    "fewer_numbers_lock_until": j_time_text,
    "theme": params.j_str,
    "datepicker": params.j_bool,
}


def decode_user_defaults(value: Any, field: str) -> dict[str, Any]:
    """The fields of a UserSettings object that were sent."""
    return decode_object(value, field, USER_FIELDS)


def build_user_defaults(given: dict[str, Any]) -> dict[str, Any]:
    """A complete UserSettings from the fields sent: upstream starts from empty values
    and fills in defaults for the empty ones that can't stay empty."""
    full = defaults.user_settings()
    out = {"twenty_four_hours": False, "sunday_starts_week": False, "language": "",
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


# The Sites API (spec 10.14) -----------------------------------------------------------

# Site fields a client can't set: dropped without an error, so that a Site object read
# from the API can be sent back as it is.
READ_ONLY = ("id", "parent", "cname_setup_at", "received_data", "state", "created_at",
             "updated_at", "first_hit_at")


def j_optional_str(value: Any, field: str) -> str | None:
    return None if value is None else params.j_str(value, field)


def _settings_key(got: dict[str, Any]) -> None:
    """Upstream's Site object spells it `setttings` (sic); `settings` is accepted too
    (DECISIONS: setttings). Both at once is ambiguous."""
    if "setttings" in got and "settings" in got:
        raise BadRequest('invalid JSON: send either "settings" or "setttings", not both')
    if "setttings" in got:
        got["settings"] = got.pop("setttings")


CREATE_FIELDS: dict[str, params.Converter] = {
    "cname": j_optional_str,
    # Ignored in self-hosted mode (replaced by serve-<random>), but it must be a string.
    "code": params.j_str,
    "link_domain": params.j_str,
    "setttings": decode_settings,
    "settings": decode_settings,
    "user_defaults": decode_user_defaults,
    **{name: params.j_any for name in READ_ONLY},
}

UPDATE_FIELDS: dict[str, params.Converter] = {
    "settings": decode_settings,
    "setttings": decode_settings,
    "cname": j_optional_str,
    "link_domain": nullable(params.j_str),
}


def decode_create(body: dict[str, Any]) -> dict[str, Any]:
    """The fields of a PUT /api/v0/sites body (a Site object) that can be set."""
    got = params.match_keys(clean_json(body), CREATE_FIELDS)
    _settings_key(got)
    return {k: v for k, v in got.items() if k not in READ_ONLY and k != "code"}


def decode_update(body: dict[str, Any]) -> dict[str, Any]:
    """The fields of a POST/PATCH /api/v0/sites/{id} body that were sent. A null cname
    is kept (it clears the cname); a null link_domain counts as not sent, as in Go."""
    got = params.match_keys(clean_json(body), UPDATE_FIELDS)
    _settings_key(got)
    if got.get("link_domain", "") is None:
        del got["link_domain"]
    return got


def parse_id(text: str) -> int:
    """A site id from the URL: a whole number that fits upstream's 32-bit ids."""
    stripped = text.strip()
    if not re.fullmatch(r"[+-]?[0-9]+", stripped) or not -2**31 <= int(stripped) < 2**31:
        raise ValidationError({"id": [MSG_WHOLE_NUMBER]})
    return int(stripped)


def visible(conn: sqlite3.Connection, current: dict[str, Any],
            site_id: int) -> dict[str, Any] | None:
    """The active site `site_id` if the current site may see it: itself or one of its
    direct children, as upstream (a child can't see its parent or siblings)."""
    row = conn.execute(
        f"SELECT {SITE_COLUMNS} FROM sites WHERE id = :id AND state = 'a'"
        " AND (id = :current OR parent = :current)",
        {"id": site_id, "current": current["id"]}).fetchone()
    return decode(row) if row else None


def list_visible(conn: sqlite3.Connection, current: dict[str, Any]) -> list[dict[str, Any]]:
    """The current site, then its active children ordered by code."""
    rows = conn.execute(
        f"SELECT {SITE_COLUMNS} FROM sites WHERE parent = :current AND state = 'a'"
        " ORDER BY code", {"current": current["id"]}).fetchall()
    return [current, *(decode(r) for r in rows)]


def _cname_taken(conn: sqlite3.Connection, cname: str, site_id: int | None) -> bool:
    # Same comparison as the unique index (ASCII case folded), over every state, since
    # the index covers deleted sites too.
    return conn.execute(
        "SELECT 1 FROM sites WHERE cname = :cname COLLATE NOCASE AND id IS NOT :id LIMIT 1",
        {"cname": cname, "id": site_id}).fetchone() is not None


def _unique(fn: Callable[[], Any]) -> Any:
    """Run a write; a uniqueness failure (a race the checks didn't see) is a 400 with
    upstream's message."""
    try:
        return fn()
    except sqlite3.IntegrityError as exc:
        if "UNIQUE" not in str(exc):
            raise
        raise BadRequest("this site already exists: code or domain must be unique") from exc


def create_child(conn: sqlite3.Connection, current: dict[str, Any],
                 fields: dict[str, Any]) -> dict[str, Any]:
    """Create a site under the current site's account (inside the caller's write
    transaction) with self-hosted rules: a random serve-<code>, a required cname, and
    cname_setup_at set to now."""
    cname = fields.get("cname")
    link_domain = fields.get("link_domain", "").rstrip("/")
    settings = merge_settings(defaults.site_settings(), fields.get("settings", {}))
    user_defaults = build_user_defaults(fields.get("user_defaults", {}))

    errors = FieldErrors()
    if not cname:
        errors.add("cname", MSG_REQUIRED)
    if link_domain and not valid_url(link_domain):
        errors.add("link_domain", MSG_URL)
    errors.sub("settings", settings_errors(settings))
    errors.sub("user_defaults", user_defaults_errors(user_defaults))
    if cname is not None:
        cname_errors(errors, cname)
    if not errors and _cname_taken(conn, str(cname), None):
        errors.add("cname", MSG_EXISTS)
    errors.check()
    return _unique(lambda: create(conn, cname=cname, parent=account_id(current),
                                  link_domain=link_domain, settings=settings,
                                  user_defaults=user_defaults))


def update(conn: sqlite3.Connection, current: dict[str, Any], site_id: int,
           changes: dict[str, Any], *, replace: bool) -> dict[str, Any]:
    """Update settings, cname and link_domain of a site the current site can see (inside
    the caller's write transaction) and return it.

    `replace` (POST) resets what was not sent: cname to null, link_domain to empty,
    settings to the defaults. Otherwise (PATCH) only what was sent changes, settings
    field by field. An empty cname is stored as null."""
    # Read again inside the write transaction, so that concurrent PATCHes don't undo
    # each other's fields.
    site = visible(conn, current, site_id)
    if site is None:
        raise NotFound()
    if replace:
        base, cname, link_domain = defaults.site_settings(), None, ""
    else:
        base, cname, link_domain = site["settings"], site["cname"], site["link_domain"]
    settings = merge_settings(base, changes.get("settings", {}), or_collect=not replace)
    cname = changes.get("cname", cname) or None
    link_domain = changes.get("link_domain", link_domain).rstrip("/")

    errors = FieldErrors()
    if link_domain and not valid_url(link_domain):
        errors.add("link_domain", MSG_URL)
    errors.sub("settings", settings_errors(settings))
    if cname is not None:
        cname_errors(errors, cname)
    if not errors and cname is not None and _cname_taken(conn, cname, site_id):
        errors.add("cname", MSG_EXISTS)
    errors.check()

    now = now_text()
    # Self-hosted upstream marks the cname as set up again on every save.
    _unique(lambda: conn.execute(
        "UPDATE sites SET settings = :settings, cname = :cname, cname_setup_at = :setup,"
        " link_domain = :link, updated_at = :now WHERE id = :id",
        {"settings": json.dumps(settings), "cname": cname,
         "setup": now if cname else None, "link": link_domain, "now": now, "id": site_id}))
    updated = get(conn, site_id)
    assert updated is not None
    return updated


@db.create_cli.command("site")
@click.option("--vhost", required=True, help="Domain the site is reached on (its cname).")
@click.option("--user-email", required=True, help="Email of the site's admin user.")
@click.option("--user-password", default=None, help="Password for the user (optional).")
@click.option("--parent", type=int, default=None, help="Make it a child of this site id.")
@with_appcontext
def create_site_command(vhost: str, user_email: str, user_password: str | None,
                        parent: int | None) -> None:
    """Create a site with an admin user."""
    from . import users

    vhost = vhost.strip().lower()
    if not vhost or " " in vhost or "/" in vhost:
        raise click.BadParameter(f"not a valid host name: {vhost!r}", param_hint="--vhost")
    if "@" not in user_email:
        raise click.BadParameter(f"not an email address: {user_email!r}",
                                 param_hint="--user-email")

    def run(conn: sqlite3.Connection) -> tuple[dict[str, Any], dict[str, Any]]:
        if conn.execute("SELECT 1 FROM sites WHERE cname = :c", {"c": vhost}).fetchone():
            raise click.ClickException(f"a site with vhost {vhost} already exists")
        if parent is not None and get(conn, parent) is None:
            raise click.ClickException(f"no site with id {parent}")
        site = create(conn, cname=vhost, parent=parent)
        user = users.create(conn, site_id=account_id(site), email=user_email,
                            password=user_password)
        return site, user

    site, user = db.write(run)
    click.echo(f"created site {site['id']} ({vhost}) with user {user['id']} ({user_email})")


@db.list_cli.command("sites")
@with_appcontext
def list_sites_command() -> None:
    """List all sites."""
    conn = db.get_db()
    for row in conn.execute("SELECT id, parent, code, cname, state FROM sites ORDER BY id"):
        click.echo(f"{row['id']}\t{row['cname'] or ''}\tcode={row['code']}"
                   f"\tparent={row['parent'] or ''}\tstate={row['state']}")
