"""Text for terminals from file names, which on Linux are bytes and need not be UTF-8 or printable."""
from __future__ import annotations


def printable(text: str) -> str:
    """`text` as one printable line: bytes that are not UTF-8 (which Python holds as surrogates) become
    \\xNN, control characters such as a newline in a file name their escapes; anything else is unchanged."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
