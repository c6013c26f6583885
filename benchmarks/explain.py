"""Explanations (issue 17): surrogate fidelity, faithfulness, counterfactual validity, latency.

Per data set (the shipped sample, Online Retail, each synthetic shop shape), k = 8, one seed,
through the public API (:mod:`segmenter.explain`):

* fidelity on held-out customers (a seeded quarter) of the depth-3 tree, of the per-segment
  depth-3 rule set and of the LightGBM surrogate (targets 0.90 and 0.97);
* deletion test, text: leaving a customer's top-3 evidence parts out of its document lowers
  its taste margin more than leaving 3 random parts out (target: >= 80% of customers). Parts
  are removed from the document (what the encoder reads), not from the events;
* deletion test, behaviour: setting the top contributing value feature to the average customer's
  moves the value score towards the tier edge more than setting a random one (value tiers > 1);
* counterfactual validity: the suggested change, placed again, lands in the target segment
  (target: >= 95%);
* latency of one customer's explanation (p50, p95) and the time to explain every customer.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np
import polars as pl

from benchmarks.context import REPO_ROOT, BenchContext
from benchmarks.retail import RETAIL_FILE, load_online_retail
from benchmarks.shop_shapes import SHAPES
from benchmarks.shops import generate_shop
from segmenter.config import SegmenterConfig
from segmenter.data import EventData, load_events
from segmenter.explain import Explainer, explain_all
from segmenter.explain import evidence as ev
from segmenter.explain.run import segment_definitions
from segmenter.model import Segmenter
from segmenter.runfolder import customers_table

logger = logging.getLogger(__name__)

K = 8
TARGET_TREE = 0.90
TARGET_BOOSTED = 0.97
TARGET_DELETION = 0.80
TARGET_COUNTERFACTUAL = 0.95
#: customers per case: (synthetic shop size, customers explained for the deletion test)
SIZES = {"smoke": (150, 40), "quick": (1500, 300), "full": (2500, 600)}
LATENCY_CALLS = 30


def _cases(ctx: BenchContext, n_shop: int) -> list[tuple[str, EventData]]:
    sample = REPO_ROOT / "sample_data"
    out = [("sample", load_events(sample / "events.parquet", users=sample / "users.parquet",
                                  items=sample / "items.parquet"))]  # fmt: skip
    retail = ctx.shared_data / RETAIL_FILE
    if ctx.suite != "smoke" and retail.exists():
        out.append(("online_retail", load_online_retail(retail)))
    for name, spec in SHAPES.items():
        shop = generate_shop(spec.build(ctx.seed), min(n_shop, spec.customers), seed=ctx.seed)
        out.append((name, load_events(shop.events)))
    return out


def deletion(explainer: Explainer, table: pl.DataFrame, limit: int, seed: int) -> dict[str, Any]:
    """Text deletion test on the first ``limit`` customers of ``table`` with >= 4 document
    parts and 3 evidence parts: top-3 evidence left out against 3 random parts left out."""
    model = explainer.model
    rng = np.random.default_rng(seed)
    table = table.head(limit)
    documents = explainer.customers_["document"].gather(explainer.rows(table["user_id"].to_list()))
    docs, dropped_top, dropped_random, kept = [], [], [], []
    for i, doc in enumerate(documents.to_list()):
        parts = ev.parts(doc)
        top = set(table["evidence"][i].to_list())
        chosen = [p for p in parts if p.text in top][:3]
        if len(parts) < 4 or len(chosen) < 3:
            continue
        rand = [parts[j] for j in rng.choice(len(parts), 3, replace=False)]
        kept.append(int(i))
        docs.append(doc)
        dropped_top.append(ev.without(doc, chosen) or "No items or texts.")
        dropped_random.append(ev.without(doc, rand) or "No items or texts.")
    if not kept:
        return {"customers": 0, "share_top_beats_random": None}
    emb = model.embed(docs + dropped_top + dropped_random)
    taste = model.text_reducer_.transform(emb).astype(np.float64)
    seg = table["segment"].to_numpy()[kept]
    centres = model.clusterer_.cluster_centers_.astype(np.float64)
    d2 = ((taste[:, None, :] - centres[None]) ** 2).sum(axis=2)
    n = len(kept)
    own = d2[np.arange(3 * n), np.tile(seg, 3)]
    rival = d2.copy()
    rival[np.arange(3 * n), np.tile(seg, 3)] = np.inf
    margin = rival.min(axis=1) - own  # against the nearest other centre
    full, top, rand_m = margin[:n], margin[n : 2 * n], margin[2 * n :]
    beats = (full - top) > (full - rand_m)
    return {
        "customers": n,
        "share_top_beats_random": round(float(beats.mean()), 4),
        "mean_drop_top": round(float((full - top).mean()), 4),
        "mean_drop_random": round(float((full - rand_m).mean()), 4),
    }


def feature_deletion(model: Segmenter, customers: pl.DataFrame, seed: int) -> dict[str, Any]:
    """Behaviour deletion test: the value feature that contributes most to keeping a customer
    in its tier, set to the average customer's, against another feature chosen at random.

    The score is linear, so the top feature always moves the score most (exact by
    construction); what is measured is how often that moves the customer out of its tier.
    """
    axis = model.value_axis_
    edges = model.clusterer_.edges_
    if len(edges) == 0:
        return {"customers": 0, "note": "one value tier: behaviour does not decide segments"}
    z = axis.scaler_.transform(customers).astype(np.float64)
    contrib = z * axis.loading_
    score = contrib.sum(axis=1)
    tiers = np.searchsorted(edges, score, side="right")
    lower = np.where(tiers > 0, edges[np.maximum(tiers - 1, 0)], -np.inf)
    upper = np.where(tiers < len(edges), edges[np.minimum(tiers, len(edges) - 1)], np.inf)
    toward_lower = np.abs(score - lower) < np.abs(upper - score)
    signed = np.where(toward_lower, 1.0, -1.0)[:, None] * contrib  # pushes away from the edge
    rows = np.arange(len(z))
    top = np.argmax(signed, axis=1)
    rng = np.random.default_rng(seed)
    shift = rng.integers(1, contrib.shape[1], size=len(z))
    other = (top + shift) % contrib.shape[1]  # a random feature other than the top one

    def leaves(j: np.ndarray) -> np.ndarray:
        moved = score - contrib[rows, j]
        return np.searchsorted(edges, moved, side="right") != tiers

    out_top, out_other = leaves(top), leaves(other)
    return {
        "customers": len(z),
        "tier_left_top": round(float(out_top.mean()), 4),
        "tier_left_random": round(float(out_other.mean()), 4),
    }  # fmt: skip


def run_case(name: str, data: EventData, ctx: BenchContext, n_explain: int) -> dict[str, Any]:
    start = time.perf_counter()
    model = Segmenter(SegmenterConfig(k=K, seed=ctx.seed), encoder=ctx.encoder, cache=ctx.cache,
                      progress=ctx.progress).fit(data)  # fmt: skip
    fit_s = time.perf_counter() - start
    explainer = Explainer(model, progress=ctx.progress).fit(customers_table(model))
    n = len(explainer.customers_)
    s = segment_definitions(explainer, seed=ctx.seed)
    users = explainer.customers_["user_id"].to_list()
    for u in users[:3]:  # warm-up
        explainer.explain(u)
    times = []
    for u in users[3 : 3 + LATENCY_CALLS]:
        t = time.perf_counter()
        explainer.explain(u)
        times.append(time.perf_counter() - t)
    rng = np.random.default_rng(ctx.seed)
    rows = np.sort(rng.permutation(n)[: min(n, n_explain)])
    t = time.perf_counter()
    whole = name == "online_retail"  # every customer: the batch job's time
    table = explain_all(explainer, user_ids=None if whole else [users[i] for i in rows])
    all_s = time.perf_counter() - t
    explained = len(table)
    if whole:
        table = table[rows]
    cf = table.filter(pl.col("counterfactual").is_not_null())
    return {
        "customers": n,
        "value_tiers": int(len(model.clusterer_.edges_) + 1),
        "fit_seconds": round(fit_s, 1),
        "tree_fidelity": s.tree_fidelity,
        "ruleset_fidelity": s.ruleset_fidelity,
        "boosted_fidelity": s.boosted_fidelity,
        "shap_top": list(s.importance)[:5],
        "deletion_text": deletion(explainer, table, n_explain, ctx.seed),
        "deletion_behaviour": feature_deletion(model, explainer.customers_, ctx.seed),
        "counterfactual_made": len(cf),
        "counterfactual_valid": round(float(np.mean(cf["counterfactual_valid"].to_numpy())), 4)
        if len(cf) else None,
        "latency_p50_ms": round(1000 * float(np.median(times)), 1) if times else None,
        "latency_p95_ms": round(1000 * float(np.percentile(times, 95)), 1) if times else None,
        "explained": explained,
        "explain_seconds": round(all_s, 1),
        "explain_all_customers": whole,
    }  # fmt: skip


def run_explain(ctx: BenchContext) -> dict[str, Any]:
    """The explain section: every case, its measures and the targets (JSON-able)."""
    n_shop, n_explain = SIZES.get(ctx.suite, SIZES["quick"])
    cases: dict[str, Any] = {}
    for name, data in _cases(ctx, n_shop):
        logger.info("explain: %s ...", name)
        cases[name] = run_case(name, data, ctx, n_explain)
    return {
        "status": "ok",
        "k": K,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "targets": {"tree": TARGET_TREE, "boosted": TARGET_BOOSTED,
                    "deletion": TARGET_DELETION, "counterfactual": TARGET_COUNTERFACTUAL},
        "cases": cases,
    }  # fmt: skip


def render_explain(s: dict[str, Any] | None) -> list[str]:
    """The Markdown table of the section."""
    if not s or s.get("status") != "ok":
        return []
    lines = [
        "#### Explanations (issue 17)", "",
        f"k = {s['k']}; load average at the end {s.get('load_average')}. Fidelity on held-out "
        "customers; deletion: share of customers whose margin drops more without the top-3 "
        "evidence parts than without 3 random ones (text); behaviour: share of customers who "
        "leave their value tier when their top value feature is set to the average customer's, "
        "against a random other feature.", "",
        "| data | customers | tiers | tree d3 | rule set d3 | LightGBM | deletion text | "
        "deletion behaviour | counterfactual valid (made) | p50 / p95 ms | explain all |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for name, c in s["cases"].items():
        text = c["deletion_text"].get("share_top_beats_random")
        b = c["deletion_behaviour"]
        beh = f"{b['tier_left_top']} vs {b['tier_left_random']}" if "tier_left_top" in b else "n/a"
        every = f"{c['explained']:,} in {c['explain_seconds']} s"
        lines.append(
            f"| {name} | {c['customers']:,} | {c['value_tiers']} | {c['tree_fidelity']} | "
            f"{c['ruleset_fidelity']} | {c['boosted_fidelity']} | {text} | {beh} | "
            f"{c['counterfactual_valid']} ({c['counterfactual_made']}) | "
            f"{c['latency_p50_ms']} / {c['latency_p95_ms']} | {every} |"
        )
    return [*lines, ""]


__all__ = ["render_explain", "run_explain"]
