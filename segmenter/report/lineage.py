"""The report's "Since the previous run" section: matched, new and retired segments, the
migration matrix, size over time from the history, and the drift verdict."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import polars as pl

from segmenter.report.charts import count_shade, line_chart, segment_colors

logger = logging.getLogger(__name__)

#: the migration table's codes for new and churned customers (segmenter.lineage.migrations)
NONE = -2


def _read(path: Path) -> pl.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pl.read_parquet(path)
    except Exception as exc:  # a damaged extra table leaves the section out, not the report
        logger.warning("report: %s could not be read (%s); section left out", path, exc)
        return None


def since_previous(path: Path, meta: dict[str, Any]) -> dict[str, Any] | None:
    """Everything the section shows, or None for a run without a previous run or history."""
    lineage = meta.get("lineage") or {}
    moves = _read(path / "migrations.parquet")
    history = _read(path / "history.parquet")
    runs = 0 if history is None else history["run"].n_unique()
    if moves is None and runs < 2:
        return None
    out: dict[str, Any] = {
        "previous": lineage.get("previous"),
        "kept": lineage.get("kept"),
        "new": lineage.get("new") or [],
        "retired": lineage.get("retired") or [],
        "splits": sorted((lineage.get("splits") or {}).items()),
        "merges": sorted((lineage.get("merges") or {}).items()),
        "moved": lineage.get("moved_share"),
        "drift": lineage.get("drift"),
        "matrix": _matrix(moves) if moves is not None else None,
        "sizes": _sizes(history) if history is not None and runs >= 2 else None,
    }
    return out


def _label(seg: int, name: str) -> str:
    return name if seg == NONE else f"{seg} · {name}"


def _matrix(moves: pl.DataFrame) -> dict[str, Any]:
    rows = moves.select("from_segment", "from_name").unique().sort("from_segment").rows()
    cols = moves.select("to_segment", "to_name").unique().sort("to_segment").rows()
    cells = {(r["from_segment"], r["to_segment"]): r for r in moves.to_dicts()}
    body = []
    for f, fname in rows:
        total = sum(c["customers"] for (a, _), c in cells.items() if a == f) or 1
        line = []
        for t, tname in cols:
            c = cells.get((f, t))
            n = 0 if c is None else int(c["customers"])
            line.append({
                "text": f"{n:,}" if n else "", "bg": count_shade(n / total),
                "fg": "#ffffff" if n / total > 0.5 else "#1f2430",
                "title": f"{_label(f, fname)} -> {_label(t, tname)}: {n:,} customers"
                + ("" if c is None else f", spend {c['spend']:,.0f} in the new period"),
            })  # fmt: skip
        body.append({"name": _label(f, fname), "cells": line})
    return {"columns": [_label(t, n) for t, n in cols], "rows": body}


def _sizes(history: pl.DataFrame) -> dict[str, Any]:
    runs = history.select("period_end", "run").unique().sort("period_end", "run")
    order = {r: i for i, r in enumerate(runs["run"].to_list())}
    ids = sorted(history["segment"].unique().to_list())
    colors = segment_colors(ids)
    series = []
    for sid in ids:
        part = history.filter(pl.col("segment") == sid)
        name = str(part.sort("period_end")["name"].to_list()[-1])
        shares = {
            order[r]: s for r, s in zip(part["run"].to_list(), part["share"].to_list(), strict=True)
        }
        values = [shares.get(i) for i in range(len(order))]
        series.append((f"{sid} · {name}", colors[sid], values))
    chart = line_chart(list(range(len(order))), series, y_format=lambda v: f"{100 * v:.0f}%")
    for tick, end in zip(chart.get("xticks", []), runs["period_end"].to_list(), strict=False):
        tick["label"] = end
    chart["title"] = "Share of customers per segment, run by run"
    return {"chart": chart, "periods": runs["period_end"].to_list()}
