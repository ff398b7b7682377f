"""Query strings the way Go's net/url reads and writes them, since upstream's cleaned
paths and referrers are defined by that behaviour."""
from __future__ import annotations

import re
from urllib.parse import quote_plus, unquote_to_bytes

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def unescape(text: str, errors: str = "replace") -> str | None:
    """Query unescaping (`+` is a space); None for a broken %-escape, as Go rejects it.
    `errors="surrogateescape"` keeps invalid UTF-8 visible to validation."""
    if "+" in text:
        text = text.replace("+", " ")
    if "%" not in text:
        # Nothing to decode (the common case: each parameter name, most values).
        if text.isascii():
            return text
        return _raw_bytes(text).decode("utf-8", errors)
    if _BAD_ESCAPE.search(text):
        return None
    return unquote_to_bytes(_raw_bytes(text)).decode("utf-8", errors)


def _raw_bytes(text: str) -> bytes:
    """The bytes a client sent: invalid UTF-8 it sent unescaped reads as lone surrogates
    (surrogateescape), which go back to the bytes they stand for."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        # Surrogates that stand for no byte (a JSON \\ud800, say): kept as invalid UTF-8.
        return text.encode("utf-8", "surrogatepass")


def parse_query(query: str, errors: str = "replace") -> list[tuple[str, str]]:
    """Pairs of a query string, in order. Pairs Go can't parse (a `;`, a broken escape)
    are dropped, as Go's URL.Query() drops them."""
    pairs: list[tuple[str, str]] = []
    for part in query.split("&"):
        if not part or ";" in part:
            continue
        key, _, value = part.partition("=")
        k, v = unescape(key, errors), unescape(value, errors)
        if k is None or v is None:
            continue
        pairs.append((k, v))
    return pairs


def first(pairs: list[tuple[str, str]], key: str) -> str:
    """The first value of `key`, or ""."""
    for k, v in pairs:
        if k == key:
            return v
    return ""


def encode_query(pairs: list[tuple[str, str]]) -> str:
    """Encode pairs sorted by key (values of one key keep their order), `+` for spaces."""
    ordered = sorted(pairs, key=lambda kv: kv[0])
    return "&".join(f"{quote_plus(k, safe='')}={quote_plus(v, safe='')}" for k, v in ordered)
