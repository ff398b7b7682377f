"""The user's own settings (UserSettings, what /api/v0/me shows): GET /user (303),
GET|POST /user/pref (time zone, formats, theme) and GET|POST /user/dashboard (the
widgets), at upstream's paths.

Values go through the converters and checks of the Sites API's `user_defaults`
(accounts/settings_schema), so the page accepts what the API accepts. "Also for new
users and the public view" (access s) stores the same into the site's user_defaults.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from flask import Blueprint, redirect, request
from werkzeug.wrappers import Response

from goatcounter.accounts import settings_schema, sites, tokens, users
from goatcounter.accounts.settings_schema import USER_FIELDS, WIDGET_RANGES, WIDGET_STYLES
from goatcounter.dashboard import access
from goatcounter.dashboard.settings import forms
from goatcounter.errors import BadRequest, ValidationError
from goatcounter.storage import db

bp = Blueprint("user_prefs", __name__)

DATE_FORMATS = [("2006-01-02", "2026-11-30"), ("02-01-2006", "30-11-2026"),
                ("01/02/06", "11/30/26"), ("2 Jan ’06", "30 Nov ’26"),
                ("Mon Jan 2 2006", "Mon Nov 30 2026")]
NUMBER_FORMATS = [(8239, "Thin space: 42 123"), (160, "Space: 42 123"), (44, "Comma: 42,123"),
                  (46, "Dot: 42.123"), (39, "Apostrophe: 42'123"), (1, "None: 42123")]
THEMES = [("", "As the system is set"), ("light", "Light"), ("dark", "Dark")]
ZONE_TABLES = ("/usr/share/zoneinfo/zone.tab", "/usr/share/zoneinfo/zone1970.tab")

# Widgets: name → (label, what it shows).
WIDGETS = {
    "pages": ("Pages", "Paths with a chart each"),
    "totalpages": ("Totals", "The whole site's chart"),
    "toprefs": ("Top referrers", None),
    "campaigns": ("Campaigns", None),
    "browsers": ("Browsers", None),
    "systems": ("Systems", None),
    "locations": ("Locations", None),
    "languages": ("Languages", None),
    "sizes": ("Sizes", None),
}
SETTING_LABELS = {"limit_pages": "Rows", "limit_refs": "Referrers per path", "limit": "Rows",
                  "style": "Chart", "align": "Line up with the pages' charts",
                  "no-events": "Leave out events", "key": "Regions of"}
STYLE_LABELS = {"line": "Line chart", "bar": "Bar chart", "text": "Table, no chart"}
EMPTY_DASHBOARD = "add at least one widget: an empty dashboard shows nothing"


# Time zones ----------------------------------------------------------------------------

@functools.cache
def zones() -> list[tuple[str, str]]:
    """Every time zone as (value, label): `CC.Zone` as upstream stores them, with the
    country's name; `.UTC` first."""
    import pycountry

    known = settings_schema.known_zones()
    found: dict[str, str] = {}
    for table in ZONE_TABLES:
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            codes, _, zone = line.split("\t")[:3]
            for code in codes.split(","):
                country = pycountry.countries.get(alpha_2=code)
                name = getattr(country, "common_name", None) or getattr(country, "name", code)
                found.setdefault(f"{code}.{zone}", f"{name}: {zone.replace('_', ' ')}")
        break
    seen = {v.partition(".")[2] for v in found}
    for zone in sorted(known - seen):
        if "/" in zone and not zone.startswith(("Etc/", "SystemV/")):
            found[f".{zone}"] = zone.replace("_", " ")
    return [(".UTC", "UTC"), *sorted(found.items(), key=lambda kv: kv[1])]


def zone_label(value: str) -> str:
    """How a stored zone (`NL.Europe/Amsterdam`) is shown in the field."""
    return next((label for v, label in zones() if v == value), value)


def _zone_value(text: str) -> str:
    """What was typed in the time zone field as a stored value: a label or a bare zone
    name (`Europe/Amsterdam`) is taken as the zone it names."""
    text = text.strip()
    for value, label in zones():
        if text in (value, label) or text == value.partition(".")[2]:
            return value
    return text


# Reading the forms ---------------------------------------------------------------------

def _convert(changes: dict[str, Any], errors: forms.Errors) -> dict[str, Any]:
    """Run each field through the API's converter; a refusal is that field's error."""
    out = {}
    for key, value in changes.items():
        try:
            out[key] = USER_FIELDS[key](value, key)
        except BadRequest as exc:
            message = exc.message.removeprefix("invalid JSON: ").removeprefix(f"{key}: ")
            errors.add(key, message)
    return out


def _pref_changes(errors: forms.Errors) -> tuple[dict[str, Any], dict[str, Any]]:
    typed: dict[str, Any] = {
             "timezone": forms.text("timezone", 200), "date_format": forms.text("date_format"),
             "number_format": forms.text("number_format"), "theme": forms.text("theme"),
             "twenty_four_hours": forms.checked("twenty_four_hours"),
             "sunday_starts_week": forms.checked("sunday_starts_week")}
    raw = dict(typed, timezone=_zone_value(typed["timezone"]),
               number_format=forms.whole_number("number_format", errors, -1))
    if typed["date_format"] not in {v for v, _ in DATE_FORMATS}:
        errors.add("date_format", "must be one of the formats listed")
    if raw["number_format"] not in {v for v, _ in NUMBER_FORMATS}:
        errors.add("number_format", "must be one of the formats listed")
    return _convert(raw, errors), typed


def _save(changes: dict[str, Any], also_site: bool) -> None:
    """Store the changes in the user's settings, and in the site's user_defaults when
    asked, in one transaction."""
    user, site = access.current_user(), access.current_site()

    def run(conn: Any) -> None:
        users.update_settings(conn, user["id"], changes)
        if also_site:
            sites.set_user_defaults(conn, site, changes)

    db.write(run)
    if also_site:
        tokens.forget_sites()


# /user/pref ----------------------------------------------------------------------------

def _pref_form(values: dict[str, Any], errors: forms.Errors, status: int = 200) -> Response:
    user = access.current_user()
    return forms.page("settings/pref.html", "pref", status, values=values, errors=errors,
                      zones=zones(), date_formats=DATE_FORMATS, number_formats=NUMBER_FORMATS,
                      themes=THEMES, may_set_site=users.has_access(user, "s"))


@bp.route("/user", methods=["GET"])
@access.login_required
def index() -> Response:
    """GET /user: 303 to /user/pref, as upstream."""
    return redirect("/user/pref", 303)


@bp.route("/user/pref", methods=["GET"])
@access.login_required
def pref() -> Response:
    """GET /user/pref: time zone, date and number format, clock, week start, theme."""
    settings = access.current_user()["settings"]
    values = {k: settings.get(k) for k in ("timezone", "date_format", "number_format", "theme",
                                           "twenty_four_hours", "sunday_starts_week")}
    values["timezone"] = zone_label(str(values["timezone"]))
    return _pref_form(values, forms.Errors())


@bp.route("/user/pref", methods=["POST"])
@access.login_required
def save_pref() -> Response:
    """POST /user/pref: store them in the user's settings (and, with `set_site` and
    access s, the site's user_defaults). Invalid: the form again (400), nothing saved."""
    errors = forms.Errors()
    changes, typed = _pref_changes(errors)
    if errors:
        return _pref_form(typed, errors, 400)
    also_site = forms.checked("set_site") and users.has_access(access.current_user(), "s")
    try:
        _save(changes, also_site)
    except ValidationError as exc:
        return _pref_form(typed, forms.from_validation(exc), 400)
    return forms.done("Saved.", "user_prefs.pref")


# /user/dashboard -----------------------------------------------------------------------

def setting_fields(widget: dict[str, Any], index: int) -> list[dict[str, Any]]:
    """The settings a widget offers on the page, as fields to draw."""
    name = widget["n"]
    defaults = _defaults().get(name, {})
    conf = {**defaults, **(widget.get("s") or {})}
    fields = []
    for key, default in defaults.items():
        field: dict[str, Any] = {"key": key, "name": f"widgets[{index}].s.{key}",
                                 "label": SETTING_LABELS.get(key, key), "value": conf.get(key)}
        if key in WIDGET_RANGES.get(name, {}):
            low, high = WIDGET_RANGES[name][key]
            field.update(kind="number", low=low, high=high)
        elif key == "style" and name in WIDGET_STYLES:
            field.update(kind="select",
                         options=[(s, STYLE_LABELS[s]) for s in WIDGET_STYLES[name]])
        elif isinstance(default, bool):
            field.update(kind="checkbox")
        elif key == "key" and name == "locations":
            field.update(kind="select", options=[("", "No country: show countries"),
                                                 *_countries()])
        else:
            continue  # `key` of the others: what the dashboard opens, not set here
        fields.append(field)
    return fields


@functools.cache
def _countries() -> list[tuple[str, str]]:
    import pycountry
    return sorted(((c.alpha_2, getattr(c, "common_name", c.name)) for c in pycountry.countries),
                  key=lambda kv: kv[1])


@functools.cache
def _default_widgets() -> tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]:
    return tuple((w["n"], tuple(w["s"].items()))
                 for w in settings_schema.default_user_settings()["widgets"])


def _defaults() -> dict[str, dict[str, Any]]:
    return {name: dict(conf) for name, conf in _default_widgets()}


def _widgets_from_form(errors: forms.Errors) -> list[dict[str, Any]]:
    """The widgets as posted, in the order of their `index` fields."""
    found = []
    i = 0
    while f"widgets[{i}].n" in request.form and i < 100:
        name = request.form[f"widgets[{i}].n"]
        if name in WIDGETS:
            conf: dict[str, Any] = {}
            for key, default in _defaults()[name].items():
                field = f"widgets[{i}].s.{key}"
                if key in WIDGET_RANGES.get(name, {}):
                    conf[key] = forms.whole_number(field, errors, default)
                elif isinstance(default, bool):
                    conf[key] = forms.checked(field)
                elif field in request.form:
                    conf[key] = forms.text(field, 100)
                else:
                    conf[key] = default
            order = forms.whole_number(f"widgets[{i}].index", errors, i)
            found.append((order, i, {"n": name, "s": conf}))
        i += 1
    return [w for _, _, w in sorted(found, key=lambda t: (t[0], t[1]))]


def _apply_action(widgets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The buttons that change the list: add, remove, up and down (they work without
    the script, as a submit of the whole form)."""
    action = request.form.get("action", "")
    verb, _, arg = action.partition(":")
    try:
        i = int(arg)
    except ValueError:
        i = -1
    if verb == "add" and request.form.get("new") in WIDGETS:
        name = request.form["new"]
        widgets.append({"n": name, "s": dict(_defaults()[name])})
    elif verb == "remove" and 0 <= i < len(widgets):
        widgets.pop(i)
    elif verb == "up" and 0 < i < len(widgets):
        widgets[i - 1], widgets[i] = widgets[i], widgets[i - 1]
    elif verb == "down" and 0 <= i < len(widgets) - 1:
        widgets[i + 1], widgets[i] = widgets[i], widgets[i + 1]
    return widgets


def _error_names(widgets: list[dict[str, Any]]) -> dict[str, str]:
    """Validation keys (`widgets[0].limit`) as the form's fields (`widgets[0].s.limit`)."""
    out = {}
    for i, widget in enumerate(widgets):
        for key in (widget.get("s") or {}):
            out[f"widgets[{i}].{key}"] = f"widgets[{i}].s.{key}"
    return out


def _widgets_form(widgets: list[dict[str, Any]], errors: forms.Errors,
                  status: int = 200) -> Response:
    user = access.current_user()
    rows = [{"index": i, "name": w["n"], "label": WIDGETS.get(w["n"], (w["n"], None))[0],
             "hint": WIDGETS.get(w["n"], (None, None))[1], "fields": setting_fields(w, i)}
            for i, w in enumerate(widgets) if w.get("n") in WIDGETS]
    return forms.page("settings/widgets.html", "widgets", status, rows=rows, errors=errors,
                      choices=[(k, v[0]) for k, v in WIDGETS.items()],
                      may_set_site=users.has_access(user, "s"))


@bp.route("/user/dashboard", methods=["GET"])
@access.login_required
def widgets() -> Response:
    """GET /user/dashboard: the dashboard's widgets, in order, with their settings."""
    return _widgets_form(access.current_user()["settings"]["widgets"], forms.Errors())


@bp.route("/user/dashboard", methods=["POST"])
@access.login_required
def save_widgets() -> Response:
    """POST /user/dashboard: store the widgets (`widgets[i].n`, `widgets[i].index`,
    `widgets[i].s.<setting>`), after the `action` button's change (`add` with `new`,
    `remove:i`, `up:i`, `down:i`); `reset` restores the defaults."""
    errors = forms.Errors()
    if forms.checked("reset"):
        widgets = settings_schema.default_user_settings()["widgets"]
    else:
        widgets = _apply_action(_widgets_from_form(errors))
    if not widgets:
        errors.add("widgets", EMPTY_DASHBOARD)
    if errors:
        return _widgets_form(widgets, errors, 400)
    converted = _convert({"widgets": widgets}, errors)
    if errors:
        return _widgets_form(widgets, errors, 400)
    also_site = forms.checked("set_site") and users.has_access(access.current_user(), "s")
    try:
        _save(converted, also_site)
    except ValidationError as exc:
        return _widgets_form(widgets, forms.from_validation(exc, _error_names(widgets)), 400)
    verb = request.form.get("action", "").partition(":")[0]
    message = {"add": "Widget added.", "remove": "Widget removed.", "up": "Moved up.",
               "down": "Moved down."}.get(verb, "Saved.")
    if forms.checked("reset"):
        message = "The default widgets are back."
    return forms.done(message, "user_prefs.widgets")
