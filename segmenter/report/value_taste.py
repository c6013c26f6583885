"""The "Value and taste" section: how the segments split value tiers and taste, and the cross-tabs.

A tiered run (run.json ``balance`` plus the ``value_tier`` and ``taste_group`` columns of
assignments.parquet) cuts its k segments into value tiers, each split by taste. This section says
so in one sentence, draws the trade-off curve the tier count was chosen on, and counts customers
per segment x value tier and value tier x taste group, so that a marketer can cross the two axes
when k segments cannot hold both. Runs without them (older runs, hdbscan) get no section.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from segmenter.report.charts import count_shade, line_chart, missing

#: A tier count "keeps" an axis at this share of its specialist or more.
KEEP = 0.9
VALUE_COLOR, TASTE_COLOR = "#3ca951", "#a463f2"
VALUE_HINT = (
    "Value kept: how well the segments tell apart what customers spend later, against segments "
    "built on recency, frequency, spend and tenure alone."
)
TASTE_HINT = (
    "Taste kept: how well they group customers who buy the same things, against segments built "
    "on taste alone. 100% = as good as that specialist (or better)."
)


def value_taste(
    meta: dict[str, Any], axes: pl.DataFrame, segments: list[dict[str, Any]]
) -> dict[str, Any]:
    """Template context of the section; empty (no section) when the run is not tiered.

    Parameters
    ----------
    meta : dict
        run.json; reads ``balance`` and ``k``.
    axes : polars.DataFrame
        :func:`~segmenter.report.data.axis_counts`: ``segment, value_tier, taste_group, n``.
    segments : list of dict
        The segment cards (``id``, ``name``, ``color``, ``outlier``), in display order.
    """
    balance = meta.get("balance")
    if not isinstance(balance, dict) or axes.height == 0:
        return {}
    n_tiers = balance.get("n_tiers")
    if not isinstance(n_tiers, int) or n_tiers < 1:
        return {}
    k = meta.get("k")
    if not isinstance(k, int) or k < 1:
        k = sum(1 for s in segments if not s["outlier"])
    curve = sorted(
        (r for r in balance.get("curve") or [] if isinstance(r, dict) and "n_tiers" in r),
        key=lambda r: r["n_tiers"],
    )
    return {
        "sentence": built_sentence(k, n_tiers, str(balance.get("chosen_by")), curve),
        "kept": _kept(curve, n_tiers),
        "consensus": CONSENSUS if balance.get("consensus") else None,
        "verdict": verdict(k, curve),
        "hints": (VALUE_HINT, TASTE_HINT),
        "keep": f"{KEEP:.0%}",
        "chart": _chart(curve, n_tiers),
        "by_segment": _by_segment(axes, segments),
        "crossing": _crossing(axes, segments),
    }


CONSENSUS = (
    "Several splits by taste fit your customers almost equally well, so the segments are the "
    "consensus of many k-means runs: another seed gives the same segments."
)


def built_sentence(k: int, n_tiers: int, chosen_by: str, curve: list[dict[str, Any]]) -> str:
    """How the k segments were built, and who chose it, in one sentence."""
    segs = plural(k, "segment")
    if n_tiers <= 1:
        built = f"All {segs} follow taste"
    elif n_tiers >= k:
        built = f"All {segs} are value tiers, with no split by taste"
    else:
        built = f"{segs} = {n_tiers} value tiers, split by taste"
    if chosen_by == "user":
        return f"{built} (chosen by you: --value-tiers {n_tiers})."
    if not _measured(curve, "value"):
        why = "value could not be checked on your data, so no segments are spent on value tiers"
    elif not _measured(curve, "taste"):
        why = "taste could not be checked on your data, so all segments are value tiers"
    elif n_tiers <= 1:
        why = "your data's value is carried by taste"
    else:
        why = "chosen from your data: the split that keeps the most of both value and taste"
    return f"{built} ({why})."


def verdict(k: int, curve: list[dict[str, Any]]) -> str | None:
    """What to do when no tier count keeps both axes; None when one does or it is unknown."""
    if not (_measured(curve, "value") and _measured(curve, "taste")):
        return None
    if any(_at_least(r.get("value"), KEEP) and _at_least(r.get("taste"), KEEP) for r in curve):
        return None
    return (
        f"No number of value tiers keeps both value and taste at {KEEP:.0%} or more: one set of "
        f"{plural(k, 'segment')} cannot hold both here. To work on both, cross the two axes: "
        "every customer's value_tier and taste_group columns in assignments.parquet (counted in "
        "the table below)."
    )


def plural(n: int, noun: str) -> str:
    """``1 value tier``, ``4 value tiers``, ``1,234 customers``."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _measured(curve: list[dict[str, Any]], axis: str) -> bool:
    return any(not missing(r.get(axis)) for r in curve)


def _at_least(value: Any, floor: float) -> bool:
    return not missing(value) and float(value) >= floor


def _share_text(ratio: Any) -> str:
    if missing(ratio):
        return "–"
    return "all" if float(ratio) >= 1 else f"{float(ratio):.0%}"


def _kept(curve: list[dict[str, Any]], n_tiers: int) -> str | None:
    """What the chosen tier count keeps of each specialist, in words."""
    row = next((r for r in curve if r["n_tiers"] == n_tiers), None)
    if row is None or (missing(row.get("value")) and missing(row.get("taste"))):
        return None
    parts = [
        f"{_share_text(row.get(axis))} of the {axis} that {who} find"
        for axis, who in (("value", "value-only segments"), ("taste", "taste-only segments"))
        if not missing(row.get(axis))
    ]
    return "These segments keep " + " and ".join(parts) + "."


def _chart(curve: list[dict[str, Any]], n_tiers: int) -> dict[str, Any]:
    """Value and taste kept by tier count; ratios above 1 drawn at 100% (as good or better)."""
    if len(curve) < 2:
        return {}
    xs = [float(r["n_tiers"]) for r in curve]

    def kept(axis: str) -> list[Any]:
        return [None if missing(r.get(axis)) else min(float(r[axis]), 1.0) for r in curve]

    series = [
        (name, color, kept(axis))
        for name, axis, color in (
            ("value kept", "value", VALUE_COLOR),
            ("taste kept", "taste", TASTE_COLOR),
        )
        if _measured(curve, axis)
    ]
    chart = line_chart(
        xs, series, mark=float(n_tiers), y_range=(0.0, 1.0), y_format=lambda y: f"{y:.0%}",
        hlines=(KEEP,),
    )  # fmt: skip
    if not chart.get("lines"):
        return {}
    return {"title": "Value and taste kept, by number of value tiers", **chart}


def _tier_label(tier: int, top: int) -> str:
    return f"{tier} · lowest" if tier == 0 else f"{tier} · top" if tier == top else str(tier)


def _cells(counts: list[int], total: int, of: str) -> list[dict[str, str]]:
    cells = []
    for n in counts:
        share = n / total if total else 0.0
        cells.append(
            {
                "text": f"{n:,}" if n else "·",
                "bg": count_shade(share),
                "fg": "#ffffff" if share > 0.55 else "#1f2937",
                "title": f"{plural(n, 'customer')}, {share:.0%} of {of}",
            }
        )
    return cells


def _by_segment(axes: pl.DataFrame, segments: list[dict[str, Any]]) -> dict[str, Any]:
    """Customers per segment (rows) and value tier (columns)."""
    tiers = sorted(axes["value_tier"].unique().to_list())
    table = axes.group_by("segment", "value_tier").agg(pl.col("n").sum())
    counts = {(s, t): n for s, t, n in table.iter_rows()}
    rows = []
    for seg in segments:
        line = [counts.get((seg["id"], t), 0) for t in tiers]
        if sum(line):
            rows.append(
                {
                    "name": seg["name"],
                    "color": seg["color"],
                    "cells": _cells(line, sum(line), "the segment"),
                    "total": f"{sum(line):,}",
                }
            )
    return {"columns": [_tier_label(t, max(tiers)) for t in tiers], "rows": rows}


def _crossing(axes: pl.DataFrame, segments: list[dict[str, Any]]) -> dict[str, Any]:
    """Customers per value tier (rows, top first) and taste group (columns).

    Each taste group's header carries the colour of the segment most of its customers are in.
    """
    tiers = sorted(axes["value_tier"].unique().to_list(), reverse=True)
    groups = sorted(axes["taste_group"].unique().to_list())
    table = axes.group_by("value_tier", "taste_group").agg(pl.col("n").sum())
    counts = {(t, g): n for t, g, n in table.iter_rows()}
    by_id = {s["id"]: s for s in segments}
    columns = []
    for g in groups:
        members = axes.filter(pl.col("taste_group") == g)
        where = members.group_by("segment").agg(pl.col("n").sum()).sort("n", "segment")
        seg, n = where.row(-1)
        home = by_id.get(seg, {"name": f"Segment {seg}", "color": "#b8bcc4"})
        share = n / max(int(members["n"].sum()), 1)
        columns.append(
            {
                "label": str(g),
                "color": home["color"],
                "title": f"Taste group {g}: {share:.0%} of its customers are in {home['name']}",
            }
        )
    rows = []
    for t in tiers:
        line = [counts.get((t, g), 0) for g in groups]
        rows.append(
            {
                "name": _tier_label(t, tiers[0]),
                "cells": _cells(line, sum(line), f"value tier {t}"),
                "total": f"{sum(line):,}",
            }
        )
    return {"columns": columns, "rows": rows}
