"""Mask personal data in free text before it enters a customer document."""

from __future__ import annotations

import polars as pl

#: (pattern, replacement), applied in order; Rust regex syntax (polars) that Python's re accepts.
PATTERNS: tuple[tuple[str, str], ...] = (
    (r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", "[email]"),
    (r"\d{9,}", "[number]"),
    (r"\+?\(?\d(?:[ ()./-]{0,2}\d){8,}", "[phone]"),
    (r"\d{5,}", "[number]"),
)


def mask_expr(expr: pl.Expr) -> pl.Expr:
    """Polars expression masking e-mail addresses, phone numbers and long digit runs."""
    for pattern, replacement in PATTERNS:
        expr = expr.str.replace_all(pattern, replacement)
    return expr


def mask(text: str) -> str:
    """Mask one string (same rules as :func:`mask_expr`)."""
    out = pl.Series([text]).to_frame("t").select(mask_expr(pl.col("t")))
    return str(out.item())
