"""Default settings objects for sites and users, as upstream fills them in."""
from __future__ import annotations

import copy
from typing import Any

# Collect flags (SiteSettings.collect).
COLLECT_NOTHING = 1
COLLECT_REFERRER = 2
COLLECT_USER_AGENT = 4
COLLECT_SCREEN_SIZE = 8
COLLECT_LOCATION = 16
COLLECT_LOCATION_REGION = 32
COLLECT_LANGUAGE = 64
COLLECT_SESSION = 128
COLLECT_HITS = 256

# Upstream turns collect 0 into this.
UPSTREAM_DEFAULT_COLLECT = 190
# New sites here also keep individual hits (256): exports and `goatcounter import`
# read them. Turn the bit off in the site settings to keep only the aggregates.
DEFAULT_COLLECT = UPSTREAM_DEFAULT_COLLECT | COLLECT_HITS

_SITE_SETTINGS: dict[str, Any] = {
    "public": "private",
    "secret": "",
    "allow_counter": False,
    "allow_bosmang": False,
    "data_retention": 0,
    "ignore_ips": "",
    "collect": DEFAULT_COLLECT,
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


def site_settings() -> dict[str, Any]:
    """A fresh copy of the default SiteSettings."""
    return copy.deepcopy(_SITE_SETTINGS)


def user_settings() -> dict[str, Any]:
    """A fresh copy of the default UserSettings (also a site's `user_defaults`)."""
    return copy.deepcopy(_USER_SETTINGS)
