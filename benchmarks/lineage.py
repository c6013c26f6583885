"""Segments over time (issue 16): stable ids, migrations and drift on an evolving synthetic
shop with known truth, and Online Retail refitted month by month.

Measures read the library's outputs only: the aligned assignments, the alignment's summary
(``Lineage.summary``), the migration table and the drift check's verdict.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from benchmarks.context import BenchContext
from segmenter.config import SegmenterConfig
from segmenter.data import EventData, load_events
from segmenter.evolving import PLANTED, evolve, same_distribution
from segmenter.lineage import carry_forward
from segmenter.lineage.carry import as_previous
from segmenter.lineage.drift import check_drift
from segmenter.lineage.migrations import moved_share
from segmenter.lineage.previous import PreviousRun
from segmenter.model import Segmenter

logger = logging.getLogger(__name__)

RETAIL_FILE = "online_retail/online_retail.csv.gz"
RETAIL_CUTS = [datetime(2011, m, 1) for m in range(6, 13)]
RETAIL_K = 8


def _fit(data: EventData, k: int, ctx: BenchContext) -> Segmenter:
    config = SegmenterConfig(k=k, seed=ctx.seed)
    return Segmenter(config, encoder=ctx.encoder, cache=ctx.cache, progress=False).fit(data)


def _majority(assignments: pl.DataFrame, truth: pl.DataFrame) -> dict[str, int]:
    """Planted archetype -> the stable id most of its customers carry."""
    both = assignments.select("user_id", "segment").join(truth, on="user_id")
    rows = both.group_by("archetype").agg(pl.col("segment").mode().sort().first().alias("id"))
    return dict(rows.iter_rows())


def run_synthetic(ctx: BenchContext, n_customers: int) -> dict[str, Any]:
    periods = evolve(n_customers, seed=ctx.seed)
    previous: PreviousRun | None = None
    models: list[Segmenter] = []
    ids: list[dict[str, int]] = []
    rows: list[dict[str, Any]] = []
    kept = total = right = movers = 0
    for p in periods:
        data = load_events(p.tables["events"], users=p.tables["users"])
        k = p.truth["archetype"].n_unique()
        model = _fit(data, k, ctx)
        lineage = carry_forward(model, data, previous)
        now = _majority(model.assignments_, p.truth)
        row: dict[str, Any] = {"period": p.index, "k": k, "customers": data.n_users,
                               "majority_ids": now, **lineage.summary}  # fmt: skip
        if previous is not None:
            before = ids[-1]
            persisting = [a for a in now if a in before]
            ok = [a for a in persisting if now[a] == before[a]]
            kept, total = kept + len(ok), total + len(persisting)
            row["ids_kept"] = f"{len(ok)}/{len(persisting)}"
            moved = p.truth.filter(pl.col("moved"))
            cells = (
                previous.assignments.select("user_id", pl.col("segment").alias("was"))
                .join(
                    model.assignments_.select("user_id", pl.col("segment").alias("now")),
                    on="user_id",
                )
                .join(moved, on="user_id")
            )
            hit = cells.filter(
                pl.col("was") == pl.col("from_archetype").replace_strict(before, default=-9)
            ).filter(pl.col("now") == pl.col("archetype").replace_strict(now, default=-9))
            right, movers = right + hit.height, movers + moved.height
            row["movers_right"] = f"{hit.height}/{moved.height}"
            drift = check_drift(models[-1], data, previous=previous.assignments)
            row["drift"] = drift.to_dict()
        planted = PLANTED.get(p.index)
        if planted:
            row["planted"] = planted
            row["events_as_planted"] = _events_as_planted(planted, lineage.summary, ids[-1], now)
        rows.append(row)
        ids.append(now)
        models.append(model)
        previous = as_previous(model, data, lineage)
    stable = same_distribution(n_customers, seed=ctx.seed)
    stable_data = load_events(stable["events"], users=stable["users"])
    ref = models[0]
    stable_check = check_drift(ref, stable_data, previous=ref.assignments_).to_dict()
    return {
        "customers": n_customers,
        "periods": rows,
        "ids_kept": kept / max(total, 1),
        "movers_in_right_cell": right / max(movers, 1),
        "drift_same_distribution": stable_check,
        "drift_verdicts_changed": [r["drift"]["verdict"] for r in rows if "drift" in r],
    }


def _events_as_planted(
    planted: dict[str, Any], summary: dict[str, Any], before: dict[str, int], now: dict[str, int]
) -> dict[str, bool]:
    source, halves = planted["split"]
    split_ids = {now.get(h) for h in halves}
    split_ok = before[source] in split_ids and any(
        summary["splits"].get(str(i)) == before[source] for i in split_ids if i != before[source]
    )
    return {
        "split": bool(split_ok),
        "retired": before[planted["retired"]] in summary["retired"],
        "new": now.get(planted["new"]) in summary["new"],
    }


def _share(mask: pl.Series) -> float:
    return round(int(mask.sum()) / max(mask.len(), 1), 4)


def run_retail_months(ctx: BenchContext) -> dict[str, Any]:
    path = ctx.shared_data / RETAIL_FILE
    if not path.is_file():
        return {"status": "skipped", "note": f"{path} is missing"}
    full = load_events(path, preset="online-retail")
    previous, prev_raw, prev_model, rows = None, None, None, []
    last_moves = pl.DataFrame()
    for cut in RETAIL_CUTS:
        events = full.events.filter(pl.col("timestamp") < cut)
        data = load_events(events, preset=None)
        start = time.perf_counter()
        model = _fit(data, RETAIL_K, ctx)
        raw = model.assignments_.select("user_id", "segment")
        lineage = carry_forward(model, data, previous)
        row: dict[str, Any] = {"cut": cut.date().isoformat(), "customers": data.n_users,
                               "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
        if previous is not None and prev_raw is not None and prev_model is not None:
            both = prev_raw.join(raw, on="user_id", suffix="_new")
            row.update(
                kept=len(lineage.alignment.matched) if lineage.alignment else 0,
                new=lineage.summary["new"], retired=lineage.summary["retired"],
                moved_aligned=lineage.summary["moved_share"],
                moved_unaligned=_share(both["segment"] != both["segment_new"]),
                moved_check=round(moved_share(lineage.migrations), 4),  # type: ignore[arg-type]
                drift=check_drift(prev_model, data, previous=previous.assignments).verdict,
            )  # fmt: skip
            last_moves = lineage.migrations if lineage.migrations is not None else last_moves
        rows.append(row)
        previous, prev_raw, prev_model = as_previous(model, data, lineage), raw, model
    refits = [r for r in rows if "kept" in r]
    return {
        "status": "ok",
        "k": RETAIL_K,
        "refits": rows,
        "ids_kept": sum(r["kept"] for r in refits) / max(RETAIL_K * len(refits), 1),
        "moved_aligned_mean": float(np.mean([r["moved_aligned"] for r in refits])),
        "moved_unaligned_mean": float(np.mean([r["moved_unaligned"] for r in refits])),
        "last_migrations": last_moves.sort("customers", descending=True).head(20).to_dicts(),
    }


def run_lineage(ctx: BenchContext, _: EventData | None = None) -> dict[str, Any]:
    n = 300 if ctx.suite == "smoke" else 1500
    out: dict[str, Any] = {"status": "ok", "synthetic": run_synthetic(ctx, n)}
    if ctx.suite != "smoke":
        out["retail_monthly"] = run_retail_months(ctx)
    return out
