"""Colours, number formats and server-side charts (inline SVG, no namespace URL) of the report.

Everything returned here is plain data for the template, which escapes it; nothing here builds
markup from customer-supplied text.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable, Sequence
from typing import Any

#: Observable 10, then Tableau's lighter companions: distinct, print-safe, colour-blind aware.
PALETTE = (
    "#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2", "#97bbf5",
    "#9c6b4e", "#9498a0", "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02",
)  # fmt: skip
OUTLIER_COLOR = "#b8bcc4"


def segment_colors(ids: Sequence[int]) -> dict[int, str]:
    """A colour per segment id; outliers (-1) grey; beyond the palette, golden-angle hues."""
    out: dict[int, str] = {}
    for i, seg in enumerate(s for s in ids if s >= 0):
        if i < len(PALETTE):
            out[seg] = PALETTE[i]
        else:
            r, g, b = colorsys.hls_to_rgb((i * 0.618034) % 1.0, 0.55, 0.55)
            out[seg] = f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"
    out.update({s: OUTLIER_COLOR for s in ids if s < 0})
    return out


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def fmt_number(value: Any, kind: str = "number") -> str:
    """``money`` 1,234 / 56.7; ``days`` 12 d; ``rate`` 3.4%; ``count`` 2.5; missing: –."""
    if missing(value):
        return "–"
    v = float(value)
    if kind == "rate":
        return f"{v:.1%}"
    if kind == "days":
        return f"{v:,.0f} d"
    if kind == "count":
        return f"{v:,.0f}" if v == int(v) or abs(v) >= 100 else f"{v:.1f}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def fmt_lift(lift: Any, *, higher_is_good: bool | None) -> dict[str, str]:
    """Lift text (×1.8) and a tone: good, bad or flat (within ±15% of the base)."""
    if missing(lift):
        return {"text": "–", "tone": "flat", "arrow": ""}
    v = float(lift)
    text = f"×{v:.2f}" if v < 10 else f"×{v:.0f}"
    if 1 / 1.15 <= v <= 1.15 or higher_is_good is None:
        tone = "flat"
    else:
        tone = "good" if (v > 1) == higher_is_good else "bad"
    return {"text": text, "tone": tone, "arrow": "▲" if v > 1.15 else "▼" if v < 1 / 1.15 else ""}


def heat_color(pct: Any) -> str:
    """Diverging colour of a mean percentile: blue below the base (50), orange above."""
    if missing(pct):
        return "#f3f4f6"
    t = max(-1.0, min(1.0, (float(pct) - 50.0) / 35.0))
    lo, mid, hi = (37, 99, 235), (247, 247, 247), (234, 88, 12)
    end = hi if t > 0 else lo
    a = abs(t) ** 0.9
    rgb = [round(m + (e - m) * a) for m, e in zip(mid, end, strict=True)]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def heat_text(pct: Any) -> str:
    """Dark text on light cells, white text on strong ones."""
    return "#ffffff" if not missing(pct) and abs(float(pct) - 50) > 24 else "#1f2937"


def bar_chart(rows: Sequence[tuple[str, str, Any]], base: Any, kind: str) -> dict[str, Any]:
    """Horizontal bars (name, colour, value) against a base line; widths in percent.

    When the largest amount of money dwarfs the typical one (over 8 times the median), the
    bars use a log scale, so that the small segments stay visible; ``log`` says so.
    """
    values = sorted(max(float(v), 0.0) for _, _, v in rows if not missing(v))
    top = max([*values, float(base or 0.0), 1e-12])
    typical = values[len(values) // 2] if values else 0.0
    log = bool(values) and top > 8 * max(typical, 1e-12) and kind == "money"

    def width(v: Any) -> float:
        if missing(v):
            return 0.0
        x = max(float(v), 0.0)
        share = math.log1p(x) / math.log1p(top) if log else x / top
        return round(100 * share, 2)

    return {
        "rows": [
            {"name": name, "color": color, "width": width(v), "label": fmt_number(v, kind)}
            for name, color, v in rows
        ],
        "base": None if missing(base) else width(base),
        "base_label": fmt_number(base, kind),
        "log": log,
    }


def line_chart(
    xs: Sequence[float],
    series: Sequence[tuple[str, str, Sequence[Any]]],
    *,
    mark: float | None = None,
    width: int = 560,
    height: int = 220,
    y_range: tuple[float, float] | None = None,
    y_format: Callable[[float], str] | None = None,
    hlines: Sequence[float] = (),
) -> dict[str, Any]:
    """An SVG line chart as coordinates for the template: polylines, dots, ticks, a marker.

    ``mark`` draws a dashed vertical line at that x; ``hlines`` dotted horizontal reference
    lines at those y; ``y_format`` writes the y tick labels (default: plain numbers).
    """
    pad_l, pad_r, pad_t, pad_b = 48, 16, 14, 34
    ys = [float(v) for _, _, vals in series for v in vals if not missing(v)]
    if not xs or not ys:
        return {}
    lo, hi = y_range or (min(ys), max(ys))
    if hi - lo < 1e-12:
        lo, hi = lo - 1, hi + 1
    x0, x1 = min(xs), max(xs)
    span = (x1 - x0) or 1.0

    def px(x: float) -> float:
        return round(pad_l + (x - x0) / span * (width - pad_l - pad_r), 1)

    def py(y: float) -> float:
        return round(height - pad_b - (y - lo) / (hi - lo) * (height - pad_t - pad_b), 1)

    lines = []
    for name, color, vals in series:
        pts = [(px(x), py(float(v))) for x, v in zip(xs, vals, strict=True) if not missing(v)]
        if pts:
            path = " ".join(f"{x},{y}" for x, y in pts)
            lines.append({"name": name, "color": color, "points": path, "dots": pts})
    yticks = [lo + (hi - lo) * i / 4 for i in range(5)]
    label = y_format or _tick
    return {
        "width": width,
        "height": height,
        "lines": lines,
        "xticks": [{"x": px(x), "label": f"{x:g}"} for x in xs],
        "yticks": [{"y": py(y), "label": label(y)} for y in yticks],
        "mark": None if mark is None else px(mark),
        "hlines": [py(y) for y in hlines if lo <= y <= hi],
        "plot": {"x0": pad_l, "x1": width - pad_r, "y0": pad_t, "y1": height - pad_b},
    }


def count_shade(share: Any) -> str:
    """Background of a count cell: the accent colour, stronger for a larger share (0 to 1)."""
    if missing(share) or float(share) <= 0:
        return "#ffffff"
    t = min(1.0, float(share)) ** 0.7
    mid, end = (247, 248, 250), (66, 105, 208)
    rgb = [round(m + (e - m) * t) for m, e in zip(mid, end, strict=True)]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _tick(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.0f}"
