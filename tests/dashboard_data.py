"""A small site with known visits for the dashboard's tests: visitors with known
browsers, systems, screens, countries, languages, referrers and campaigns, counted
through POST /api/v0/count as a client would send them."""
from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from flask import Flask

from goatcounter import clock
from tests.conftest import API, make_site

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/131.0.0.0 Safari/537.36")
SAFARI = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
          "like Gecko) Version/18.1 Mobile/15E148 Safari/604.1")
PAGES = [("/", "Home"), ("/blog/", "Blog"), ("/about", "About us"), ("/pricing", "Pricing"),
         ("/docs/start", "Getting started")]
# (user agent, size, location, language, referrer, campaign query)
KINDS = [
    (FIREFOX, "1920,1080,1", "NL", "nld", "https://www.google.com/search?q=x", ""),
    (CHROME, "1366,768,1", "US-TX", "eng", "https://news.example.org/item/1", ""),
    (SAFARI, "390,844,3", "DE", "deu", "", "utm_campaign=launch&utm_source=mail"),
    (CHROME, "2560,1440,1", "US-CA", "eng", "https://news.example.org/item/1", ""),
    (FIREFOX, "800,600,1", "GB", "eng", "", ""),
]


def hits(days: int = 14, per_day: int = 10) -> list[dict[str, Any]]:
    """The visits: `per_day` visitors a day over the `days` days before NOW, each seeing
    one to three pages."""
    out = []
    counter = itertools.count()
    for d in range(days):
        day = NOW - dt.timedelta(days=days - d)
        for v in range(per_day):
            n = next(counter)
            ua, size, loc, lang, ref, query = KINDS[n % len(KINDS)]
            at = day + dt.timedelta(hours=8 + v % 10, minutes=n % 50)
            for k in range(1 + n % 3):
                path, title = PAGES[(n + k) % len(PAGES)] if k else PAGES[n % len(PAGES)]
                hit = {"path": path, "title": title, "user_agent": ua, "size": size,
                       "location": loc, "language": lang, "session": f"visitor-{n}",
                       "created_at": (at + dt.timedelta(minutes=k)).strftime(
                           "%Y-%m-%dT%H:%M:%SZ")}
                if k == 0:
                    hit["ref"] = ref
                    if query:
                        hit["query"] = query
                out.append(hit)
                if n % 4 == 0 and k == 0:
                    # A reload: another pageview, not another visit.
                    out.append(dict(hit, created_at=(at + dt.timedelta(seconds=30)).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"), ref=""))
    return out


def setup(app: Flask, cname: str = "stats.example.com", **kw: Any) -> tuple[API, dict]:
    """A site with the visits counted and the clock stopped at NOW; returns the API
    client (as the site's admin) and the site."""
    site, token = make_site(app, cname=cname, **kw)
    clock.freeze(NOW)
    api = API(app.test_client(), token, cname)
    all_hits = hits()
    for i in range(0, len(all_hits), 100):
        resp = api.post("/api/v0/count", {"hits": all_hits[i:i + 100], "no_sessions": False})
        assert resp.status_code == 202, resp.get_data(as_text=True)
    return api, site
