"""Step: browser and system from the User-Agent, with ua-parser and a cache (the same
few hundred user agents make up almost all traffic)."""
from __future__ import annotations

from functools import lru_cache

import ua_parser
from ua_parser import Domain

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


@lru_cache(maxsize=8192)
def parse(user_agent: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """((browser, version), (system, version)); both empty for an empty user agent."""
    if not user_agent:
        return ("", ""), ("", "")
    # Only these two: the device is never shown, and parsing it costs as much as both.
    result = ua_parser.parser(user_agent, Domain.USER_AGENT | Domain.OS)
    browser: tuple[str, str] = ("", "")
    if result.user_agent and result.user_agent.family != "Other":
        ua = result.user_agent
        browser = (_BROWSER_NAMES.get(ua.family, ua.family), _version(ua.major, ua.minor))
    system: tuple[str, str] = ("", "")
    if result.os and result.os.family != "Other":
        os_ = result.os
        system = (_SYSTEM_NAMES.get(os_.family, os_.family), _version(os_.major, os_.minor))
    return browser, system


def warm_up() -> None:
    """Have ua-parser build its matchers now (it does so on the first parse)."""
    ua_parser.parser("Mozilla/5.0", Domain.USER_AGENT | Domain.OS)
