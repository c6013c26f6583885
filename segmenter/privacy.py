"""Mask personal data in free text: the one place of the masking rules.

``item_name``, ``category``, ``channel`` and every text attribute of the users table are masked
when the data is loaded (:func:`mask_frame`, called by :func:`segmenter.data.load_events`);
``text`` is masked wherever it is read (:mod:`segmenter.facts`, :mod:`segmenter.terms`). Nothing
downstream (documents, profiles, distinctive terms, the report, the model folder) sees raw
values. Control characters (NUL, ESC, ...) become
spaces. Keys (``user_id``, ``item_id``, ``order_id``) are identifiers, not free text, and stay.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import polars as pl

from segmenter.textops import PolarsOnly, known, python_regex, python_replacement

#: (pattern, replacement), applied in order; Rust regex syntax (polars) that Python's re accepts.
#: The e-mail pattern is ASCII on purpose: ``\w`` is Unicode and would swallow the Chinese
#: (or any other script's) text written right next to an address.
PATTERNS: tuple[tuple[str, str], ...] = (
    (r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b", "[iban]"),
    (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", "[email]"),
    (r"\d{9,}", "[number]"),
    (r"\+?\(?\d(?:[ ()./-]{0,2}\d){8,}", "[phone]"),
    (r"\d{5,}", "[number]"),
)

#: Dates (2021-05-03, 2021/5/3, 03.05.2021, 3/5/2021) are not personal data, but followed by a
#: time or a number ("2021-05-03 12:30") their digits look like a phone number. Before masking,
#: a private-use mark is put after the year, month and day so that no digit run crosses them;
#: the marks are removed afterwards. (The leading and trailing non-digit is captured and put
#: back, since the regex engine has no look-around; a second pass catches adjacent dates.)
_MARK = "\ue000"
#: C0 control characters but tab, newline and carriage return, and DEL: they become a space.
CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
_PROTECT: tuple[tuple[str, str], ...] = (
    (
        r"(^|\D)((?:19|20)\d\d)([-/.])(0?[1-9]|1[0-2])([-/.])(0?[1-9]|[12]\d|3[01])(\D|$)",
        f"${{1}}${{2}}{_MARK}${{3}}${{4}}{_MARK}${{5}}${{6}}{_MARK}${{7}}",
    ),
    (
        r"(^|\D)(0?[1-9]|[12]\d|3[01])([-/.])(0?[1-9]|1[0-2])([-/.])((?:19|20)\d\d)(\D|$)",
        f"${{1}}${{2}}{_MARK}${{3}}${{4}}{_MARK}${{5}}${{6}}{_MARK}${{7}}",
    ),
)


def mask_expr(expr: pl.Expr) -> pl.Expr:
    """Polars expression masking e-mail addresses, phone numbers and long digit runs.

    Dates such as ``2021-05-03`` (also with a time after them), short numbers and sizes are
    left as they are.
    """
    expr = expr.str.replace_all(CONTROL, " ").str.replace_all(_MARK, "", literal=True)
    for _ in range(2):
        for pattern, replacement in _PROTECT:
            expr = expr.str.replace_all(pattern, replacement)
    for pattern, replacement in PATTERNS:
        expr = expr.str.replace_all(pattern, replacement)
    return expr.str.replace_all(_MARK, "", literal=True)


def mask(text: str) -> str:
    """Mask one string (same rules as :func:`mask_expr`)."""
    out = pl.Series([text], dtype=pl.String).to_frame("t").select(mask_expr(pl.col("t")))
    return str(out.item())


_PROTECT_PY = tuple((python_regex(p), python_replacement(r)) for p, r in _PROTECT)
_PATTERNS_PY = tuple((python_regex(p), python_replacement(r)) for p, r in PATTERNS)
_MAY_MASK = re.compile(r"[\d@]")
_CONTROL_PY = python_regex(CONTROL)


def mask_python(text: str) -> str:
    """:func:`mask` with Python's ``re``: same rules, same result, no polars call.

    Raises :class:`~segmenter.textops.PolarsOnly` for characters Python's Unicode database does
    not know (polars may count them as digits).
    """
    text = _CONTROL_PY.sub(" ", known(text)).replace(_MARK, "")
    if not _MAY_MASK.search(text):  # every rule needs a digit or an "@"
        return text
    for _ in range(2):
        for pattern, replacement in _PROTECT_PY:
            text = pattern.sub(replacement, text)
    for pattern, replacement in _PATTERNS_PY:
        text = pattern.sub(replacement, text)
    return text.replace(_MARK, "")


#: Below this many distinct values a column is masked with Python's ``re`` (:func:`mask_python`,
#: same result): polars compiles its eleven patterns on every call, ~1 ms a column, which was a
#: fifth of placing one customer.
PYTHON_BELOW = 64


def mask_values(values: pl.Series) -> pl.Series:
    """:func:`mask_expr` of a string Series (a short one through :func:`mask_python`)."""
    if len(values) < PYTHON_BELOW:
        try:
            masked = [None if v is None else mask_python(v) for v in values]
            return pl.Series(values.name, masked, dtype=pl.String)
        except PolarsOnly:
            pass
    return values.to_frame("v").select(mask_expr(pl.col("v")))["v"].alias(values.name)


def mask_frame(frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """``frame`` with each of ``columns`` (those present, of type string) masked.

    Each distinct value is masked once (categories and item names repeat a lot).
    """
    out = []
    for column in columns:
        if column not in frame.columns or frame.schema[column] != pl.String:
            continue
        distinct = frame[column].drop_nulls().unique()
        masked = mask_values(distinct)
        changed = distinct != masked
        if bool(changed.any()):
            mapping = dict(zip(distinct.filter(changed), masked.filter(changed), strict=True))
            out.append(pl.col(column).replace(mapping))
    return frame.with_columns(out) if out else frame
