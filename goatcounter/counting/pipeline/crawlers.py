"""crawlerdetect's verdict on a User-Agent, without running its whole pattern for the
strings it can't match.

crawlerdetect removes a list of exclusions (browser words) from the string and then
searches it with one alternation of some 1,500 patterns, which Python's backtracking
engine tries at every position: 0.2 to 1.5 ms for each new browser string. Every one
of those patterns contains some literal text (`bot`, `crawler`, `google`, ...) that
any string it matches must contain. Those literals are read from the patterns
themselves when this module is loaded, and all found in one pass over the string (an
Aho-Corasick automaton: under a µs, whatever their number). A string that contains
none of them can't be matched, so the answer is no. A string that contains some is
searched, as crawlerdetect searches it, with only the patterns that need one of the
literals it contains, in crawlerdetect's order: the others can't match it anywhere, so
the first match (and the text that crawlerdetect reports) is the same, at a fraction of
the cost. The answer is always crawlerdetect's own.
"""
from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, NamedTuple

import ahocorasick_rs
from crawlerdetect import CrawlerDetect
from crawlerdetect.crawlerdetect import get_compiled_exclusions_regex as _crawlerdetect_exclusions
from crawlerdetect.providers.crawlers import data as _crawler_patterns
from crawlerdetect.providers.exclusions import data as _exclusion_patterns

# The parser of Python's own re module: it reads the patterns as crawlerdetect's own
# search will (private, so imported by name; without it there is no first test).
try:
    _sre: Any = importlib.import_module("re._constants")
    _sre_parse: Any = importlib.import_module("re._parser")
except ImportError:  # pragma: no cover - a Python without them
    _sre = _sre_parse = None

_detector = CrawlerDetect()
# The detector keeps what it matched last: one thread at a time (the request's, or the
# counting thread's).
_detector_lock = threading.Lock()


def _required(items: Iterable[tuple[Any, Any]]) -> set[str] | None:
    """Lower-case literals of which every match of a parsed pattern contains at least
    one, or None when none can be named. Only plain ASCII characters in a row count as
    literal text; anything else (classes, optional parts, anchors) ends a run."""
    found: list[set[str]] = []
    run: list[str] = []

    def end_run() -> None:
        if run:
            found.append({"".join(run)})
            run.clear()

    for op, arg in items:
        if op is _sre.LITERAL and chr(arg).isascii():
            run.append(chr(arg).lower())
            continue
        end_run()
        if op is _sre.SUBPATTERN:
            inner = _required(arg[-1])
            if inner:
                found.append(inner)
        elif op is _sre.BRANCH:
            branches = [_required(alt) for alt in arg[1]]
            if branches and all(branches):
                found.append(set().union(*branches))  # type: ignore[arg-type]
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT) and arg[0] >= 1:
            inner = _required(arg[2])
            if inner:
                found.append(inner)
    end_run()
    if not found:
        return None
    # The set whose shortest literal is longest: the rarest in browsers' strings.
    return max(found, key=lambda s: (min(map(len, s)), -len(s)))


class _Literals(NamedTuple):
    """The literals of every crawler pattern (lower case), found all at once by `finder`,
    and for each literal (by the index `finder` reports) the patterns, by index, that
    need it."""

    finder: ahocorasick_rs.AhoCorasick
    patterns: list[tuple[int, ...]]

    def found(self, text: str) -> list[tuple[int, int, int]]:
        """Every place any literal occurs in `text`, overlapping ones too."""
        return self.finder.find_matches_as_indexes(text, overlapping=True)


def _literals() -> _Literals | None:
    """The literal search, or None (no first test) when a pattern names none, so that
    each string goes to crawlerdetect."""
    needs: list[set[str]] = []
    for pattern in _crawler_patterns:
        need = _required(_sre_parse.parse(pattern, re.IGNORECASE))
        if not need:
            return None
        needs.append(need)
    words = sorted(set().union(*needs))
    number = {word: i for i, word in enumerate(words)}
    patterns: list[set[int]] = [set() for _ in words]
    for index, need in enumerate(needs):
        for literal in need:
            patterns[number[literal]].add(index)
    return _Literals(ahocorasick_rs.AhoCorasick(words),
                     [tuple(sorted(found)) for found in patterns])


def _grouped_exclusions() -> re.Pattern[str] | None:
    """crawlerdetect's exclusions for lower-case text: the same matches as its own
    case-blind pattern on ASCII text, at twice its speed. None if the patterns use an
    upper-case escape (`\\D`, `\\S`), which lower-casing would change.

    The alternatives are grouped by the character they start with, so that at each
    position only that character's group is tried (Python's engine would try all of
    them): as no alternative of one group can match where another group's character
    is, and each group keeps crawlerdetect's order, the same alternative matches."""
    lowered = [p.lower() for p in _exclusion_patterns]
    if re.search(r"\\[A-Z]", "|".join(_exclusion_patterns)):
        return None
    groups: dict[str, list[tuple[str, str | None]]] = {}
    for pattern in lowered:
        parsed = _sre_parse.parse(pattern)
        starts = _first_chars(list(parsed))
        if starts is None:  # can't tell: the plain alternation it is
            return re.compile(f"({'|'.join(lowered)})")
        # Written as that character itself (not a class or an escape), not repeated.
        plain = (len(starts) == 1 and pattern[:1] in starts and pattern[0] not in "\\[("
                 and not pattern[1:].startswith(("*", "+", "?", "{")))
        for ch in sorted(starts):
            # A pattern that starts with its one literal character is written without
            # it inside that character's group; any other is kept whole.
            groups.setdefault(ch, []).append((pattern, pattern[1:] if plain else None))
    parts = []
    for ch, members in groups.items():
        if all(rest is not None for _, rest in members):
            parts.append(re.escape(ch) + "(?:" + "|".join(r or "" for _, r in members) + ")")
        else:
            parts.append(f"(?={re.escape(ch)})(?:" + "|".join(p for p, _ in members) + ")")
    return re.compile("(" + "|".join(parts) + ")")


class _Exclusions(NamedTuple):
    """crawlerdetect's exclusions for lower-case text (`pattern`), and the texts one of
    which each of their matches starts with (`starts`; None when some can't be named).

    Removing them as re.sub would tries the alternation at every position of the
    string (7 µs for a browser's). Where none of those texts starts, none can match: so
    the alternation is tried only where one does (found in one pass), from left to
    right, each after the end of the last match, which is what re.sub does."""

    pattern: re.Pattern[str]
    starts: ahocorasick_rs.AhoCorasick | None

    def remove(self, low: str) -> str:
        """`low` (lower case) without the exclusions, as `pattern.sub("", low)`."""
        if self.starts is None:
            return self.pattern.sub("", low)
        found = self.starts.find_matches_as_indexes(low, overlapping=True)
        if not found:
            return low
        pieces = []
        end = 0
        match = self.pattern.match
        for start in sorted({start for _, start, _ in found}):
            if start >= end:
                hit = match(low, start)
                if hit is not None:
                    pieces.append(low[end:start])
                    end = hit.end()
        if not pieces:
            return low
        pieces.append(low[end:])
        return "".join(pieces)


def _exclusions() -> _Exclusions | None:
    """The exclusions, or None when they can't be read for lower-case text."""
    grouped = _grouped_exclusions()
    if grouped is None:
        return None
    starts: set[str] = set()
    for pattern in _exclusion_patterns:
        leading = _leading(list(_sre_parse.parse(pattern, re.IGNORECASE)))
        if leading is None:
            return _Exclusions(grouped, None)
        starts |= leading
    return _Exclusions(grouped, ahocorasick_rs.AhoCorasick(sorted(starts)))


def _leading(items: list[tuple[Any, Any]]) -> set[str] | None:
    """Texts (lower case) one of which every match of parsed pattern items starts with,
    cut where the pattern stops being plain ASCII text; None when none can be named."""
    run: list[str] = []
    for i, (op, arg) in enumerate(items):
        if op is _sre.IN:
            chars = _class_chars(arg)
            if chars is not None and len(chars) == 1:  # `[ ]`
                op, arg = _sre.LITERAL, ord(chars.pop())
        if op is _sre.LITERAL and chr(arg).isascii():
            run.append(chr(arg).lower())
            continue
        if run:
            break
        if op is _sre.SUBPATTERN or op is _sre.BRANCH:
            out: set[str] = set()
            for alt in ([arg[-1]] if op is _sre.SUBPATTERN else arg[1]):
                found = _leading(list(alt))
                if found is None:
                    return None
                out |= found
            return out
        if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT):
            inner = _leading(list(arg[2]))
            if inner is None or arg[0] >= 1:
                return inner
            after = _leading(items[i + 1:])  # it may be left out
            return None if after is None else inner | after
        return None
    return {"".join(run)} if run else None


def _first_chars(items: list[tuple[Any, Any]]) -> set[str] | None:
    """The characters a match of parsed pattern items can start with, or None when that
    can't be told (any character, an empty match)."""
    out: set[str] = set()
    for op, arg in items:
        if op is _sre.LITERAL:
            return out | {chr(arg)}
        if op is _sre.IN:
            chars = _class_chars(arg)
            return None if chars is None else out | chars
        if op is _sre.SUBPATTERN or op is _sre.BRANCH or op in (_sre.MAX_REPEAT,
                                                                 _sre.MIN_REPEAT):
            alternatives = ([arg[-1]] if op is _sre.SUBPATTERN else
                            arg[1] if op is _sre.BRANCH else [arg[2]])
            optional = op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT) and arg[0] == 0
            for alt in alternatives:
                found = _first_chars(list(alt))
                if found is None:
                    return None
                out |= found
            if not optional:
                return out
            continue
        return None
    return None  # it may match nothing at all


def _class_chars(items: list[tuple[Any, Any]]) -> set[str] | None:
    chars: set[str] = set()
    for op, arg in items:
        if op is _sre.LITERAL:
            chars.add(chr(arg))
        elif op is _sre.RANGE:
            chars.update(map(chr, range(arg[0], arg[1] + 1)))
        elif op is _sre.CATEGORY and arg is _sre.CATEGORY_DIGIT:
            chars.update("0123456789")
        else:
            return None
    return chars


try:
    _LITERALS = _literals() if _sre_parse is not None else None
    _EXCLUDE = _exclusions()
except Exception:  # pragma: no cover - a crawlerdetect whose patterns we can't read
    _LITERALS = _EXCLUDE = None


def _rest(ua: str) -> str | None:
    """`ua` in lower case without crawlerdetect's exclusions, for an ASCII string (None
    for any other, or when there is no first test)."""
    if _LITERALS is None or _EXCLUDE is None or not ua.isascii():
        return None
    return _EXCLUDE.remove(ua.lower())


def could_match(ua: str) -> bool:
    """False when crawlerdetect can't call `ua` a crawler: an ASCII string without any
    of its patterns' literals once its exclusions are removed."""
    rest = _rest(ua.strip())
    if rest is None or _LITERALS is None:
        return True
    return bool(rest) and bool(_LITERALS.found(rest))


@lru_cache(maxsize=512)
def _search_of(indexes: tuple[int, ...]) -> re.Pattern[str]:
    """crawlerdetect's search, made of only these of its patterns (in its order)."""
    return re.compile("(" + "|".join(_crawler_patterns[i] for i in indexes) + ")",
                      re.IGNORECASE)


def match(ua: str) -> str | None:
    """What crawlerdetect matched in a User-Agent, or None when it is no crawler."""
    ua = ua.strip()
    rest = _rest(ua)
    if rest is None or _LITERALS is None:
        with _detector_lock:
            return _detector.getMatches() if _detector.isCrawler(ua) else None
    found = _LITERALS.found(rest) if rest else None
    if not found:
        return None  # most browsers' strings: no literal at all
    needing = _LITERALS.patterns
    indexes = tuple(sorted(set().union(*(needing[word] for word, _, _ in found))))
    # What crawlerdetect searches: the string without its exclusions, case kept.
    agent = _crawlerdetect_exclusions().sub("", ua)
    hit = _search_of(indexes).search(agent)
    if hit is None:
        return None
    return next((group for group in hit.groups() if group), None)


def is_crawler(ua: str) -> bool:
    """crawlerdetect's answer for a User-Agent."""
    return match(ua) is not None


def warm_up() -> None:
    """Compile crawlerdetect's patterns now (it does so on the first check)."""
    _detector._check_crawler("warm-up")
