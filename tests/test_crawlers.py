"""The first test in front of crawlerdetect: it may only settle strings that
crawlerdetect itself would not call crawlers. Checked against crawlerdetect on the
benchmarks' 21,000 user agents, strings nobody sent before, and strings made from each
of crawlerdetect's own patterns."""
from __future__ import annotations

import importlib
import random
import re

import pytest
from crawlerdetect import CrawlerDetect
from crawlerdetect.providers.crawlers import data as crawler_patterns
from crawlerdetect.providers.exclusions import data as exclusion_patterns
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.useragents import Mix
from goatcounter.counting.pipeline import crawlers

sre = importlib.import_module("re._constants")
sre_parse = importlib.import_module("re._parser")

_detector = CrawlerDetect()


def crawlerdetect(ua: str) -> bool:
    """crawlerdetect's verdict, past its cache (as `is_crawler` calls it)."""
    ua = ua.strip()
    return bool(ua) and _detector._check_crawler(ua)[0]


def crawlerdetect_match(ua: str) -> str | None:
    """The text crawlerdetect reports as matched (`getMatches`), past its cache."""
    ua = ua.strip()
    return _detector._check_crawler(ua)[1] if ua else None


def _class_char(items: list, rng: random.Random) -> str:
    for op, arg in items:
        if op is sre.NEGATE:
            return "~"
        if op is sre.LITERAL:
            return chr(arg)
        if op is sre.RANGE:
            return chr(rng.randint(*arg))
        if op is sre.CATEGORY:
            return {sre.CATEGORY_DIGIT: "7", sre.CATEGORY_SPACE: " "}.get(arg, "a")
    return "a"


def sample(items, rng: random.Random) -> str:
    """A string matched by a parsed pattern (its anchors aside)."""
    out = []
    for op, arg in items:
        if op is sre.LITERAL:
            out.append(chr(arg))
        elif op is sre.NOT_LITERAL:
            out.append("q" if chr(arg) != "q" else "z")
        elif op is sre.ANY:
            out.append(rng.choice("x/ ."))
        elif op is sre.IN:
            out.append(_class_char(arg, rng))
        elif op is sre.BRANCH:
            out.append(sample(rng.choice(arg[1]), rng))
        elif op is sre.SUBPATTERN:
            out.append(sample(arg[-1], rng))
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            low, high, body = arg
            count = rng.randint(low, min(high, low + 2))
            out.append("".join(sample(body, rng) for _ in range(count)))
    return "".join(out)


def from_patterns() -> list[str]:
    """Several strings for each of crawlerdetect's patterns: alone, inside a browser's
    string, in other letter cases."""
    rng = random.Random(7)
    out = []
    for pattern in crawler_patterns:
        parsed = sre_parse.parse(pattern, re.IGNORECASE)
        for _ in range(2):
            s = sample(parsed, rng)
            out += [s, s.upper(), s.title(), f"{s}/2.1 (+http://example.com/about)",
                    f"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like"
                    f" Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 {s}",
                    f"Mozilla/5.0 (compatible; {s}/1.0)"]
    return out


_MIX = Mix(random.Random(11))
BROWSERS, BOTS = _MIX.browsers, _MIX.bots
FRESH = [_MIX.fresh() for _ in range(2000)]


def test_every_crawler_pattern_is_still_caught():
    made = from_patterns()
    found = [ua for ua in made if crawlerdetect(ua)]
    # The strings are meant to be crawlers: nearly all are (some patterns are anchored).
    assert len(found) > 0.9 * len(made)
    missed = [ua for ua in found if not crawlers.is_crawler(ua)]
    assert missed == []


@pytest.mark.parametrize("name", ["bots", "fresh", "browsers"])
def test_same_verdicts_as_crawlerdetect(name):
    uas = {"bots": BOTS, "fresh": FRESH, "browsers": BROWSERS}[name]
    wrong = [ua for ua in uas if crawlers.is_crawler(ua) != crawlerdetect(ua)]
    assert wrong == []


@pytest.mark.parametrize("name", ["bots", "fresh", "patterns"])
def test_same_matches_as_crawlerdetect(name):
    """Searched with only the patterns whose literals a string holds, a crawler's match
    is the very text crawlerdetect reports (the live log shows it)."""
    uas = {"bots": BOTS, "fresh": FRESH, "patterns": from_patterns()}[name]
    wrong = [(ua, crawlers.match(ua), crawlerdetect_match(ua)) for ua in uas
             if crawlers.match(ua) != crawlerdetect_match(ua)]
    assert wrong == []


EDGES = ["like gecko", "gecko/2010", " intel", "[ ]intel", "\"yandex\"", "opera mini/1",
         "linux; like gecko/1.2", "cpu os 17_1 like mac os x", " .net clr 2.0", "",
         "like like gecko", "opera mini/12.1.2/3.opera", "safarisafari/1.2", "x86_x86_64",
         "mozilla/5.0mozilla/5.0", "super/1/android/2android 3", " .net clr .net"]


def test_the_grouped_exclusions_remove_what_crawlerdetects_remove():
    """The exclusions, grouped by first character, take the same text out of every
    string as crawlerdetect's own alternation (lower-cased, for lower-case text)."""
    plain = re.compile("(" + "|".join(exclusion_patterns).lower() + ")")
    exclude = crawlers._EXCLUDE
    assert exclude is not None and exclude.pattern.pattern != plain.pattern
    strings = [ua.lower() for ua in [*BROWSERS, *BOTS, *FRESH, *from_patterns()]]
    strings += EDGES
    wrong = [ua for ua in strings if exclude.pattern.sub("", ua) != plain.sub("", ua)]
    assert wrong == []


def test_exclusions_are_tried_only_where_one_can_start():
    """Tried only at the places where one of the exclusions' leading texts is, they
    take out what re.sub over every position takes out."""
    exclude = crawlers._EXCLUDE
    assert exclude is not None and exclude.starts is not None
    strings = [ua.lower() for ua in [*BROWSERS, *BOTS, *FRESH, *from_patterns()]] + EDGES
    wrong = [ua for ua in strings if exclude.remove(ua) != exclude.pattern.sub("", ua)]
    assert wrong == []


def test_the_first_test_settles_most_browsers():
    settled = sum(not crawlers.could_match(ua) for ua in BROWSERS)
    assert settled > 0.95 * len(BROWSERS)
    # and never a string crawlerdetect calls a crawler
    assert not any(not crawlers.could_match(ua) for ua in BOTS if crawlerdetect(ua))


def test_non_ascii_strings_go_to_crawlerdetect():
    assert crawlers.could_match("Mozilla/5.0 (Linux; Android 14; Gооglebot)")
    # A Kelvin sign matches k when case is ignored: such strings aren't settled first.
    assert crawlers.is_crawler("Mozilla/5.0 (compatible; Yandex\u212aot)") == \
        crawlerdetect("Mozilla/5.0 (compatible; Yandex\u212aot)")


_PIECES = ["Mozilla/5.0 ", "(Windows NT 10.0; Win64; x64) ", "AppleWebKit/537.36 ",
           "(KHTML, like Gecko) ", "Chrome/131.0.0.0 ", "Safari/537.36", "Mobile ",
           "Version/18.1 ", "Instagram 300.0.0.18.110 ", "[FBAN/FBIOS;FBAV/491.0]",
           "; wv) ", "bot", "Bot/", "crawl", "spider", "Google", "http://", "Yandex",
           " Build/UP1A", "python", "Go-http-client/", "Opera", "Linux", "rv:109.0) "]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_PIECES),
                          st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "0123456789 ;/()._-+:", max_size=12)), max_size=12))
def test_same_verdicts_on_mixed_strings(parts):
    ua = "".join(parts)
    assert crawlers.is_crawler(ua) == crawlerdetect(ua)
    assert crawlers.match(ua) == crawlerdetect_match(ua)
    plain = re.compile("(" + "|".join(exclusion_patterns).lower() + ")")
    assert crawlers._EXCLUDE is not None
    assert crawlers._EXCLUDE.remove(ua.lower()) == plain.sub("", ua.lower())
