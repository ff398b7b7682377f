"""Step: screen size. Only the width is kept."""
from __future__ import annotations

import math
from typing import Any

MAX_WIDTH = 2147483647

# The five size classes of stats/sizes: (id, lowest width, highest width). The one
# definition: stats/dims.py turns it into SQL.
CLASSES = (
    ("phone", 1, 600),
    ("tablet", 601, 1000),
    ("desktop", 1001, 1920),
    ("desktophd", 1921, MAX_WIDTH),
    ("unknown", 0, 0),
)


class SizeError(ValueError):
    """A size that is not a screen size."""


def width(size: Any) -> int:
    """The width in a size: `"1920,1080,2"`, `"1920"`, 1920, [1920, 1080, 2] or null.
    0 means unknown."""
    if size is None or size == "":
        return 0
    if isinstance(size, list):
        first = size[0] if size else 0
    elif isinstance(size, str):
        first = size.split(",", 1)[0].strip()
    else:
        first = size
    if isinstance(first, bool):
        raise SizeError("not a number")
    if isinstance(first, int) and not -MAX_WIDTH <= first <= MAX_WIDTH:
        # Too large for a float, and out of range anyway; not shown (it may be huge).
        raise SizeError("out of range")
    try:
        value = float(first)
    except (TypeError, ValueError) as exc:
        raise SizeError(f"not a number: {shown(first)}") from exc
    if not math.isfinite(value) or value > MAX_WIDTH or value < -MAX_WIDTH:
        raise SizeError(f"out of range: {shown(first)}")
    return max(0, int(value))


def shown(value: Any) -> str:
    """A value for a message, cut short: messages go back to the client (and into a
    header on /count)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."

