"""Step: tell bots from people, by headers and User-Agent.

Codes as upstream: 3 a URL in the user agent, 4 a client library, 5 a known crawler,
6 bot-like, 7 too short or odd; 150-153 are sent by count.js for headless browsers.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

from crawlerdetect import CrawlerDetect

if TYPE_CHECKING:
    from werkzeug.datastructures import Headers

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
_detector = CrawlerDetect()


@lru_cache(maxsize=8192)
def from_user_agent(ua: str) -> int:
    """The bot code for a User-Agent (0 for a person). An empty one is left alone: API
    clients often send none."""
    ua = ua.strip()
    if not ua:
        return NONE
    if _LIBRARIES.match(ua):
        return CLIENT_LIBRARY
    if "http://" in ua or "https://" in ua or "www." in ua:
        return URL_IN_UA if not _detector.isCrawler(ua) else KNOWN_BOT
    if _detector.isCrawler(ua):
        return KNOWN_BOT
    if _BOT_WORDS.search(ua):
        return BOT_LIKE
    if len(ua) < 20 or "/" not in ua:
        return SHORT_OR_ODD
    return NONE


def is_prefetch(headers: Mapping[str, str] | Headers) -> bool:
    """Pages fetched ahead by the browser, which the visitor may never see."""
    purpose = (headers.get("Purpose") or headers.get("X-Purpose")
               or headers.get("Sec-Purpose") or "").lower()
    return (headers.get("X-Moz", "").lower() == "prefetch"
            or purpose.startswith(("prefetch", "preview")))


def from_request(ua: str) -> int:
    """The bot code for a browser request to /count; no User-Agent at all is a bot there."""
    return from_user_agent(ua) if ua.strip() else SHORT_OR_ODD
