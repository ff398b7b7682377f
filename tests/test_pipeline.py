"""Each step of the hit pipeline on its own (spec section 12)."""
from __future__ import annotations

import ipaddress
import random

import iptocc
import pytest
import ua_parser

from bench.useragents import Mix
from goatcounter.counting.pipeline import (
    bots,
    languages,
    locations,
    paths,
    referrers,
    sizes,
    useragents,
)
from goatcounter.counting.pipeline.process import validate


@pytest.mark.parametrize(("raw", "event", "want"), [
    ("/", False, "/"),
    ("", False, ""),
    ("   ", False, ""),
    ("foo.html", False, "/foo.html"),
    ("//page/", False, "/page"),
    ("//", False, "/"),
    ("/blog/", False, "/blog"),
    ("//docs//api//", False, "/docs//api"),
    ("  /trimmed  ", False, "/trimmed"),
    ("/contact?", False, "/contact"),
    ("/contact?&", False, "/contact"),
    ("/page?fbclid=x&a=b", False, "/page?a=b"),
    ("/page?fbclid=x", False, "/page"),
    ("/page?utm_source=x&utm_medium=y", False, "/page"),
    ("/search?q=hello%20world&a=1&utm_campaign=x", False, "/search?a=1&q=hello+world"),
    ("/pricing?plan=pro&fbclid=IwAR0abc", False, "/pricing?plan=pro"),
    ("/p?from=singlemessage&x=1", False, "/p?x=1"),
    ("/p?from=elsewhere", False, "/p?from=elsewhere"),
    ("/p?ref=ph&gclid=1&mc_cid=2&_x_tr_sl=de", False, "/p"),
    ("/web/20200104233523/https://www.arp242.net/tmux.html", False, "/tmux.html"),
    ("/web/20200104233523/https://www.arp242.net/", False, "/"),
    ("/café", False, "/café"),
    ("/caf%C3%A9", False, "/caf%C3%A9"),
    ("/download/report.pdf", True, "download/report.pdf"),
    ("/", True, "(no event name)"),
    ("", True, "(no event name)"),
    ("signup-click", True, "signup-click"),
])
def test_clean_path(raw, event, want):
    assert paths.clean_path(raw, event) == want


@pytest.mark.parametrize(("path", "want"), [
    ("/favicon.ico", True), ("/servlet/redirect.srv/x", True), ("/a<html>b", True),
    ("/favicon.ico2", False), ("/", False),
])
def test_ignored_paths(path, want):
    assert paths.ignored(path) is want


@pytest.mark.parametrize(("raw", "want"), [
    ("", ("", "o")),
    ("https://example.com?p=x", ("example.com", "h")),
    ("https://example.com/", ("example.com", "h")),
    ("https://duckduckgo.com/", ("duckduckgo.com", "h")),
    ("https://www.google.com/search?q=goatcounter", ("Google", "g")),
    ("https://google.co.nz/", ("Google", "g")),
    ("https://yandex.ru/search", ("Yandex", "g")),
    ("https://news.ycombinator.com/item?id=42", ("Hacker News", "g")),
    ("android-app://com.google.android.gm/", ("Email", "g")),
    ("android-app://org.telegram.messenger", ("Telegram Messenger", "g")),
    ("https://www.bing.com/search?q=web+analytics&form=QBLH", ("www.bing.com/search", "h")),
    ("https://t.co/abc123", ("twitter.com/search?q=https%3A%2F%2Ft.co%2Fabc123", "h")),
    ("https://old.reddit.com/r/programming/top", ("www.reddit.com/r/programming", "h")),
    ("https://m.facebook.com/", ("www.facebook.com", "h")),
    ("https://l.facebook.com/x", ("www.facebook.com", "g")),
    ("https://lobste.rs/newest", ("lobste.rs", "h")),
    ("https://lobste.rs/s/abc", ("lobste.rs/s/abc", "h")),
    ("http://localhost:8080/dev", ("localhost:8080/dev", "h")),
    ("newsletter", ("newsletter", "o")),
    ("  spaced  ", ("spaced", "o")),
    # Search engines by any host of theirs, in any case.
    ("https://www.yandex.com/search/?text=x", ("Yandex", "g")),
    ("https://YANDEX.RU/", ("Yandex", "g")),
    ("https://yandexfan.org/", ("yandexfan.org", "h")),
    ("https://search.yahoo.com/search?p=x", ("Yahoo", "g")),
    ("https://uk.search.yahoo.com/search?p=x", ("Yahoo", "g")),
    # Groups by host and path: trailing slash and case don't matter.
    ("https://www.daemonology.net/hn-daily/", ("Hacker News", "g")),
    ("https://www.daemonology.net/HN-Daily", ("Hacker News", "g")),
    ("https://www.daemonology.net/hn-daily/2024-01-01.html",
     ("www.daemonology.net/hn-daily/2024-01-01.html", "h")),
    ("https://link.oreilly.com/some/long/path?x=1", ("link.oreilly.com", "h")),
    ("https://www.reddit.com/r/python/new", ("www.reddit.com/r/python", "h")),
    # Only a suffix at the very end, as upstream.
    ("https://www.reddit.com/r/python/new/", ("www.reddit.com/r/python/new", "h")),
    ("https://www.reddit.com/r/python/search", ("www.reddit.com/r/python", "h")),
    ("https://www.reddit.com/r/python.compact", ("www.reddit.com/r/python", "h")),
    ("https://www.reddit.com/r/python/top", ("www.reddit.com/r/python", "h")),
    ("https://example.com/r/python/top", ("example.com/r/python/top", "h")),
    ("https://t.co/a", ("twitter.com/search?q=https%3A%2F%2Ft.co%2Fa", "h")),
    ("https://t.co/", ("t.co", "h")),
    ("https://t.co", ("t.co", "h")),
    ("https://example.com/page#part", ("example.com/page#part", "h")),
    ("https://example.com/page#", ("example.com/page", "h")),
    ("file:///home/me/page.html", ("home/me/page.html", "o")),
    ("https://", ("", "o")),
    ("https:///", ("", "o")),
])
def test_clean_referrer(raw, want):
    assert referrers.clean_referrer(raw) == want


@pytest.mark.parametrize(("ref", "spam"), [
    ("https://0n-line.tv/promo", True),
    ("https://sub.0n-line.tv/", True),
    ("http://localhost/dev", True),
    ("http://localhost:8080/dev", False),
    ("https://example.com/", False),
    ("newsletter", False),
    ("https://0N-Line.TV/promo", True),
    ("https://user@0n-line.tv/", True),
    ("https://tv/", False),
])
def test_referrer_spam(ref, spam):
    assert referrers.is_spam(ref) is spam


def test_refspam_file_adds_hosts(refspam_file):
    assert referrers.is_spam("https://spam-host.example/x")
    assert referrers.is_spam("https://www.other.example/")
    assert not referrers.is_spam("https://example/")
    assert not referrers.is_spam("https://a comment/")
    # A name of one label is that host only, never every domain under a top-level one.
    assert referrers.is_spam("http://test/")
    assert not referrers.is_spam("https://shop.test/")
    # The shipped list still counts.
    assert referrers.is_spam("https://0n-line.tv/")


@pytest.mark.parametrize(("query", "want"), [
    ("utm_source=twitter&utm_medium=social&utm_campaign=launch", ("twitter", "launch")),
    ("?utm_campaign=Winter-Sale&utm_source=newsletter", ("newsletter", "Winter-Sale")),
    ("ref=producthunt", ("producthunt", "")),
    ("ref=hn", ("hn", "")),
    ("src=a&source=b", ("a", "")),
    # Sources in their order of precedence, wherever they stand in the query.
    ("source=d&src=c&ref=b&utm_source=a", ("a", "")),
    ("source=d&src=c&ref=b", ("b", "")),
    ("source=d&src=c", ("c", "")),
    ("source=d", ("d", "")),
    ("utm_source=&ref=b", ("b", "")),
    ("utm_source=%20&src=c", ("c", "")),
    ("utm_campaign=a&campaign=b", ("", "b")),
    ("x=1", ("", "")),
    ("", ("", "")),
])
def test_campaign(query, want):
    assert referrers.campaign(query) == want


FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"


@pytest.mark.parametrize(("ua", "browser", "system"), [
    (FIREFOX_LINUX, ("Firefox", "131"), ("Linux", "")),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36", ("Chrome", "131"), ("Windows", "10")),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
     "like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", ("Safari", "18.1"), ("iOS", "18.1")),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/18.1 Safari/605.1.15", ("Safari", "18.1"), ("macOS", "10.15")),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.6778.81 Mobile Safari/537.36", ("Chrome", "131"), ("Android", "14")),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.51", ("Edge", "131"), ("Windows", "10")),
    ("", ("", ""), ("", "")),
])
def test_user_agent(ua, browser, system):
    assert useragents.parse(ua) == (browser, system)


def _through_ua_parser(ua: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """What ua-parser's own entry point makes of a string, named as parse names it."""
    if not ua:
        return ("", ""), ("", "")
    found = ua_parser.parser(ua, ua_parser.Domain.USER_AGENT | ua_parser.Domain.OS)
    browser = system = ("", "")
    if found.user_agent and found.user_agent.family != "Other":
        b = found.user_agent
        browser = (useragents._BROWSER_NAMES.get(b.family, b.family),
                   useragents._version(b.major, b.minor))
    if found.os and found.os.family != "Other":
        o = found.os
        system = (useragents._SYSTEM_NAMES.get(o.family, o.family),
                  useragents._version(o.major, o.minor))
    return browser, system


def test_user_agents_read_as_ua_parser_reads_them():
    """The matchers are called directly, past ua-parser's entry point: the answers are
    its own, for the benchmarks' 21,000 strings, strings nobody sent before, and odd
    ones."""
    mix = Mix(random.Random(3))
    strings = [*mix.browsers, *mix.bots, *(mix.fresh() for _ in range(3000)), "", "x",
               "Mozilla/5.0", "curl/8.5.0", "Googlebot/2.1 (+http://www.google.com/bot.html)",
               "é" * 40,
               "Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.1; Trident/6.0)"]
    differ = [ua for ua in strings if useragents.parse.__wrapped__(ua) != _through_ua_parser(ua)]
    assert differ == []


@pytest.mark.parametrize(("ua", "code"), [
    ("curl/8.5.0", bots.CLIENT_LIBRARY),
    ("curl/7.8", bots.CLIENT_LIBRARY),
    ("python-requests/2.31.0", bots.CLIENT_LIBRARY),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", bots.KNOWN_BOT),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", bots.KNOWN_BOT),
    ("x", bots.SHORT_OR_ODD),
    ("", bots.NONE),
    (FIREFOX_LINUX, bots.NONE),
])
def test_bot_from_user_agent(ua, code):
    assert bots.from_user_agent(ua) == code


def test_no_user_agent_is_a_bot_on_count_only():
    assert bots.from_request("") == bots.SHORT_OR_ODD
    assert bots.from_user_agent("") == bots.NONE


@pytest.mark.parametrize(("headers", "want"), [
    ({"X-Moz": "prefetch"}, True), ({"Purpose": "prefetch"}, True),
    ({"X-Purpose": "preview"}, True), ({"Sec-Purpose": "prefetch;prerender"}, True),
    ({}, False), ({"Purpose": "other"}, False),
])
def test_prefetch(headers, want):
    assert bots.is_prefetch(headers) is want


@pytest.mark.parametrize(("ip", "want"), [
    ("81.2.69.160", "GB"), ("8.8.8.8", "US"), ("2001:4860:4860::8888", "US"),
    ("10.0.0.5", ""), ("192.168.1.10", ""), ("127.0.0.1", ""), ("not an ip", ""), ("", ""),
])
def test_lookup_ip(ip, want):
    assert locations.lookup_ip(ip) == want


def _ipaddress_says(ip: str) -> bool | None:
    try:
        return ipaddress.ip_address(ip).is_global
    except ValueError:
        return None


def _random_v6(rnd: random.Random) -> str:
    """IPv6 text as clients and proxies write it: groups with and without leading
    zeros, upper or lower case, a run of zero groups compressed or not."""
    groups = [f"{rnd.choice([0, 0, rnd.randrange(16), rnd.randrange(65536)]):x}"
              for _ in range(8)]
    if rnd.random() < 0.3:
        groups[0] = rnd.choice(["2001", "2002", "fe80", "fc00", "fd12", "100", "2001:db8"
                                [:4], "64"])
    text = ":".join(g.zfill(4) if rnd.random() < 0.2 else g for g in groups)
    if rnd.random() < 0.6:
        text = str(ipaddress.IPv6Address(text))
    return text.upper() if rnd.random() < 0.2 else text


def test_is_global_agrees_with_ipaddress():
    """The quick checks give ipaddress's answers: at every edge of its special blocks,
    for random addresses, and for text that is no address."""
    assert locations._SPECIAL_V4 is not None  # the quick checks are the ones in use here
    assert locations._SPECIAL_V6 is not None
    rnd = random.Random(5)
    texts = [str(ipaddress.IPv4Address(rnd.randrange(2**32))) for _ in range(20_000)]
    texts += [_random_v6(rnd) for _ in range(20_000)]
    texts += [str(ipaddress.IPv6Address(rnd.randrange(2**128))) for _ in range(5_000)]
    for version, blocks in ((4, locations._SPECIAL_V4), (6, locations._SPECIAL_V6)):
        cls = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
        for start, end in zip(*blocks, strict=True):
            texts += [str(cls(v)) for v in (start - 1, start, start + 1, end - 1, end, end + 1)
                      if 0 <= v < 2 ** (32 if version == 4 else 128)]
    texts += ["01.2.3.4", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.-4", "1..2.3",
              "\u0668.8.8.8", "+1.2.3.4", "1.2.3.4 ", "0x8.8.8.8", "1.2.3.0004", "",
              "::1", "::", "2001:4860:4860::8888", "fe80::1", "fe80::1%eth0",
              "::ffff:8.8.8.8", "::ffff:10.0.0.1", "::ffff:808:808", "::ffff:a00:1",
              "64:ff9b::8.8.8.8", "1.2.3.4/32", "1::2::3", ":1::", "1:2:3:4:5:6:7:8:9",
              "12345::", "::g", "2001:db8::", "::1:2:3:4:5:6:7", "1:2:3:4:5:6:7::",
              "\uff12001::1", "2001:4860:4860::8888 "]
    for text in texts:
        assert locations.is_global(text) == _ipaddress_says(text), text


def test_lookup_ip_gives_the_country_of_ipaddress_s_form():
    """The quick path hands iptocc a text of its own making: the same countries."""
    rnd = random.Random(6)
    for _ in range(3000):
        for text in (str(ipaddress.IPv4Address(rnd.randrange(2**32))), _random_v6(rnd)):
            addr = ipaddress.ip_address(text)
            want = iptocc.country_code(str(addr)) if addr.is_global else ""
            want = (want or "").upper() if want and want.upper() != "ZZ" else ""
            assert locations.lookup_ip(text) == want, text


@pytest.mark.parametrize(("loc", "collect", "regions", "want"), [
    ("US-TX", True, ["US", "RU", "CN"], "US-TX"),
    ("DE-BY", True, ["US", "RU", "CN"], "DE"),
    ("DE-BY", True, [], "DE-BY"),
    ("US-TX", False, ["US"], "US"),
    ("NL", True, ["US"], "NL"),
])
def test_keep_region(loc, collect, regions, want):
    assert locations.keep_region(loc, collect, regions) == want


@pytest.mark.parametrize(("size", "want"), [
    ("1920,1080,1", 1920), ("1920", 1920), (1920, 1920), ([1920, 1080, 2], 1920),
    (None, 0), ("", 0), ("0", 0), ("412,915,2.625", 412), (1366.5, 1366), ([], 0),
])
def test_width(size, want):
    assert sizes.width(size) == want


@pytest.mark.parametrize("size", ["xxx", "1e400", [True], {"a": 1}, 2**40, "nan"])
def test_bad_width(size):
    with pytest.raises(sizes.SizeError):
        sizes.width(size)


@pytest.mark.parametrize(("tag", "want"), [
    ("fr", "fra"), ("en-US", "eng"), ("EN_gb", "eng"), ("xx", ""), ("", ""), ("123", ""),
])
def test_language(tag, want):
    assert languages.iso3(tag) == want


def test_accept_language():
    assert languages.from_accept_language("nl-NL,nl;q=0.9,en;q=0.8") == "nld"
    assert languages.from_accept_language("*") == ""


NOW = 1_800_000_000.0


@pytest.mark.parametrize(("kw", "want"), [
    ({"path": "/x"}, None),
    ({"path": ""}, "path: must be set, must be longer than 1 characters."),
    ({"path": "/" + "a" * 2047}, None),
    ({"path": "/" + "a" * 2048}, "path: must be shorter than 2048 characters."),
    ({"path": "/x", "title": "t" * 1024}, None),
    ({"path": "/x", "title": "t" * 1025}, "title: must be shorter than 1024 characters."),
    ({"path": "/x", "ref": "r" * 2049}, "ref: must be shorter than 2048 characters."),
    ({"path": "/x", "user_agent": "u" * 513},
     "user_agent_header: must be shorter than 512 characters."),
    ({"path": "/x", "created_at": NOW + 6}, "created_at: in the future."),
    ({"path": "/x", "created_at": NOW + 5}, None),
    ({"path": "/x", "created_at": 631152000.0}, None),
    ({"path": "/x", "created_at": 631151999.0}, "created_at: before 1990-01-01."),
    ({"path": "/x", "location": "L" * 64, "campaign": "c" * 255}, None),
    ({"path": "/x", "location": "L" * 65, "campaign": "c" * 256},
     "campaign: must be shorter than 255 characters.\n"
     "location: must be shorter than 64 characters.\n"),
    ({"path": "", "created_at": NOW + 1000},
     "created_at: in the future.\npath: must be set, must be longer than 1 characters.\n"),
    ({"path": "/\udcff"}, "path: must be UTF-8."),
])
def test_validate(kw, want):
    args = {"path": "", "title": "", "ref": "", "user_agent": "", "created_at": NOW,
            "location": "", "campaign": ""}
    args.update(kw)
    assert validate(args["path"], args["title"], args["ref"], args["user_agent"],
                    args["created_at"], now=NOW, location=args["location"],
                    campaign=args["campaign"]) == want
