"""Validation the way upstream's validator reports it: every problem of every field
collected, then one 400 with upstream's messages (clients match on them)."""
from __future__ import annotations

import ipaddress
import json
import re
import unicodedata
import urllib.parse
from collections.abc import Mapping
from typing import Any

from goatcounter import decoding
from goatcounter.errors import ValidationError

# Upstream's messages, word for word; clients match on them.
MSG_REQUIRED = "must be set"
MSG_URL = "must be a valid url"
MSG_IP = "must be a valid IPv4 or IPv6 address"
MSG_WHOLE_NUMBER = "must be a whole number"
MSG_EXISTS = "already exists"


class FieldErrors:
    """Field errors collected before answering once: every message of every field, with
    nested keys joined by a dot (`settings.public`), as upstream's validator does."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.errors.setdefault(field, []).append(message)

    def sub(self, prefix: str, other: FieldErrors) -> None:
        for key, messages in other.errors.items():
            self.errors.setdefault(f"{prefix}.{key}", []).extend(messages)

    def __bool__(self) -> bool:
        return bool(self.errors)

    def check(self) -> None:
        """Raise the collected errors, if any. Keys are sorted: upstream's errors are a Go
        map, which encoding/json always writes in key order."""
        if self.errors:
            raise ValidationError({k: self.errors[k] for k in sorted(self.errors)})


def one_of(values: list[str]) -> str:
    return f"must be one of ‘{', '.join(values)}’"


def length_error(value: str, low: int, high: int) -> str | None:
    """Upstream's length check, in characters; the bounds themselves are fine."""
    if len(value) < low:
        return f"must be longer than {low} characters"
    if len(value) > high:
        return f"must be shorter than {high} characters"
    return None


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\v": "\\v", "'": "\\'", "\\": "\\\\"}


def quote_char(char: str) -> str:
    """A character as Go's %q prints a rune (`'x'`, `'\\n'`, `'\\u200b'`): upstream puts
    the offending characters in some messages."""
    if char in _GO_ESCAPES:
        return f"'{_GO_ESCAPES[char]}'"
    if char.isprintable():
        return f"'{char}'"
    code = ord(char)
    if code < 0x80:
        return f"'\\x{code:02x}'"
    return f"'\\u{code:04x}'" if code < 0x10000 else f"'\\U{code:08x}'"


def domain_error(value: str, min_labels: int = 2) -> str | None:
    """Why `value` is not a domain name, in upstream's words, or None when it is one.

    Letters and digits of any script, `-` and `_` are allowed; punycode labels are
    checked after decoding. Like upstream, two labels are needed ("localhost" is not a
    domain) and an IPv4 address passes (its labels are digits)."""
    if len(value.encode()) < 3 or value.startswith("."):
        return "too short"
    labels = value.removesuffix(".").split(".")
    if len(labels) < min_labels:
        return f"need at least {min_labels} labels"
    total = 0
    for label in labels:
        if not label:
            return "empty label"
        size = len(label.encode())
        if size > 63:
            return "label is longer than 63 bytes"
        total += size
        if label.startswith("xn--"):
            try:
                label = label[4:].encode("ascii").decode("punycode")
            except (UnicodeError, ValueError):
                return f"not valid punycode: {json.dumps(label, ensure_ascii=False)}"
        for char in label:
            cat = unicodedata.category(char)
            if not (cat.startswith("L") or cat == "Nd" or char in "-_"):
                return f"invalid character: {quote_char(char)}"
    if total > 255:
        return "domain is longer than 255 bytes"
    return None


def valid_url(value: str) -> bool:
    """Whether `value` is a URL with a public-looking host; the scheme may be left out
    (then http is assumed), as upstream's link_domain and allow_embed accept."""
    text = "http:" + value if value.startswith("//") else value
    try:
        parts = urllib.parse.urlsplit(text)
        if not parts.scheme:
            parts = urllib.parse.urlsplit("http://" + text)
    except ValueError:
        return False
    host = parts.netloc.rpartition("@")[2]
    if host.startswith("["):
        return False  # an IPv6 literal is not a domain (upstream agrees)
    host, _, port = host.partition(":")
    if not host or (port and not port.isdigit()):
        return False
    return domain_error(host) is None


def valid_ip(value: str) -> bool:
    # Go's ParseIP takes no IPv6 zone (`fe80::1%eth0`); Python's parser does.
    if "%" in value:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_json(value: Any) -> Any:
    """The decoded body with lone UTF-16 surrogates (valid JSON escapes, but not text)
    replaced by U+FFFD, as Go's decoder does; SQLite and the reply can't encode them."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    if isinstance(value, dict):
        return {clean_json(k): clean_json(v) for k, v in value.items()}
    return value


def nullable(conv: decoding.Converter) -> decoding.Converter:
    """A converter that passes null through: in Go, null leaves a field as it was."""
    return lambda value, field: None if value is None else conv(value, field)


def decode_object(value: Any, field: str,
                  fields: Mapping[str, decoding.Converter]) -> dict[str, Any]:
    """A nested JSON object checked against `fields` (unknown keys are a 400, keys match
    ignoring case); only keys that were sent with a non-null value are returned."""
    obj = decoding.j_object(value, field)
    got = decoding.match_keys(obj, {k: nullable(c) for k, c in fields.items()}, field + ".")
    return {k: v for k, v in got.items() if v is not None}


def parse_id(text: str) -> int:
    """An id from the URL (a site, an export): a whole number that fits upstream's
    32-bit ids."""
    stripped = text.strip()
    if not re.fullmatch(r"[+-]?[0-9]+", stripped) or not -2**31 <= int(stripped) < 2**31:
        raise ValidationError({"id": [MSG_WHOLE_NUMBER]})
    return int(stripped)
