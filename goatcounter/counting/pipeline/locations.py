"""Step: where a visitor is, from what the client says or from the IP address.

The country database is iptocc's, shipped inside that package (regional internet
registry data), so nothing is downloaded at run time. It knows countries, not regions.
"""
from __future__ import annotations

import bisect
import ipaddress
from functools import lru_cache

import iptocc
import pycountry

UNKNOWN = "(unknown)"


def _special_v4() -> tuple[list[int], list[int]] | None:
    """The IPv4 blocks that are not global, as sorted (starts, ends) of whole numbers,
    read from the ipaddress module's own table; None when it has no such table or the
    blocks don't give its answers (another Python), and then ipaddress answers."""
    consts = getattr(ipaddress.IPv4Address, "_constants", None)
    nets = [*getattr(consts, "_private_networks", ()),
            getattr(consts, "_public_network", None)]
    if not nets or None in nets or getattr(consts, "_private_networks_exceptions", None):
        return None
    blocks = sorted((int(n.network_address), int(n.broadcast_address)) for n in nets)
    starts, ends = [b[0] for b in blocks], [b[1] for b in blocks]
    probes = {x for s, e in blocks for x in (s - 1, s, e, e + 1) if 0 <= x < 2**32}
    for x in probes:
        if _in_blocks(starts, ends, x) == ipaddress.IPv4Address(x).is_global:
            return None
    return starts, ends


def _in_blocks(starts: list[int], ends: list[int], value: int) -> bool:
    i = bisect.bisect_right(starts, value) - 1
    return i >= 0 and value <= ends[i]


_SPECIAL_V4 = _special_v4()


def _v4(ip: str) -> int | None:
    """A dotted-quad IPv4 address as a number, as strict as ipaddress (no leading
    zeros, four parts of 0 to 255); None for anything else."""
    parts = ip.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        if not (part.isascii() and part.isdigit()) or len(part) > 3 or \
                (len(part) > 1 and part[0] == "0"):
            return None
        octet = int(part)
        if octet > 255:
            return None
        value = value << 8 | octet
    return value


def is_global(ip: str) -> bool | None:
    """Whether an address is a public one, as ipaddress says; None when it isn't one."""
    value = _v4(ip) if _SPECIAL_V4 is not None else None
    if value is not None:
        # ipaddress takes a second per hundred thousand new IPv4 addresses here; the
        # pixel sees a new one with nearly every new visitor.
        return not _in_blocks(*_SPECIAL_V4, value)  # type: ignore[misc]
    try:
        return ipaddress.ip_address(ip).is_global
    except ValueError:
        return None


@lru_cache(maxsize=65536)
def lookup_ip(ip: str) -> str:
    """ISO 3166-1 country code of a public address; "" for private or unknown ones."""
    ip = ip.strip()
    if not is_global(ip):
        return ""
    try:
        code = iptocc.country_code(str(ipaddress.ip_address(ip)) if ":" in ip else ip)
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
