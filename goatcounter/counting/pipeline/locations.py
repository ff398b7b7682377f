"""Step: where a visitor is, from what the client says or from the IP address.

The country database is iptocc's, shipped inside that package (regional internet
registry data), so nothing is downloaded at run time. It knows countries, not regions.
"""
from __future__ import annotations

import bisect
import ipaddress
import socket
from functools import lru_cache

import iptocc
import pycountry

UNKNOWN = "(unknown)"


def _blocks(version: int) -> tuple[list[int], list[int]] | None:
    """The blocks of an IP version that are not global, as sorted (starts, ends) of whole
    numbers, read from the ipaddress module's own table; None when it has no such table
    or the blocks don't give its answers (another Python), and then ipaddress answers."""
    cls = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    consts = getattr(cls, "_constants", None)
    nets = list(getattr(consts, "_private_networks", ()))
    if version == 4:
        nets.append(getattr(consts, "_public_network", None))
    if not nets or None in nets or getattr(consts, "_private_networks_exceptions", None):
        return None
    blocks: list[tuple[int, int]] = []
    for start, end in sorted((int(n.network_address), int(n.broadcast_address)) for n in nets):
        if blocks and start <= blocks[-1][1] + 1:  # within or next to the one before
            blocks[-1] = (blocks[-1][0], max(end, blocks[-1][1]))
        else:
            blocks.append((start, end))
    starts, ends = [b[0] for b in blocks], [b[1] for b in blocks]
    top = 2 ** (32 if version == 4 else 128)
    probes = {x for s, e in blocks for x in (s - 1, s, e, e + 1) if 0 <= x < top}
    for x in probes:
        if (version == 6 and _MAPPED[0] <= x <= _MAPPED[1]):
            continue
        if _in_blocks(starts, ends, x) == cls(x).is_global:
            return None
    return starts, ends


def _in_blocks(starts: list[int], ends: list[int], value: int) -> bool:
    i = bisect.bisect_right(starts, value) - 1
    return i >= 0 and value <= ends[i]


# ::ffff:0:0/96, IPv4 addresses written as IPv6 ones: ipaddress judges those by their
# IPv4 part, so they are left to it.
_MAPPED = (0xFFFF << 32, (0xFFFF << 32) | 0xFFFFFFFF)
_SPECIAL_V4 = _blocks(4)
_SPECIAL_V6 = _blocks(6)


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


def _v6(ip: str) -> bytes | None:
    """An IPv6 address in hexadecimal groups only (no IPv4 part, no zone) as its 16
    bytes; None for anything else, which ipaddress then reads."""
    if "." in ip or "%" in ip or not ip.isascii():
        return None
    try:
        return socket.inet_pton(socket.AF_INET6, ip)
    except OSError:
        return None


def _public(ip: str) -> tuple[bool, str] | None:
    """Whether an address is a public one, as ipaddress says, and its text for the
    country lookup; None when it isn't an address."""
    # ipaddress takes 10 to 20 µs for each new address here (is_global tries every
    # special network in turn); the pixel sees a new one with nearly every new visitor.
    if _SPECIAL_V4 is not None and ":" not in ip:
        value = _v4(ip)
        if value is not None:
            return not _in_blocks(*_SPECIAL_V4, value), ip
    elif _SPECIAL_V6 is not None:
        packed = _v6(ip)
        if packed is not None:
            value = int.from_bytes(packed, "big")
            if not _MAPPED[0] <= value <= _MAPPED[1]:
                return (not _in_blocks(*_SPECIAL_V6, value),
                        socket.inet_ntop(socket.AF_INET6, packed))
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    return addr.is_global, str(addr)


def is_global(ip: str) -> bool | None:
    """Whether an address is a public one, as ipaddress says; None when it isn't one."""
    found = _public(ip)
    return None if found is None else found[0]


@lru_cache(maxsize=65536)
def lookup_ip(ip: str) -> str:
    """ISO 3166-1 country code of a public address; "" for private or unknown ones."""
    found = _public(ip.strip())
    if found is None or not found[0]:
        return ""
    try:
        code = iptocc.country_code(found[1])
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
