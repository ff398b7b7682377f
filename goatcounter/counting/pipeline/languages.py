"""Step: the visitor's language, kept as the ISO 639-3 code of the base language."""
from __future__ import annotations

from functools import lru_cache

import pycountry

UNKNOWN = "(unknown)"


@lru_cache(maxsize=4096)
def iso3(tag: str) -> str:
    """`en-US` → `eng`, `fr` → `fra`; "" for an empty, invalid or unknown tag."""
    base = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    if not base.isalpha() or len(base) not in (2, 3):
        return ""
    lang = (pycountry.languages.get(alpha_2=base) if len(base) == 2
            else pycountry.languages.get(alpha_3=base))
    return lang.alpha_3 if lang is not None else ""


def from_accept_language(header: str) -> str:
    """The first language of an Accept-Language header, as ISO 639-3."""
    first = header.split(",", 1)[0].split(";", 1)[0].strip()
    return iso3(first) if first and first != "*" else ""


@lru_cache(maxsize=4096)
def name(code: str) -> str:
    """`eng` → `English`; "" → `(unknown)`."""
    if not code:
        return UNKNOWN
    lang = pycountry.languages.get(alpha_3=code)
    return lang.name if lang is not None else code
