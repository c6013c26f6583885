"""Sweep of the discovery defaults on Online Retail (cached embeddings) and planted data.

Each setting is scored at k = 8 like the default in :mod:`benchmarks.retail` (value and
taste averaged over two seeds, stability between them) and by its ARI on planted archetypes.
The recommendation is the setting that meets both targets (>= 95% of RFM's value validity
and of text alone's taste lift) with the best planted ARI, or the one closest to the targets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.context import BenchContext
from benchmarks.metrics import stability
from benchmarks.recovery import planted_data, score_planted
from benchmarks.retail import (
    CUTOFF,
    RETAIL_FILE,
    TARGET_K,
    TARGET_SHARE,
    TemporalSplit,
    evaluate,
    fit_pipeline,
    load_online_retail,
    rfm_labels,
    temporal_split,
)
from segmenter.config import SegmenterConfig
from segmenter.features import RFM, behaviour
from segmenter.synthetic import ARCHETYPES

logger = logging.getLogger(__name__)

#: Settings tried, each a set of changes to the current defaults (``{}`` = the defaults).
GRID: tuple[dict[str, Any], ...] = (
    {},
    {"feature_weight": 0.0},
    {"feature_weight": 0.25},
    {"feature_weight": 0.5},
    {"feature_weight": 0.75},
    {"feature_weight": 1.0},
    {"feature_weight": 2.0},
    {"feature_weight": 4.0},
    {"umap_neighbors": 30},
    {"fusion_features": RFM},
    {"umap_dims": 5},
    {"umap_dims": 20},
    {"umap_dims": 0},
    {"pca_dims": 20},
)
#: Planted customers of the sweep (smaller than the planted section: one fit per setting).
SWEEP_PLANTED = 3_000


def _label(changes: dict[str, Any]) -> str:
    parts = []
    for key, value in changes.items():
        if key == "fusion_features":
            value = "RFM" if tuple(value) == RFM else "+".join(value)
        parts.append(f"{key}={value}")
    if parts:
        return ", ".join(parts)
    d = SegmenterConfig()
    return (
        f"defaults (feature_weight={d.feature_weight}, umap_neighbors={d.umap_neighbors}, "
        f"umap_dims={d.umap_dims}, pca_dims={d.pca_dims})"
    )


def score_setting(
    split: TemporalSplit,
    planted: tuple[Any, np.ndarray] | None,
    changes: dict[str, Any],
    ctx: BenchContext,
) -> dict[str, Any]:
    """Retail value/taste/stability at k = 8 and planted ARI of one setting."""
    base = SegmenterConfig(k=TARGET_K).replace(**changes)
    per_seed, reduce_seconds = [], []
    for seed in (ctx.seed, ctx.seed + 1):
        model = fit_pipeline(split.calibration, base.replace(seed=seed), ctx)
        per_seed.append(model.assignments_["segment"].to_numpy())
        reduce_seconds.append(model.timings_["reduce"])
    scores = [evaluate(split, labels) for labels in per_seed]
    row: dict[str, Any] = {
        "setting": _label(changes),
        "changes": {k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()},
        "value_eta2": float(np.mean([s["value_eta2"] for s in scores])),
        "repeat_eta2": float(np.mean([s["repeat_eta2"] for s in scores])),
        "taste_lift": float(np.mean([s["taste_lift"] for s in scores])),
        "stability": stability(per_seed[0], per_seed[1]),
        "reduce_seconds": float(np.mean(reduce_seconds)),
    }
    if planted is not None:
        data, labels = planted
        cfg = base.replace(seed=ctx.seed, k=len(ARCHETYPES))
        row["planted_ari"] = score_planted(data, labels, cfg, ctx)[0]["ari"]
    return row


def recommend(rows: list[dict[str, Any]], rfm_value: float, text_taste: float) -> dict[str, Any]:
    """The setting meeting both targets with the best planted ARI, else the closest one.

    Closeness is the smaller of the two shares of target reached.
    """

    def reach(row: dict[str, Any]) -> float:
        return min(
            row["value_eta2"] / (TARGET_SHARE * rfm_value),
            row["taste_lift"] / (TARGET_SHARE * text_taste),
        )

    meeting = [r for r in rows if reach(r) >= 1.0]
    if meeting:
        best = max(meeting, key=lambda r: (r.get("planted_ari", 0.0), reach(r)))
        return {"setting": best["setting"], "meets_targets": True, "reach": reach(best)}
    best = max(rows, key=reach)
    return {"setting": best["setting"], "meets_targets": False, "reach": reach(best)}


def run_sweep(
    ctx: BenchContext,
    grid: Sequence[dict[str, Any]] = GRID,
    split: TemporalSplit | None = None,
    planted_customers: int = SWEEP_PLANTED,
) -> dict[str, Any]:
    """Score every setting of ``grid``; ``split`` overrides Online Retail (tests)."""
    start = time.perf_counter()
    if split is None:
        path = ctx.data_file(RETAIL_FILE)
        if path is None:
            return {"status": "skipped", "note": f"skipped: {ctx.shared_data / RETAIL_FILE}"}
        data = load_online_retail(path)
        split = temporal_split(
            data, CUTOFF, max_customers=ctx.sizes.retail_customers, seed=ctx.seed
        )
    planted = planted_data(planted_customers, ctx.seed)
    rows = []
    for changes in grid:
        rows.append(score_setting(split, planted, changes, ctx))
        logger.info("sweep: %s", rows[-1])
    features = behaviour(split.calibration.events)  # as the pipeline: as of the last event
    rfm_value = float(
        np.mean(
            [
                evaluate(split, rfm_labels(features, TARGET_K, SegmenterConfig(seed=s)))[
                    "value_eta2"
                ]
                for s in (ctx.seed, ctx.seed + 1)
            ]
        )
    )
    text_rows = [r for r in rows if r["changes"].get("feature_weight", None) == 0.0]
    text_taste = text_rows[0]["taste_lift"] if text_rows else float("nan")
    for row in rows:
        row["value_share_of_rfm"] = row["value_eta2"] / rfm_value
        row["taste_share_of_text"] = row["taste_lift"] / text_taste
    return {
        "status": "ok",
        "k": TARGET_K,
        "planted_customers": planted_customers,
        "rfm_value_eta2": rfm_value,
        "text_taste_lift": text_taste,
        "rows": rows,
        "recommendation": recommend(rows, rfm_value, text_taste),
        "seconds": round(time.perf_counter() - start, 1),
    }
