"""Online Retail with a temporal split: do segments separate what a business acts on?

Behaviour before the cut-off (2011-09-01) is what the systems see; what customers spend and buy
after it is the outcome. Definitions (the same for every system):

* value validity: rank eta-squared of each calibration customer's future net spend (purchases
  minus returns after the cut-off; 0 for customers who bought nothing), average ranks for ties;
  and eta-squared of "bought again" (1 when the customer made any purchase after the cut-off).
* taste lift: each segment's top-50 products are the 50 items with the most distinct buyers
  among its members before the cut-off (ties by item id). The hit rate is the share of the
  members' distinct post-cut-off (customer, item) purchases whose item is in their segment's
  top-50 (a micro-average over purchases). Lift = that hit rate / the hit rate of the global
  top-50. HDBSCAN outliers (-1) are scored with the global list.
* stability: adjusted Rand index between the runs with seeds ``seed`` and ``seed + 1``.

Value and taste are the means over the two seeds.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from benchmarks.context import BenchContext
from benchmarks.metrics import eta_squared, rank_eta_squared, stability, taste_lift
from segmenter.cluster import KMeansClusterer
from segmenter.config import SegmenterConfig
from segmenter.data import EventData, load_events
from segmenter.errors import SegmenterError
from segmenter.features import RFM
from segmenter.fuse import FeatureScaler
from segmenter.model import Segmenter

logger = logging.getLogger(__name__)

RETAIL_FILE = "online_retail/online_retail.csv.gz"
CUTOFF = datetime(2011, 9, 1)
N_TOP = 50
TARGET_K = 8
#: The default must reach this share of RFM's value validity and of text-alone's taste lift.
TARGET_SHARE = 0.95


@dataclass
class TemporalSplit:
    """Calibration events and post-cut-off outcomes of the same customers.

    Attributes
    ----------
    calibration : EventData
        Events before the cut-off; its customers are the benchmark's customers.
    customers : list of str
        Calibration customers, sorted (the row order of :func:`segmenter.features.behaviour`).
    future_spend : ndarray of shape (n_customers,)
        Net spend after the cut-off (0 when none).
    bought_again : ndarray of shape (n_customers,)
        1.0 when the customer bought anything after the cut-off, else 0.0.
    past : ndarray of shape (n_pairs, 2), object
        Distinct (customer index, item id) purchases before the cut-off.
    future : dict of int -> set of str
        Distinct items each customer bought after the cut-off (buyers only).
    cutoff : datetime
    """

    calibration: EventData
    customers: list[str]
    future_spend: np.ndarray
    bought_again: np.ndarray
    past: np.ndarray
    future: dict[int, set[str]]
    cutoff: datetime


def load_online_retail(path: str | os.PathLike[str]) -> EventData:
    """The UCI Online Retail file through the ``online-retail`` preset."""
    return load_events(path, preset="online-retail")


def temporal_split(
    data: EventData, cutoff: datetime, *, max_customers: int | None = None, seed: int = 0
) -> TemporalSplit:
    """Split events at ``cutoff``: behaviour before, outcomes after.

    Parameters
    ----------
    data : EventData
        All events (canonical; ``event_type`` purchase/return, ``amount``, ``item_id``).
    cutoff : datetime
        Events strictly before it are the calibration period.
    max_customers : int, optional
        Keep a seeded random sample of this many calibration customers (smoke runs).
    seed : int
        Seed of that sample.
    """
    events = data.events
    before = events.filter(pl.col("timestamp") < cutoff)
    customers = sorted(before["user_id"].unique().to_list())
    if max_customers is not None and len(customers) > max_customers:
        rng = np.random.default_rng(seed)
        customers = sorted(rng.choice(customers, size=max_customers, replace=False).tolist())
        keep = pl.Series(customers, dtype=pl.String)
        before = before.filter(pl.col("user_id").is_in(keep.implode()))
    index = pl.DataFrame({"user_id": customers, "_idx": np.arange(len(customers))})
    after = events.filter(pl.col("timestamp") >= cutoff).join(index, on="user_id", how="inner")
    buy, ret = pl.col("event_type") == "purchase", pl.col("event_type") == "return"
    outcome = after.group_by("_idx").agg(
        (
            pl.col("amount").filter(buy).sum().fill_null(0)
            - pl.col("amount").filter(ret).abs().sum().fill_null(0)
        ).alias("spend"),
        buy.any().alias("again"),
    )
    spend = np.zeros(len(customers))
    again = np.zeros(len(customers))
    idx = outcome["_idx"].to_numpy()
    spend[idx] = outcome["spend"].fill_null(0.0).to_numpy()
    again[idx] = outcome["again"].cast(pl.Float64).to_numpy()
    users = data.users
    if users is not None:
        users = users.filter(pl.col("user_id").is_in(pl.Series(customers).implode()))
    past = (
        before.filter(buy & pl.col("item_id").is_not_null())
        .join(index, on="user_id")
        .select("_idx", "item_id")
        .unique()
        .sort("_idx", "item_id")
    )
    fut = (
        after.filter(buy & pl.col("item_id").is_not_null())
        .select("_idx", "item_id")
        .unique()
        .group_by("_idx")
        .agg("item_id")
    )
    future = {int(i): set(items) for i, items in fut.iter_rows()}
    return TemporalSplit(
        calibration=EventData(before, users, source=f"{data.source} before {cutoff:%Y-%m-%d}"),
        customers=customers,
        future_spend=spend,
        bought_again=again,
        past=past.to_numpy(),
        future=future,
        cutoff=cutoff,
    )


def span_cutoff(data: EventData, share: float = 0.75) -> datetime:
    """The time ``share`` of the way from the first to the last event (synthetic splits)."""
    first: datetime = data.events["timestamp"].min()  # type: ignore[assignment]
    last: datetime = data.events["timestamp"].max()  # type: ignore[assignment]
    return first + (last - first) * share


def evaluate(split: TemporalSplit, labels: np.ndarray) -> dict[str, float]:
    """Value validity and taste lift of one segmentation of the split's customers."""
    taste = taste_lift(split.past, split.future, labels, N_TOP)
    return {
        "value_eta2": rank_eta_squared(split.future_spend, labels),
        "repeat_eta2": eta_squared(split.bought_again, labels),
        "taste_lift": taste["lift"],
        "hit_rate": taste["segment_hit_rate"],
        "global_hit_rate": taste["global_hit_rate"],
    }


def fit_pipeline(data: EventData, config: SegmenterConfig, ctx: BenchContext) -> Segmenter:
    """Our pipeline on ``data`` with the benchmark's encoder and cache."""
    model = Segmenter(config, encoder=ctx.encoder, cache=ctx.cache, progress=ctx.progress)
    return model.fit(data)


def labels_for_k(model: Segmenter, k: int, data: EventData) -> np.ndarray:
    """Labels the pipeline gives ``data`` with ``k`` segments (the fitted model's own at its
    k; otherwise a fit with ``config.replace(k=k)``, its embeddings from the cache)."""
    cfg = model.config_
    if k == model.k_ and cfg.method == "kmeans":
        return np.asarray(model.assignments_["segment"].to_numpy())
    return _refit(model, data, k=k, method="kmeans")


def hdbscan_labels(model: Segmenter, data: EventData) -> np.ndarray:
    """Labels of the HDBSCAN variant (``method="hdbscan"``) of the same configuration."""
    return _refit(model, data, method="hdbscan")


def _refit(model: Segmenter, data: EventData, **changes: Any) -> np.ndarray:
    again = Segmenter(
        model.config_.replace(**changes), encoder=model.encoder, cache=model.cache, progress=False
    )
    return np.asarray(again.fit(data).assignments_["segment"].to_numpy())


def rfm_labels(features: pl.DataFrame, k: int, config: SegmenterConfig) -> np.ndarray:
    """The industry default: k-means on standardized recency, log frequency, log spend, tenure."""
    X = FeatureScaler(RFM).fit(features).transform(features)
    km = KMeansClusterer(
        k, n_restarts=config.n_restarts, n_iter=config.n_iter, random_state=config.seed
    )
    return km.fit(X).labels_


def aligned(model: Segmenter, split: TemporalSplit, labels: np.ndarray) -> np.ndarray:
    """``labels`` of the model's customers, put in the order of ``split.customers``."""
    order = model.features_["user_id"].to_list()
    if order != split.customers:
        position = {u: i for i, u in enumerate(order)}
        return labels[[position[u] for u in split.customers]]
    return labels


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}


def score_systems(
    split: TemporalSplit,
    ctx: BenchContext,
    *,
    base: SegmenterConfig | None = None,
    ks: tuple[int, ...] = (4, 8, 12),
    text: bool = True,
    rfm: bool = True,
    density: bool = True,
) -> dict[str, Any]:
    """Score our default, text alone, RFM and our HDBSCAN variant for each k.

    Returns
    -------
    dict of system name -> {"config", "by_k": {k: metrics + stability}} (HDBSCAN: one entry
    with ``n_segments`` and ``outlier_share`` instead of ``by_k``).
    """
    base = base or SegmenterConfig()
    fitted_k = TARGET_K if TARGET_K in ks else ks[0]
    runs: dict[str, list[dict[int, np.ndarray]]] = {}
    out: dict[str, Any] = {}
    variants = {"default": base}
    if text:
        variants["text"] = base.replace(feature_weight=0.0)
    models: dict[str, list[Segmenter]] = {name: [] for name in variants}
    for seed in (ctx.seed, ctx.seed + 1):
        for name, cfg in variants.items():
            model = fit_pipeline(split.calibration, cfg.replace(seed=seed, k=fitted_k), ctx)
            models[name].append(model)
            runs.setdefault(name, []).append(
                {k: aligned(model, split, labels_for_k(model, k, split.calibration)) for k in ks}
            )
        if rfm:
            features = models["default"][-1].features_
            cfg = base.replace(seed=seed)
            runs.setdefault("rfm", []).append(
                {k: aligned(models["default"][-1], split, rfm_labels(features, k, cfg)) for k in ks}
            )
    for name, per_seed in runs.items():
        by_k: dict[str, Any] = {}
        for k in ks:
            scores = _mean([evaluate(split, labels[k]) for labels in per_seed])
            scores["stability"] = stability(per_seed[0][k], per_seed[1][k])
            by_k[str(k)] = scores
        config = variants[name].to_dict() if name in variants else {"features": list(RFM)}
        out[name] = {"config": _short_config(config), "by_k": by_k}
    if density:
        out["hdbscan"] = _score_density(split, models["default"])
    return out


def _score_density(split: TemporalSplit, models: list[Segmenter]) -> dict[str, Any]:
    per_seed = []
    for model in models:
        try:
            per_seed.append(aligned(model, split, hdbscan_labels(model, split.calibration)))
        except SegmenterError as exc:  # no dense segment at all (tiny smoke inputs)
            return {"config": {"method": "hdbscan"}, "note": str(exc)}
    scores = _mean([evaluate(split, labels) for labels in per_seed])
    scores["stability"] = stability(per_seed[0], per_seed[1])
    scores["n_segments"] = float(np.mean([len(set(lab[lab >= 0].tolist())) for lab in per_seed]))
    scores["outlier_share"] = float(np.mean([(lab < 0).mean() for lab in per_seed]))
    return {"config": {"method": "hdbscan"}, "scores": scores}


def _short_config(config: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "method",
        "feature_weight",
        "fusion_features",
        "pca_dims",
        "umap_dims",
        "umap_neighbors",
        "features",
    )
    return {k: v for k, v in config.items() if k in keep}


def target_check(systems: dict[str, Any], k: int = TARGET_K) -> dict[str, Any]:
    """Where the default stands against the targets at ``k`` (same run).

    The default should reach :data:`TARGET_SHARE` of RFM's rank eta-squared and of text
    alone's taste lift.
    """
    ours = systems["default"]["by_k"][str(k)]
    rfm = systems["rfm"]["by_k"][str(k)]
    text = systems["text"]["by_k"][str(k)]
    value = ours["value_eta2"] / rfm["value_eta2"] if rfm["value_eta2"] > 0 else float("nan")
    taste = ours["taste_lift"] / text["taste_lift"] if text["taste_lift"] > 0 else float("nan")
    return {
        "k": k,
        "value_share_of_rfm": value,
        "taste_share_of_text": taste,
        "required_share": TARGET_SHARE,
        "met": bool(value >= TARGET_SHARE and taste >= TARGET_SHARE),
    }


def run_retail(ctx: BenchContext, data: EventData | None = None) -> dict[str, Any]:
    """The Online Retail section; ``data`` overrides the shared file (tests)."""
    start = time.perf_counter()
    if data is None:
        path = ctx.data_file(RETAIL_FILE)
        if path is None:
            note = f"skipped: {ctx.shared_data / RETAIL_FILE} is missing"
            logger.warning("Online Retail %s", note)
            return {"status": "skipped", "note": note}
        data = load_online_retail(path)
        cutoff = CUTOFF
    else:
        cutoff = span_cutoff(data)
    split = temporal_split(data, cutoff, max_customers=ctx.sizes.retail_customers, seed=ctx.seed)
    logger.info("retail: %d calibration customers", len(split.customers))
    systems = score_systems(split, ctx, ks=ctx.sizes.ks)
    k = TARGET_K if TARGET_K in ctx.sizes.ks else ctx.sizes.ks[-1]
    return {
        "status": "ok",
        "customers": len(split.customers),
        "buyers_after_cutoff": int(split.bought_again.sum()),
        "cutoff": f"{cutoff:%Y-%m-%d}",
        "ks": list(ctx.sizes.ks),
        "seeds": [ctx.seed, ctx.seed + 1],
        "systems": systems,
        "target": target_check(systems, k),
        "seconds": round(time.perf_counter() - start, 1),
    }
