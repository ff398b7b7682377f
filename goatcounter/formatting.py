"""Numbers as people read them, in the separators UserSettings.number_format names."""
from __future__ import annotations

# number_format is a code point; 1 means "no separator" (upstream's "None").
NO_SEPARATOR = 1
DEFAULT_SEPARATOR = 0x202F


def thousands(num: int, number_format: int = DEFAULT_SEPARATOR) -> str:
    """`num` with its thousands separated by the character `number_format` names."""
    text = f"{num:,}"
    if number_format == NO_SEPARATOR:
        return text.replace(",", "")
    sep = chr(number_format) if 0 < number_format <= 0x10FFFF else chr(DEFAULT_SEPARATOR)
    return text.replace(",", sep)
