"""The pipeline in order: what a client sent in, a hit ready to store (or the reason it
was refused) out. Every step is a function of its own module; this one only calls them."""
from __future__ import annotations

import dataclasses
import math
from typing import Any

from goatcounter.collect import (
    COLLECT_LANGUAGE,
    COLLECT_LOCATION,
    COLLECT_LOCATION_REGION,
    COLLECT_REFERRER,
    COLLECT_SCREEN_SIZE,
    COLLECT_SESSION,
    COLLECT_USER_AGENT,
)
from goatcounter.counting.pipeline import bots, languages, locations, paths, referrers, useragents

MAX_PATH = 2048
MAX_TITLE = 1024
MAX_REF = 2048
MAX_USER_AGENT = 512
# Upstream has no limits for these two; they are stored with every hit (and in the
# aggregates), so a client must not be able to store megabytes in them. An ISO 3166-2
# code has at most 6 characters, a campaign name is a short label.
MAX_LOCATION = 64
MAX_CAMPAIGN = 255
# Cleaning shortens a path or referrer only a little (tracking parameters, an archive
# prefix), and the cleaning steps are cached: a value longer than this is refused before
# them, so that no client can fill the caches with megabytes. (The pixel's request line
# can't be longer either.)
MAX_RAW = 8192
# Longer texts can't be an address or a language tag; they are left out before the
# cached look-ups, as unknown ones are.
MAX_IP = 64
MAX_LANGUAGE_TAG = 64
# Clients' clocks are not exact: this much in the future is still fine.
FUTURE_MARGIN = 5.0
# Nothing was counted before 1990; older times are mistakes (year 1, say), and times
# near year 0 can't even be written as dates.
EARLIEST = 631152000  # 1990-01-01T00:00:00Z


@dataclasses.dataclass(slots=True)
class Incoming:
    """One pageview as a client sent it (API hit object or /count parameters)."""

    path: str = ""
    title: str = ""
    event: bool = False
    ref: str = ""
    query: str = ""
    width: int = 0
    bot: int = 0
    user_agent: str = ""
    location: str = ""
    language: str = ""
    ip: str = ""
    session: str = ""
    created_at: float | None = None


@dataclasses.dataclass(slots=True)
class Hit:
    """A pageview ready to store."""

    path: str
    title: str
    event: bool
    ref: str
    ref_scheme: str
    campaign: str
    width: int
    bot: int
    browser: tuple[str, str] | None
    system: tuple[str, str] | None
    location: str
    language: str
    user_agent: str
    # What groups hits into a visit; None: no session, every hit is a first visit.
    session_key: str | None
    created_at: int
    # Accepted, and its path is recorded, but it is not counted (e.g. /favicon.ico).
    ignored: bool = False
    # Accepted but dropped entirely (referrer spam).
    dropped: bool = False
    # When the request arrived (with microseconds): the live log's order.
    received: float = 0.0
    # Bot, browser and system are still to be found from the User-Agent (`classify`):
    # a pixel's pageview is answered before those steps, which only need the user agent.
    unclassified: bool = False
    # Filled in by storage.
    path_id: int = 0
    ref_id: int = 1
    browser_id: int | None = None
    system_id: int | None = None
    campaign_id: int | None = None
    session: bytes | None = None
    first_visit: bool = True


def sane_text(text: str) -> str:
    """Text that can be stored: invalid UTF-8 (lone surrogates) replaced."""
    return text.encode("utf-8", "replace").decode("utf-8") if not valid_utf8(text) else text


def valid_utf8(text: str) -> bool:
    """Whether text can be written as UTF-8 (no lone surrogates from bad input)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate(path: str, title: str, ref: str, user_agent: str, created_at: float,
             now: float, *, location: str = "", campaign: str = "") -> str | None:
    """Upstream's validation message for a hit (`path: must be set, ...`), or None.
    Besides upstream's checks: no time before 1990, and limits on location and
    campaign."""
    errs: dict[str, list[str]] = {}

    def add(field: str, msg: str) -> None:
        errs.setdefault(field, []).append(msg)

    if created_at > now + FUTURE_MARGIN:
        add("created_at", "in the future")
    if created_at < EARLIEST:
        add("created_at", "before 1990-01-01")
    for field, value, low, high in (("path", path, 1, MAX_PATH), ("title", title, 0, MAX_TITLE),
                                    ("ref", ref, 0, MAX_REF),
                                    ("user_agent_header", user_agent, 0, MAX_USER_AGENT),
                                    ("location", location, 0, MAX_LOCATION),
                                    ("campaign", campaign, 0, MAX_CAMPAIGN)):
        if field == "path" and not value:
            add(field, "must be set")
        if not valid_utf8(value):
            add(field, "must be UTF-8")
        if low and len(value) < low:
            add(field, f"must be longer than {low} characters")
        if len(value) > high:
            add(field, f"must be shorter than {high} characters")
    if not errs:
        return None
    parts = [f"{field}: {', '.join(msgs)}." for field, msgs in sorted(errs.items())]
    return parts[0] if len(parts) == 1 else "".join(p + "\n" for p in parts)


def _too_long(raw: Incoming) -> str | None:
    """The message for a path, referrer or query too long to be cleaned, in upstream's
    words for the first two."""
    for field, value, limit in (("path", raw.path, MAX_PATH), ("query", raw.query, MAX_RAW),
                                ("ref", raw.ref, MAX_REF)):
        if len(value) > MAX_RAW:
            return f"{field}: must be shorter than {limit} characters."
    return None


def process(raw: Incoming, settings: dict[str, Any], now: float,
            session_key: str | None, *, classify_later: bool = False) -> Hit | str:
    """Run every step for one hit under a site's settings. Returns the hit, or the
    validation message when it can't be stored. With `classify_later` the steps that
    only read the User-Agent are left to `classify` (the reply doesn't depend on them)."""
    too_long = _too_long(raw)
    if too_long:
        return too_long
    collect = settings["collect"]
    created = raw.created_at if raw.created_at is not None else now
    event = raw.event
    path = paths.clean_path(raw.path, event)

    ref, query = raw.ref, sane_text(raw.query)
    if not collect & COLLECT_REFERRER:
        ref = query = ""
    source, campaign = ("", "") if event else referrers.campaign(query)
    if source or campaign:
        ref_scheme = referrers.SCHEME_CAMPAIGN
        ref = (source or ref).rstrip("/").strip()
        if not ref:
            ref_scheme = referrers.SCHEME_OTHER
    else:
        ref, ref_scheme = referrers.clean_referrer(ref)

    location = sane_text(raw.location.strip()) if raw.location else ""
    error = validate(path, raw.title, ref, raw.user_agent, created, now, location=location,
                     campaign=campaign)
    if error:
        return error

    bot = raw.bot
    found = bots.from_user_agent(raw.user_agent) if not classify_later else bots.NONE
    if found:
        bot = found

    if not location and raw.ip and len(raw.ip) <= MAX_IP:
        location = locations.lookup_ip(raw.ip)
    if not collect & COLLECT_LOCATION:
        location = ""
    location = locations.keep_region(
        location, bool(collect & COLLECT_LOCATION_REGION),
        [r.strip() for r in str(settings.get("collect_regions", "")).split(",") if r.strip()])

    browser = system = None
    if collect & COLLECT_USER_AGENT and not classify_later:
        browser, system = useragents.parse(raw.user_agent)

    if not collect & COLLECT_SESSION:
        session_key = None

    return Hit(
        path=path, title=raw.title, event=event, ref=ref, ref_scheme=ref_scheme,
        campaign=campaign, width=raw.width if collect & COLLECT_SCREEN_SIZE else 0,
        bot=bot if bot > 0 else 0, browser=browser, system=system, location=location,
        language=languages.iso3(raw.language) if collect & COLLECT_LANGUAGE
        and raw.language and len(raw.language) <= MAX_LANGUAGE_TAG else "",
        user_agent=raw.user_agent, session_key=session_key,
        # Half a second rounds up, as Go's Round does.
        created_at=math.floor(created + 0.5), ignored=paths.ignored(path),
        # Spam is judged on what was sent, even when referrers aren't collected.
        dropped=referrers.is_spam(source or raw.ref), received=now,
        unclassified=classify_later)


def classify(hit: Hit, settings: dict[str, Any]) -> None:
    """The steps `process` left for later on a pixel's pageview: bot or person (no
    User-Agent at all is a bot there), browser and system."""
    if not hit.unclassified:
        return
    found = bots.from_request(hit.user_agent)
    if found:
        hit.bot = found
    if settings["collect"] & COLLECT_USER_AGENT:
        hit.browser, hit.system = useragents.parse(hit.user_agent)
    hit.unclassified = False


def warm_up() -> None:
    """Build what the steps build on first use (ua-parser's matchers, crawlerdetect's
    patterns: about 0.7 s), once per process, so that no pageview waits for it."""
    useragents.warm_up()
    bots.warm_up()
