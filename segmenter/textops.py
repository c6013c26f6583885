"""Polars' string operations in plain Python, for the few-customer facts path.

Where polars and Python differ, the polars behaviour is reproduced: ``\\s`` and
``strip_chars()`` are Rust's White_Space (Python's also take U+001C..U+001F), ``$`` is the end of
the text. Inputs for which plain Python is not known to agree raise :class:`PolarsOnly`, and the
caller then runs the polars plan: characters that Python's Unicode database does not know (polars
may know them as digits or as cased) and a capital sigma to lowercase (its lower case depends on
the neighbouring letters).
"""

from __future__ import annotations

import re
import unicodedata


class PolarsOnly(Exception):
    """The input hits a corner where plain Python is not known to match the polars plan."""


#: Rust's White_Space property: what polars' regex ``\s`` and ``strip_chars()`` match.
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_WHITESPACE_RUN = re.compile(f"[{WHITESPACE}]+")


def squash(text: str) -> str:
    """``.str.replace_all(r"\\s+", " ").str.strip_chars()``"""
    return _WHITESPACE_RUN.sub(" ", text).strip(WHITESPACE)


def known(text: str) -> str:
    """``text``, when Python's Unicode database knows all its characters (polars' may be newer)."""
    if not text.isascii() and any(unicodedata.category(ch) == "Cn" for ch in text):
        raise PolarsOnly(f"character unknown to Python's Unicode {unicodedata.unidata_version}")
    return text


def lower(text: str) -> str:
    """``.str.to_lowercase()``"""
    if "Σ" in text:
        raise PolarsOnly("capital sigma to lowercase")
    return known(text).lower()


def python_regex(pattern: str) -> re.Pattern[str]:
    """A Rust regex (polars) as Python's: Rust's ``$`` is the end of the text, Python's also
    matches before a final newline."""
    return re.compile(re.sub(r"(?<!\\)\$", r"\\Z", pattern))


def python_replacement(replacement: str) -> str:
    """A Rust replacement (``${1}``) as Python's (``\\g<1>``)."""
    return re.sub(r"\$\{(\d+)\}", r"\\g<\1>", replacement.replace("\\", "\\\\"))


def round_rating(mean: float) -> str:
    """``pl.col(x).round(1).cast(pl.String)`` of one float."""
    rounded = round(mean * 10.0, 0) / 10.0  # polars' round(1), half to even
    # polars writes floats as Python's repr does, except below 1e-4 ("0.00001"); a rating
    # rounded to one decimal is 0 or at least 0.1
    if not (rounded == 0 or 1e-4 <= abs(rounded) < 1e15):
        raise PolarsOnly(f"rating {mean!r}")
    return repr(rounded)
