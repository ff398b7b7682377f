"""Step: where a visitor is, from what the client says or from the IP address.

The country database is iptocc's, shipped inside that package (regional internet
registry data), so nothing is downloaded at run time. It knows countries, not regions.
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache

import iptocc
import pycountry

UNKNOWN = "(unknown)"


@lru_cache(maxsize=65536)
def lookup_ip(ip: str) -> str:
    """ISO 3166-1 country code of a public address; "" for private or unknown ones."""
    try:
        addr = ipaddress.ip_address(ip.strip())
    except ValueError:
        return ""
    if not addr.is_global:
        return ""
    try:
        code = iptocc.country_code(str(addr))
    except (ValueError, KeyError):
        return ""
    return (code or "").upper() if code and code.upper() != "ZZ" else ""


def keep_region(location: str, collect_regions: bool, regions: list[str]) -> str:
    """`US-TX` stays when the site collects regions and (its list is empty or names the
    country); otherwise it becomes `US`."""
    if "-" not in location:
        return location
    if collect_regions and (not regions or location[:2] in regions):
        return location
    return location[:2]


@lru_cache(maxsize=4096)
def country_name(code: str) -> str:
    """`NL` → `Netherlands`; "" → `(unknown)`; unknown codes are shown as they are."""
    if not code:
        return UNKNOWN
    country = pycountry.countries.get(alpha_2=code.upper())
    if country is None:
        return code
    return getattr(country, "common_name", None) or country.name


@lru_cache(maxsize=4096)
def region_name(code: str) -> str:
    """`US-TX` → `Texas`; "" when there is no region or it is unknown."""
    if "-" not in code:
        return ""
    sub = pycountry.subdivisions.get(code=code.upper())
    return sub.name if sub is not None else ""
