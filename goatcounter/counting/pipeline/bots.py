"""Step: tell bots from people, by headers and User-Agent.

Codes as upstream: 3 a URL in the user agent, 4 a client library, 5 a known crawler,
6 bot-like, 7 too short or odd; 150-153 are sent by count.js for headless browsers.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Protocol, overload

from goatcounter.counting.pipeline import crawlers

NONE = 0
URL_IN_UA = 3
CLIENT_LIBRARY = 4
KNOWN_BOT = 5
BOT_LIKE = 6
SHORT_OR_ODD = 7

_LIBRARIES = re.compile(
    r"^(curl|wget|python-requests|python-urllib|python-httpx|aiohttp|go-http-client|"
    r"okhttp|axios|node-fetch|undici|got|libwww-perl|lwp|java|apache-httpclient|"
    r"guzzlehttp|ruby|faraday|httpie|php|dart|rest-client|postmanruntime|insomnia|"
    r"powershell|winhttp|reqwest|hackney|scrapy|http\.rb|restsharp)[/ ]", re.IGNORECASE)
_BOT_WORDS = re.compile(r"bot\b|crawl|spider|scrap|headless|phantomjs|slurp|monitor|"
                        r"preview|fetcher|checker|archiver", re.IGNORECASE)
# The same words for lower-case ASCII text: a case-blind search costs ten times more.
_BOT_WORDS_LOWER = re.compile(_BOT_WORDS.pattern)


def from_user_agent(ua: str) -> int:
    """The bot code for a User-Agent (0 for a person). An empty one is left alone: API
    clients often send none."""
    return _checked(ua)[0]


@lru_cache(maxsize=8192)
def _checked(ua: str) -> tuple[int, str]:
    # The rule is kept with the code: the live log asks for it right after the request
    # (explain), and running the detector again would cost as much as the first check.
    return _rule(ua)


def _rule(ua: str) -> tuple[int, str]:
    """The bot code for a User-Agent and the rule that gave it: the one definition that
    both the cached check and `explain` use."""
    ua = ua.strip()
    if not ua:
        return NONE, ""
    library = _LIBRARIES.match(ua)
    if library:
        return CLIENT_LIBRARY, f"a client library ({library[1]})"
    known = crawlers.match(ua)
    if "http://" in ua or "https://" in ua or "www." in ua:
        if known is not None:
            return KNOWN_BOT, f"a known crawler ({known})"
        return URL_IN_UA, "a URL in the user agent"
    if known is not None:
        return KNOWN_BOT, f"a known crawler ({known})"
    # ASCII keeps its length in lower case, so the match's place is the same in `ua`.
    word = _BOT_WORDS_LOWER.search(ua.lower()) if ua.isascii() else _BOT_WORDS.search(ua)
    if word:
        return BOT_LIKE, f"a bot word ({ua[word.start():word.end()]})"
    if len(ua) < 20:
        return SHORT_OR_ODD, "a user agent shorter than 20 characters"
    if "/" not in ua:
        return SHORT_OR_ODD, "a user agent without a /"
    return NONE, ""


# count.js's codes for the traces a headless browser leaves.
SCRIPT_CODES = {150: "PhantomJS", 151: "Nightmare", 152: "Selenium",
                153: "navigator.webdriver"}


def explain(code: int, ua: str, sent_by: str) -> str:
    """Why a hit is a bot, for the live log: the code and the rule that matched, or who
    said so (`sent_by` names the parameter the client sent it in)."""
    found, rule = _checked(ua)
    if found == code and rule:
        return f"bot {code}: {rule}"
    if not ua.strip() and code == SHORT_OR_ODD and sent_by == "b":
        return f"bot {code}: no User-Agent header"
    if code in SCRIPT_CODES and sent_by == "b":
        return f"bot {code}: count.js saw a headless browser ({SCRIPT_CODES[code]}, b={code})"
    return f"bot {code}: sent as {sent_by}={code}"


class HeaderLookup(Protocol):
    """Whatever gives a request header by name (werkzeug's headers, a dict, the pixel's
    own view of the environ)."""

    @overload
    def get(self, key: str, /) -> str | None: ...
    @overload
    def get(self, key: str, default: str, /) -> str: ...


def is_prefetch(headers: HeaderLookup) -> bool:
    """Pages fetched ahead by the browser, which the visitor may never see."""
    purpose = (headers.get("Purpose") or headers.get("X-Purpose")
               or headers.get("Sec-Purpose") or "").lower()
    return (headers.get("X-Moz", "").lower() == "prefetch"
            or purpose.startswith(("prefetch", "preview")))


def from_request(ua: str) -> int:
    """The bot code for a browser request to /count; no User-Agent at all is a bot there."""
    return from_user_agent(ua) if ua.strip() else SHORT_OR_ODD


def warm_up() -> None:
    """Compile crawlerdetect's patterns now (it does so on the first check)."""
    crawlers.warm_up()
