"""The visitor counter as a PNG: the same box as the SVG, drawn with Pillow and the
FreeType font that ships inside Pillow (nothing to download or install)."""
from __future__ import annotations

import functools
import io

from PIL import Image, ImageDraw, ImageFont

PURPLE = (0x9A, 0x15, 0xA4)
WIDTH = 200


@functools.lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


# The picture depends on its text alone, and most counters show a number many times.
@functools.lru_cache(maxsize=1024)
def png(label: str, count: str, branding: bool) -> bytes:
    """A 200x80 image (200x60 without branding) with `label` and `count` centred."""
    height = 80 if branding else 60
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((0, 0, WIDTH - 1, height - 1), radius=2, outline=PURPLE, width=2)
    lines = [(label, 15, 14), (count, 22, 40)]
    if branding:
        lines.append(("stats by GoatCounter", 13, 66))
    for text, size, middle in lines:
        draw.text((WIDTH / 2, middle), text, fill=PURPLE, font=_font(size), anchor="mm")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
