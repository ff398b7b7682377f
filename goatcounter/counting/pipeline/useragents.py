"""Step: browser and system from the User-Agent, with ua-parser's matchers and a cache
(the same few hundred user agents make up almost all traffic).

The matchers run in ua-parser-rs, ua-parser's compiled backend, called directly: going
through `ua_parser.parser` builds result objects and fills a cache of its own (beside
ours) for every new string, which cost as much as the matching itself.
"""
from __future__ import annotations

import threading
from functools import lru_cache
from operator import attrgetter
from typing import Any

import ua_parser
import ua_parser_rs

# ua-parser's family names, shown the way GoatCounter shows them.
_BROWSER_NAMES = {
    "Mobile Safari": "Safari", "Mobile Safari UI/WKWebView": "Safari",
    "Chrome Mobile": "Chrome", "Chrome Mobile WebView": "Chrome", "Chrome Mobile iOS": "Chrome",
    "HeadlessChrome": "Chrome",
    "Firefox Mobile": "Firefox", "Firefox iOS": "Firefox",
    "Edge Mobile": "Edge", "Opera Mobile": "Opera",
    "Samsung Internet": "Samsung Internet",
}
_SYSTEM_NAMES = {"Mac OS X": "macOS", "Chrome OS": "ChromeOS"}


def _version(major: str | None, minor: str | None) -> str:
    """`131` or `18.1`: the major version, and the minor one when it isn't 0."""
    if not major:
        return ""
    return major + ("." + minor if minor and minor != "0" else "")


_FIELDS = attrgetter("regex", "family", "major", "minor", "patch", "patch_minor")
_built: tuple[Any, Any] | None = None
_building = threading.Lock()


def _extractors() -> tuple[Any, Any]:
    """ua-parser's browser and system matchers, built on first use. Only these two: the
    device is never shown, and its matchers are the largest set."""
    global _built
    if _built is None:
        with _building:
            if _built is None:
                browsers, systems, _ = ua_parser.load_lazy_builtins()
                _built = (ua_parser_rs.UserAgentExtractor(map(_FIELDS, browsers)),
                          ua_parser_rs.OSExtractor(map(_FIELDS, systems)))
    return _built


@lru_cache(maxsize=8192)
def parse(user_agent: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """((browser, version), (system, version)); both empty for an empty user agent."""
    if not user_agent:
        return ("", ""), ("", "")
    browsers, systems = _extractors()
    browser: tuple[str, str] = ("", "")
    ua = browsers.extract(user_agent)
    if ua is not None and ua.family != "Other":
        browser = (_BROWSER_NAMES.get(ua.family, ua.family), _version(ua.major, ua.minor))
    system: tuple[str, str] = ("", "")
    os_ = systems.extract(user_agent)
    if os_ is not None and os_.family != "Other":
        system = (_SYSTEM_NAMES.get(os_.family, os_.family), _version(os_.major, os_.minor))
    return browser, system


def warm_up() -> None:
    """Build the matchers now (they are built on the first parse otherwise)."""
    _extractors()
