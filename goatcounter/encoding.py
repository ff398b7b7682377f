"""Numbers written in base 36, as upstream writes its tokens, site codes and error codes."""
from __future__ import annotations

import secrets

DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def base36(num: int) -> str:
    """A non-negative number in base 36."""
    out = ""
    while num:
        num, rem = divmod(num, 36)
        out = DIGITS[rem] + out
    return out or "0"


def random_base36(bits: int) -> str:
    """A random number of `bits` bits in base 36."""
    return base36(secrets.randbits(bits))
