"""Step: clean a referrer, name well-known sources, and find campaigns in the query."""
from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from urllib.parse import quote_plus, urlsplit

from goatcounter.counting.pipeline import urls

SCHEME_HTTP = "h"
SCHEME_OTHER = "o"
SCHEME_GENERATED = "g"
SCHEME_CAMPAIGN = "c"

# Hosts (or app ids sent as hosts) that are better shown under one name.
_GROUPS = {
    "news.ycombinator.com": "Hacker News", "hn.algolia.com": "Hacker News",
    "hckrnews.com": "Hacker News", "hn.premii.com": "Hacker News",
    "com.stefandekanski.hackernews.free": "Hacker News",
    "io.github.hidroh.materialistic": "Hacker News", "hackerweb.app": "Hacker News",
    "www.daemonology.net/hn-daily": "Hacker News", "quiethn.com": "Hacker News",
    "hnews.xyz": "Hacker News", "hackernewsmobile.com": "Hacker News",
    "mail.google.com": "Email", "com.google.android.gm": "Email",
    "mail.yahoo.com": "Email",
    "org.fox.ttrss": "RSS", "www.inoreader.com": "RSS", "com.innologica.inoreader": "RSS",
    "usepanda.com": "RSS", "feedly.com": "RSS",
    "com.google.android.googlequicksearchbox": "Google",
    "com.andrewshu.android.reddit": "www.reddit.com",
    "com.laurencedawson.reddit_sync": "www.reddit.com",
    "com.laurencedawson.reddit_sync.dev": "www.reddit.com",
    "com.laurencedawson.reddit_sync.pro": "www.reddit.com",
    "m.facebook.com": "www.facebook.com", "l.facebook.com": "www.facebook.com",
    "lm.facebook.com": "www.facebook.com",
    "org.telegram.messenger": "Telegram Messenger",
    "com.slack": "Slack Chat",
    "baidu.com": "Baidu", "c.tieba.baidu.com": "Baidu", "m.baidu.com": "Baidu",
    "tieba.baidu.com": "Baidu", "www.baidu.com": "Baidu",
}
# Mobile and old front-ends shown as their main host.
_ALIASES = {
    "en.m.wikipedia.org": "en.wikipedia.org", "m.facebook.com": "www.facebook.com",
    "m.habr.com": "habr.com", "old.reddit.com": "www.reddit.com",
    "i.reddit.com": "www.reddit.com", "np.reddit.com": "www.reddit.com",
    "fr.reddit.com": "www.reddit.com",
}
_CAMPAIGN_SOURCES = ("utm_source", "ref", "src", "source")
_CAMPAIGN_NAMES = ("utm_campaign", "campaign")


@lru_cache(maxsize=1)
def spam_hosts() -> frozenset[str]:
    """Referrer-spam hosts: the list shipped in the package, plus the lines of the file
    named by GOATCOUNTER_REFSPAM_FILE (e.g. Matomo's spammers.txt) when set."""
    shipped = resources.files("goatcounter.counting.pipeline").joinpath("data/refspam.txt")
    text = shipped.read_text("utf-8")
    extra = os.environ.get("GOATCOUNTER_REFSPAM_FILE")
    if extra:
        with open(extra, encoding="utf-8") as fh:
            text += "\n" + fh.read()
    return frozenset(line.strip().lower() for line in text.splitlines()
                     if line.strip() and not line.lstrip().startswith("#"))


@lru_cache(maxsize=16384)
def is_spam(ref: str) -> bool:
    """Whether the referrer's host (or a parent domain of it) is a known spammer."""
    if "//" not in ref:
        return False
    host = urlsplit(ref).netloc.rpartition("@")[2].lower()
    if not host:
        return False
    spam = spam_hosts()
    if host in spam:
        return True
    parts = host.split(".")
    return any(".".join(parts[i:]) in spam for i in range(1, len(parts) - 1))


def _trim_reddit(path: str) -> str:
    for suffix in ("/top", "/new", "/search", ".compact"):
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path


def _clean_url(ref: str) -> tuple[str, bool]:
    """The shown form of a referrer URL and whether it is a generated group name."""
    try:
        parts = urlsplit(ref)
    except ValueError:
        return ref, False
    host = parts.netloc.rpartition("@")[2]
    if host == "link.oreilly.com":
        return host, False
    host = _ALIASES.get(host, host)
    lower = host.lower()
    if lower.startswith(("www.google.", "google.")):
        return "Google", True
    if "yandex." in lower:
        return "Yandex", True
    if "search.yahoo.com" in lower:
        return "Yahoo", True
    if lower in _GROUPS:
        return _GROUPS[lower], True
    path = parts.path
    key = lower + path.rstrip("/").lower()
    if key in _GROUPS:
        return _GROUPS[key], True
    if host in ("lobste.rs", "gambe.ro") and not path.startswith("/s/"):
        return "lobste.rs", False
    if host in ("getpocket.com", "app.getpocket.com"):
        return "getpocket.com", False
    if host == "www.reddit.com":
        path = _trim_reddit(path)
    if host == "t.co" and len(path) > 1:
        # A t.co link leads back to the page itself; the tweets that used it are more useful.
        return "twitter.com/search?q=https%3A%2F%2Ft.co" + quote_plus(path, safe=""), False
    fragment = "#" + parts.fragment if parts.fragment else ""
    return (host + path + fragment).lstrip("/"), False


@lru_cache(maxsize=16384)
def clean_referrer(ref: str) -> tuple[str, str]:
    """A referrer as shown in the stats, and its scheme: `h` for a web URL (scheme and
    query removed), `g` for a named group ("Google", "Email"), `o` for anything else."""
    ref = ref.strip()
    if not ref:
        return "", SCHEME_OTHER
    scheme = SCHEME_OTHER
    try:
        url_scheme = urlsplit(ref).scheme.lower()
    except ValueError:
        url_scheme = ""
    if url_scheme in ("http", "https"):
        scheme = SCHEME_HTTP
    if "://" in ref or url_scheme in ("http", "https"):
        ref, generated = _clean_url(ref)
        if generated:
            scheme = SCHEME_GENERATED
    ref = ref.rstrip("/").strip()
    return ref, scheme if ref else SCHEME_OTHER


@lru_cache(maxsize=4096)
def campaign(query: str) -> tuple[str, str]:
    """The campaign source (utm_source, ref, src, source) and campaign name (utm_campaign,
    campaign) in a page's query string; "" where absent."""
    pairs = urls.parse_query(query.removeprefix("?"))
    source = ""
    for key in _CAMPAIGN_SOURCES:
        source = urls.first(pairs, key).strip()
        if source:
            break
    name = ""
    for key in _CAMPAIGN_NAMES:
        # Upstream keeps looking after a match, so `campaign` wins over `utm_campaign`.
        name = urls.first(pairs, key).strip() or name
    return source, name
