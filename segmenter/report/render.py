"""The template context of the report: overview, segment cards, comparisons, heatmap, k curve.

The "Value and taste" section has its own module, :mod:`segmenter.report.value_taste`.
"""

from __future__ import annotations

from typing import Any

from segmenter.report.charts import (
    bar_chart,
    fmt_lift,
    fmt_number,
    heat_color,
    heat_text,
    line_chart,
    missing,
    segment_colors,
)
from segmenter.report.data import RunFolder
from segmenter.report.lineage import since_previous
from segmenter.report.value_taste import value_taste

#: (label, column, base column, lift column, number kind, higher is good for the business)
CARD_STATS = (
    ("Spend (median)", "median_monetary", "base_median_monetary", "money", True),
    ("Spend (mean)", "mean_monetary", "base_mean_monetary", "money", True),
    ("Order value", "median_avg_order_value", "base_median_avg_order_value", "money", True),
    ("Orders", "median_frequency", "base_median_frequency", "count", True),
    ("Days since last order", "median_recency_days", "base_median_recency_days", "days", False),
    ("Customer for", "median_tenure_days", "base_median_tenure_days", "days", True),
    ("Return rate (mean)", "mean_return_rate", "base_mean_return_rate", "rate", False),
)
TIMING = (
    ("Morning", "share_morning"),
    ("Afternoon", "share_afternoon"),
    ("Evening", "share_evening"),
    ("Night", "share_night"),
    ("Weekend", "share_weekend"),
)
#: Comparison charts: (title, column, base column, kind)
COMPARE = (
    ("Median spend", "median_monetary", "base_median_monetary", "money"),
    ("Median orders", "median_frequency", "base_median_frequency", "count"),
    ("Median order value", "median_avg_order_value", "base_median_avg_order_value", "money"),
    ("Median days since last order", "median_recency_days", "base_median_recency_days", "days"),
)
FEATURE_LABELS = {
    "monetary": "Spend",
    "frequency": "Orders",
    "avg_order_value": "Order value",
    "basket_size": "Basket size",
    "recency_days": "Days since last order",
    "tenure_days": "Tenure",
    "interpurchase_days": "Days between orders",
    "return_rate": "Return rate",
    "n_distinct_items": "Distinct items",
    "n_distinct_categories": "Distinct categories",
    "share_morning": "Morning",
    "share_afternoon": "Afternoon",
    "share_evening": "Evening",
    "share_night": "Night",
    "share_weekend": "Weekend",
    "n_reviews": "Reviews",
    "mean_rating": "Rating",
    "n_searches": "Searches",
    "n_views": "Views",
    "n_events": "Events",
}


def context(run: RunFolder) -> dict[str, Any]:
    """Everything the template shows, as plain values (the template escapes all text)."""
    meta = run.meta
    rows = run.segments.to_dicts()
    colors = segment_colors([int(r["id"]) for r in rows])
    segments = [_card(r, colors[int(r["id"])], run.n_customers) for r in rows]
    return {
        "title": "Customer segments",
        "overview": _overview(meta, run, segments),
        "segments": segments,
        "value_taste": value_taste(meta, run.axes, segments),
        "compare": _compare(rows, colors),
        "heatmap": _heatmap(rows, colors),
        "k_curve": _k_curve(meta),
        "lineage": since_previous(run.path, meta),
        "map": {
            "shown": run.points.height,
            "total": run.n_customers,
            "sampled": run.points.height < run.n_customers,
        },
        "version": (meta.get("versions") or {}).get("segmenter", ""),
    }


def map_payload(run: RunFolder, segments: list[dict[str, Any]]) -> dict[str, Any]:
    """Data of the interactive map (embedded as JSON; the script renders it as text)."""
    index = {s["id"]: i for i, s in enumerate(segments)}
    pts = run.points
    return {
        "segments": [{"name": s["name"], "color": s["color"]} for s in segments],
        "x": pts["x"].to_list(),
        "y": pts["y"].to_list(),
        "s": [index.get(int(s), 0) for s in pts["segment"].to_list()],
        "u": pts["user_id"].to_list(),
    }


def _overview(meta: dict[str, Any], run: RunFolder, segments: list[dict[str, Any]]) -> dict:
    data = meta.get("data") or {}
    quality = meta.get("quality") or {}
    config = meta.get("config") or {}
    dropped = data.get("dropped_rows") or {}
    first, last = str(data.get("first_event", "") or ""), str(data.get("last_event", "") or "")
    tiles = [
        ("Customers", fmt_number(data.get("customers", run.n_customers), "count")),
        ("Events", fmt_number(data.get("rows"), "count")),
        ("Segments", str(sum(1 for s in segments if not s["outlier"]))),
        ("Period", _period(first, last)),
    ]
    scores = [
        ("Silhouette", quality.get("silhouette"), "higher is better (−1 to 1)"),
        ("Davies-Bouldin", quality.get("davies_bouldin"), "lower is better"),
        ("Stability (ARI)", quality.get("stability"), "agreement across seeds, 0 to 1"),
    ]
    stats = [(name, f"{v:.2f}", hint) for name, v, hint in scores if _number(v)]
    encoder = config.get("encoder") or "all-MiniLM-L6-v2 (packaged)"
    k = config.get("k")
    settings = [
        ("Method", config.get("method")),
        ("Segments (k)", f"auto → {meta.get('k')}" if k == "auto" else k),
        ("Encoder", encoder),
        ("Encoder id", meta.get("encoder")),
        *_space_settings(config, meta),
        ("Seed", meta.get("seed", config.get("seed"))),
        ("Device", meta.get("device")),
        ("Deep head", _deep(meta.get("deep"))),
    ]
    return {
        "tiles": tiles,
        "scores": stats,
        "source": data.get("source", ""),
        "created": meta.get("created", ""),
        "dates": f"{first[:16]} – {last[:16]}" if first else "–",
        "dropped": [(str(k), fmt_number(v, "count")) for k, v in dropped.items()],
        "warnings": [str(w) for w in data.get("warnings") or []],
        "settings": [(name, str(v)) for name, v in settings if v not in (None, "")],
        "outliers": fmt_number(quality.get("n_outliers") or 0, "count"),
        "largest": _extreme(segments, max),
        "smallest": _extreme(segments, min),
        "sizes": [
            {"name": s["name"], "color": s["color"], "share": s["share_value"] * 100}
            for s in segments
        ],
    }


def _deep(report: Any) -> str | None:
    """What the deep head did, in one line (None when it was not asked for)."""
    if not isinstance(report, dict):
        return None
    separation = report.get("behaviour_separation") or {}
    before, after = separation.get("frozen"), separation.get("deep")
    scores = ""
    if _number(before) and _number(after) and before > 0:  # type: ignore[operator]
        scores = f"behaviour η² {after:.3f} against {before:.3f} frozen"
    verdict = report.get("acceptance") or {}
    if verdict:
        scores = "; ".join(x for x in (
            f"held-out neighbour agreement {verdict.get('agreement')}, separation "
            f"{verdict.get('separation')}, stability change {verdict.get('stability')}", scores,
        ) if x)  # fmt: skip
    guard = ""
    if report.get("collapse_guard_triggered"):
        guard = "; the collapse guard restored an earlier step"
    if report.get("accepted") is False:
        why = report.get("rejected_because") or "the fine-tuned segments were not better"
        shown = f" ({scores})" if scores else ""
        return f"tried; the frozen encoder and segments were kept: {why}{shown}{guard}"
    detail = "; ".join(x for x in (f"best step {report.get('best_step')}", scores) if x)
    return f"fine-tuned encoder in use ({detail}){guard}"


def _period(first: str, last: str) -> str:
    """``Dec 2010 – Dec 2011`` from two ISO timestamps."""
    from datetime import datetime

    try:
        a, b = (datetime.fromisoformat(t.strip()[:19]) for t in (first, last))
    except ValueError:
        return f"{first[:10]} – {last[:10]}" if first else "–"
    return f"{a:%b %Y} – {b:%b %Y}"


def _extreme(segments: list[dict[str, Any]], pick: Any) -> str:
    inside = [s for s in segments if not s["outlier"]]
    if not inside:
        return "–"
    s = pick(inside, key=lambda s: s["share_value"])
    return f"{s['share']} · {s['name']}"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not missing(value)


def _pairs(names: Any, *values: Any) -> list[tuple[Any, ...]]:
    names = list(names or [])
    cols = [list(v or []) + [None] * (len(names) - len(v or [])) for v in values]
    return list(zip(names, *cols, strict=False))


def _card(row: dict[str, Any], color: str, n_customers: int) -> dict[str, Any]:
    share = float(row.get("share") or (row["size"] / max(n_customers, 1)))
    stats = []
    for label, col, base_col, kind, good in CARD_STATS:
        if col not in row:
            continue
        value, base = row.get(col), row.get(base_col)
        lift: Any = row.get("lift_" + col)
        stats.append(
            {
                "label": label,
                "value": fmt_number(value, kind),
                "base": fmt_number(base, kind),
                "lift": fmt_lift(lift, higher_is_good=good),
            }
        )
    timing = []
    for label, col in TIMING:
        if col in row and not missing(row.get(col)):
            lift = row.get("lift_" + col)
            timing.append(
                {
                    "label": label,
                    "pct": round(100 * float(row[col])),
                    "lift": fmt_lift(lift, higher_is_good=None)["text"],
                    "strong": not missing(lift) and float(lift) >= 1.3 and row[col] >= 0.15,
                }
            )
    return {
        "id": int(row["id"]),
        "name": str(row.get("name") or f"Segment {row['id']}"),
        "outlier": int(row["id"]) < 0,
        "color": color,
        "size": fmt_number(row["size"], "count"),
        "share": f"{share:.1%}",
        "share_value": share,
        "stats": stats,
        "categories": _chips(row, "top_categories"),
        "products": _chips(row, "top_items"),
        "terms": [str(t) for t in row.get("top_terms") or []],
        "timing": timing,
        "channels": [
            {
                "name": str(n),
                "pct": round(100 * float(s or 0)),
                "lift": fmt_lift(lf, higher_is_good=None)["text"],
            }
            for n, s, lf in _pairs(
                row.get("channels"), row.get("channel_shares"), row.get("channel_lifts")
            )
        ],
        "representatives": [
            {"id": str(u), "document": str(d or "")}
            for u, d in _pairs(row.get("representative_ids"), row.get("representative_documents"))
        ],
    }


def _chips(row: dict[str, Any], prefix: str) -> list[dict[str, str]]:
    return [
        {
            "name": str(n),
            "lift": fmt_lift(lf, higher_is_good=None)["text"],
            "share": fmt_number(s, "rate"),
        }
        for n, s, lf in _pairs(
            row.get(prefix), row.get(prefix + "_share"), row.get(prefix + "_lift")
        )
    ]


def _compare(rows: list[dict[str, Any]], colors: dict[int, str]) -> list[dict[str, Any]]:
    charts = []
    for title, col, base_col, kind in COMPARE:
        if not rows or col not in rows[0]:
            continue
        bars = [(str(r["name"]), colors[int(r["id"])], r.get(col)) for r in rows]
        chart = bar_chart(bars, rows[0].get(base_col), kind)
        charts.append({"title": title, **chart})
    return charts


def _heatmap(rows: list[dict[str, Any]], colors: dict[int, str]) -> dict[str, Any]:
    if not rows:
        return {}
    present = [c[4:] for c in rows[0] if c.startswith("pct_")]
    known = [f for f in FEATURE_LABELS if f in present]
    columns = known + sorted(f for f in present if f not in FEATURE_LABELS)
    if not columns:
        return {}
    heads = [_feature_label(f) for f in columns]
    body = []
    for r in rows:
        cells = []
        for f, head in zip(columns, heads, strict=True):
            v: Any = r.get("pct_" + f)
            cells.append(
                {
                    "text": "" if missing(v) else f"{float(v):.0f}",
                    "bg": heat_color(v),
                    "fg": heat_text(v),
                    "title": f"{r['name']} · {head}: mean percentile "
                    + ("–" if missing(v) else f"{float(v):.0f}")
                    + " (all customers: 50)",
                }
            )
        body.append({"name": str(r["name"]), "color": colors[int(r["id"])], "cells": cells})
    return {"columns": heads, "rows": body}


def _feature_label(feature: str) -> str:
    if feature.startswith("share_channel_"):
        return "Channel: " + feature.removeprefix("share_channel_").replace("_", " ")
    return FEATURE_LABELS.get(feature, feature.replace("_", " ").capitalize())


def _k_curve(meta: dict[str, Any]) -> list[dict[str, Any]]:
    curve = [p for p in meta.get("k_curve") or [] if isinstance(p, dict) and "k" in p]
    if not curve:
        return []
    curve.sort(key=lambda p: p["k"])
    ks = [float(p["k"]) for p in curve]
    chosen: Any = meta.get("k")
    mark = float(chosen) if _number(chosen) else None
    charts = []
    scores = [
        (name, color, [p.get(key) for p in curve])
        for name, key, color in (
            ("silhouette", "silhouette", "#4269d0"),
            ("stability", "stability", "#ff725c"),
        )
        if any(_number(p.get(key)) for p in curve)
    ]
    if scores:
        chart = line_chart(ks, scores, mark=mark)
        charts.append({"title": "Silhouette and stability by k (higher is better)", **chart})
    inertia = [p.get("inertia") for p in curve]
    if any(_number(v) for v in inertia):
        chart = line_chart(ks, [("inertia", "#3ca951", inertia)], mark=mark)
        charts.append({"title": "Inertia by k (look for the elbow)", **chart})
    return [c for c in charts if c.get("lines")]


def _space_settings(config: dict[str, Any], meta: dict[str, Any]) -> list[tuple[str, Any]]:
    """How the segment space was built: value tiers x taste (k-means) or the fused space."""
    balance = meta.get("balance")
    if isinstance(balance, dict):
        return [
            ("Value tiers", f"{balance.get('n_tiers')} (chosen by {balance.get('chosen_by')})"),
            ("Taste space", f"PCA {config.get('pca_dims')} dims"),
        ]
    umap = (meta.get("reduction") or {}).get("umap_dims", config.get("umap_dims"))
    return [
        ("Feature weight", config.get("feature_weight")),
        ("PCA → UMAP dims", f"{config.get('pca_dims')} → {umap}"),
    ]
