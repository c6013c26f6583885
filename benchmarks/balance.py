"""Do one partition hold both value and taste, on every shape of shop data? (issue 13)

For each case (:mod:`benchmarks.balance_cases`), at k = 8 (k = intents for the Banking77
sample), seeds ``seed`` and ``seed + 1``, side by side in one run:

* ``ours``: ``Segmenter(SegmenterConfig(k=k, seed=s))`` through the public API;
* ``rfm``: sklearn ``KMeans(n_init=10)`` on standardized recency, log frequency, log spend
  and tenure (:func:`benchmarks.baselines.rfm_matrix`);
* ``plain``: each customer's 12 most-bought item names (or categories, or item ids; or the
  customer's text) joined with ", ", encoded with the same encoder, ``KMeans(n_init=10)``;
* ``fusion``: ``[plain-text embedding | w x standardized RFM]`` + ``KMeans(n_init=10)`` for
  each ``w`` of :data:`benchmarks.baselines.FUSION_WEIGHTS`; the hindsight-best ``w`` by B.

Metrics (means over the two seeds): value = rank eta-squared of future net spend; taste =
top-50 taste lift (both as in :mod:`benchmarks.retail`); B = min(value / RFM's value,
taste / plain text's taste); ARI / NMI / Hungarian ACC against the truth (planted segments,
intents); seed ARI between the two seeds; seconds per seed. ``ceiling``: the recovery of a
classifier told the truth (:mod:`benchmarks.ceiling`), the most a segmentation of the same
inputs could be expected to reach. When ``assignments_`` has
``value_tier`` / ``taste_group``, value tiers are scored against RFM + k-means and taste
groups against plain text + k-means with the same number of groups.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.balance_cases import Case, banking_cases, retail_case, shop_case
from benchmarks.baselines import FUSION_WEIGHTS, fused, kmeans
from benchmarks.ceiling import supervised_ceiling
from benchmarks.context import BenchContext
from benchmarks.metrics import rank_eta_squared, recovery, stability, taste_lift
from benchmarks.shop_shapes import SHAPES
from benchmarks.tier_rule import balanced_rows, leave_one_out, tier_curve
from segmenter.config import SegmenterConfig
from segmenter.data import EventData
from segmenter.embed import embed_documents
from segmenter.model import Segmenter

logger = logging.getLogger(__name__)

K = 8
N_TOP = 50
#: The issue's targets.
TARGET_B = 0.90
TARGET_SHARE = 0.95
TARGET_ARI = 0.95
EXTRA_COLUMNS = {"value_tier": "rfm", "taste_group": "plain"}


@dataclass(frozen=True)
class BalanceSizes:
    """How big each case of the balance section is.

    Attributes
    ----------
    shop_customers : dict of shape -> int
        Customers of each synthetic shop.
    banking_sample : int
        Banking77 test texts of the all-intents case.
    banking_8 : int or None
        Cap on the texts of the 8-intent case (None: all of them).
    retail_customers : int or None
        Online Retail customers (None: all); ``online_retail`` False skips the case.
    weights : tuple of float
        Fusion weights swept.
    online_retail : bool
    """

    shop_customers: dict[str, int]
    banking_sample: int
    banking_8: int | None
    retail_customers: int | None
    weights: tuple[float, ...]
    online_retail: bool = True


DEFAULT_SHOPS = {name: shape.customers for name, shape in SHAPES.items()}
SMOKE_SHOPS = {name: 40 if name == "grocery" else 80 for name in SHAPES}
BALANCE_SIZES = {
    "smoke": BalanceSizes(SMOKE_SHOPS, 120, 120, 150, (0.1, 0.5), online_retail=False),
    "quick": BalanceSizes(DEFAULT_SHOPS, 2000, None, None, FUSION_WEIGHTS),
    "full": BalanceSizes(DEFAULT_SHOPS, 3080, None, None, FUSION_WEIGHTS),
}


def build_cases(
    ctx: BenchContext,
    sizes: BalanceSizes,
    *,
    retail_data: EventData | None = None,
    only: Sequence[str] | None = None,
) -> list[Case]:
    """Every case of the section (``only``: those names), built from the context's seed."""
    wanted = (lambda name: name in only) if only is not None else (lambda name: True)
    cases: list[Case] = []
    if wanted("online_retail") and (sizes.online_retail or retail_data is not None):
        case = retail_case(
            ctx.shared_data,
            k=K,
            max_customers=sizes.retail_customers,
            seed=ctx.seed,
            data=retail_data,
        )
        cases += [case] if case is not None else []
    for shape, n in sizes.shop_customers.items():
        if wanted(shape):
            cases.append(shop_case(shape, n, k=K, seed=ctx.seed))
    texts = banking_cases(
        ctx.shared_data, sample=sizes.banking_sample, intents_8=sizes.banking_8, seed=ctx.seed
    )
    return cases + [c for c in texts if wanted(c.name)]


def score(case: Case, labels: np.ndarray) -> dict[str, float]:
    """Value, taste and recovery of one labelling of the case's customers."""
    out: dict[str, float] = {}
    if case.split is not None:
        out["value"] = rank_eta_squared(case.split.future_spend, labels)
        out["taste"] = (
            taste_lift(case.split.past, case.split.future, labels, N_TOP)["lift"]
            if len(case.split.past)
            else float("nan")
        )
    if case.truth is not None:
        out.update(recovery(case.truth, labels))
    return out


def summarize(case: Case, per_seed: list[np.ndarray], seconds: list[float]) -> dict[str, Any]:
    """Mean scores over the seeds, the seed-to-seed ARI and the seconds per seed."""
    rows = [score(case, labels) for labels in per_seed]
    out: dict[str, Any] = {key: nan_mean([r[key] for r in rows]) for key in rows[0]}
    out["seed_ari"] = stability(per_seed[0], per_seed[1]) if len(per_seed) > 1 else None
    out["seconds"] = float(np.mean(seconds))
    out["n_groups"] = int(np.mean([len(np.unique(lab)) for lab in per_seed]))
    return out


def nan_mean(values: Sequence[float]) -> float:
    """Mean of the values that are not nan (nan when none is)."""
    kept = [v for v in values if not np.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


def ratio(a: float | None, b: float | None) -> float:
    """``a / b``, nan when either is missing or ``b`` is not positive."""
    if a is None or b is None or not b > 0:
        return float("nan")
    return float(a / b)


def balanced(system: dict[str, Any], rfm: dict[str, Any], plain: dict[str, Any]) -> float:
    """B = min(value / RFM's value, taste / plain text's taste) (nan when either is missing)."""
    value = ratio(system.get("value"), rfm.get("value"))
    taste = ratio(system.get("taste"), plain.get("taste"))
    return float("nan") if np.isnan(value) or np.isnan(taste) else min(value, taste)


def fit_ours(
    case: Case, ctx: BenchContext, seed: int
) -> tuple[dict[str, np.ndarray], float, dict[str, Any]]:
    """Our default at (k, seed): ``segment`` (and value_tier / taste_group when present), the
    seconds, and the value and taste of every tier count (:func:`tier_curve`)."""
    start = time.perf_counter()
    config = SegmenterConfig(k=case.k, seed=seed)
    model = Segmenter(config, encoder=ctx.encoder, cache=ctx.cache, progress=ctx.progress)
    model.fit(case.data)
    seconds = time.perf_counter() - start
    frame = model.assignments_
    position = {u: i for i, u in enumerate(frame["user_id"].to_list())}
    order = np.array([position[u] for u in case.customers])
    columns = ["segment", *(c for c in EXTRA_COLUMNS if c in frame.columns)]
    out = {c: np.asarray(frame[c].to_numpy())[order] for c in columns}
    curve = tier_curve(model, order, functools.partial(score, case), seed) if case.split else {}
    return out, seconds, curve


def run_case(case: Case, ctx: BenchContext, weights: Sequence[float]) -> dict[str, Any]:
    """Every system on one case; a system that fails becomes a note."""
    seeds = (ctx.seed, ctx.seed + 1)
    systems: dict[str, Any] = {}
    notes: dict[str, str] = {}
    labels: dict[str, list[np.ndarray]] = {}
    timings: dict[str, list[float]] = {}
    curves: dict[str, dict[str, Any]] = {}

    def attempt(name: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as exc:  # one system's failure must not lose the others' numbers
            logger.exception("balance: %s on %s failed", name, case.name)
            notes[name] = f"failed: {exc!r}"[:300]

    def ours() -> None:
        for seed in seeds:
            out, seconds, curve = fit_ours(case, ctx, seed)
            if seed == ctx.seed and curve:
                curves["ours"] = curve
            for column, values in out.items():
                labels.setdefault("ours" if column == "segment" else column, []).append(values)
            timings.setdefault("ours", []).append(seconds)

    attempt("ours", ours)
    emb: np.ndarray | None = None
    if case.rfm is not None:
        rfm = case.rfm
        timed(labels, timings, "rfm", seeds, lambda s: kmeans(rfm, case.k, s))
    if case.texts is not None:
        start = time.perf_counter()
        emb = embed_documents(ctx.encoder, case.texts, ctx.cache)[0]
        encode_seconds = time.perf_counter() - start
        vectors = emb
        timed(labels, timings, "plain", seeds, lambda s: kmeans(vectors, case.k, s))
        timings["plain"] = [t + encode_seconds for t in timings["plain"]]
    for name in ("ours", "rfm", "plain"):
        if name in labels:
            systems[name] = summarize(case, labels[name], timings[name])
    attempt("ceiling", lambda: systems.update(ceiling_of(case, emb, ctx.seed)))
    if case.truth is not None and case.split is not None:
        planted = score(case, case.truth)  # the truth as a segmentation: its value and taste
        systems["truth"] = {axis: planted[axis] for axis in ("value", "taste")}
    result: dict[str, Any] = {
        "kind": case.kind,
        "k": case.k,
        "customers": len(case.customers),
        "note": case.note,
        "systems": systems,
        "notes": notes,
    }
    rfm_s, plain_s = systems.get("rfm", {}), systems.get("plain", {})
    for name in ("ours", "truth"):
        if name in systems:
            systems[name]["B"] = balanced(systems[name], rfm_s, plain_s)
    if emb is not None and case.rfm is not None:
        result["fusion"] = sweep_fusion(case, emb, case.rfm, weights, seeds, rfm_s, plain_s)
    result["axes"] = score_axes(case, labels, emb, seeds)
    if "ours" in curves and "value" in rfm_s:
        taste_ref = plain_s.get("taste") if case.kind == "items" else None
        balanced_rows(curves["ours"], rfm_s["value"], taste_ref)
        result["tier_curve"] = curves["ours"]
    result["targets"] = targets(result)
    return result


def ceiling_of(case: Case, emb: np.ndarray | None, seed: int) -> dict[str, Any]:
    """``{"ceiling": ...}`` (:func:`benchmarks.ceiling.supervised_ceiling`) or nothing."""
    start = time.perf_counter()
    found = supervised_ceiling(case, emb, seed)
    if found is None:
        return {}
    return {"ceiling": {**found, "seconds": time.perf_counter() - start}}


def timed(
    labels: dict[str, list[np.ndarray]],
    timings: dict[str, list[float]],
    name: str,
    seeds: Sequence[int],
    fit: Callable[[int], np.ndarray],
) -> None:
    """Run ``fit(seed)`` for each seed, recording labels and seconds under ``name``."""
    for seed in seeds:
        start = time.perf_counter()
        labels.setdefault(name, []).append(fit(seed))
        timings.setdefault(name, []).append(time.perf_counter() - start)


def sweep_fusion(
    case: Case,
    emb: np.ndarray,
    rfm: np.ndarray,
    weights: Sequence[float],
    seeds: Sequence[int],
    rfm_s: dict[str, Any],
    plain_s: dict[str, Any],
) -> dict[str, Any]:
    """The simplest fusion for each weight; the hindsight-best weight by B."""
    rows = []
    for w in weights:
        X = fused(emb, rfm, w)
        labels: dict[str, list[np.ndarray]] = {}
        timings: dict[str, list[float]] = {}
        timed(labels, timings, "fusion", seeds, functools.partial(kmeans, X, case.k))
        row = summarize(case, labels["fusion"], timings["fusion"])
        rows.append({"weight": w, **row, "B": balanced(row, rfm_s, plain_s)})
    scored = [r for r in rows if not np.isnan(r["B"])]
    best = max(scored, key=lambda r: r["B"]) if scored else None
    return {"rows": rows, "best": best}


def score_axes(
    case: Case,
    labels: dict[str, list[np.ndarray]],
    emb: np.ndarray | None,
    seeds: Sequence[int],
) -> dict[str, Any]:
    """value_tier vs RFM + k-means and taste_group vs plain text + k-means, same group count."""
    out: dict[str, Any] = {}
    inputs = {"rfm": case.rfm, "plain": emb}
    for column, baseline in EXTRA_COLUMNS.items():
        X = inputs[baseline]
        if column not in labels or X is None or case.split is None:
            continue
        n = int(np.max([len(np.unique(lab)) for lab in labels[column]]))
        base = [kmeans(X, n, s) for s in seeds]
        ours = summarize(case, labels[column], [0.0])
        theirs = summarize(case, base, [0.0])
        axis = "value" if column == "value_tier" else "taste"
        out[column] = {
            "groups": n,
            "ours": ours[axis],
            "baseline": theirs[axis],
            "share": ratio(ours[axis], theirs[axis]),
            "seed_ari": ours["seed_ari"],
        }
    return out


def _check(value: float | None, threshold: float) -> dict[str, Any]:
    value = float("nan") if value is None else float(value)
    return {"value": value, "threshold": threshold, "met": bool(value >= threshold)}


def targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The issue's targets that apply to the case, each with its value and verdict."""
    s = result["systems"]
    ours = s.get("ours")
    if ours is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    kind = result["kind"]
    if kind == "items":
        out["B >= 0.90"] = _check(ours["B"], TARGET_B)
        if "truth" in s:
            out["B >= 0.90"]["truth"] = s["truth"]["B"]
        best = (result.get("fusion") or {}).get("best")
        if best is not None:
            out["B >= best simple fusion"] = _check(ours["B"], best["B"])
    elif kind == "no_items":
        value = ratio(ours.get("value"), s.get("rfm", {}).get("value"))
        out["value >= 95% of RFM"] = _check(value, TARGET_SHARE)
    else:
        plain = s.get("plain", {})
        out["ACC >= 95% of plain text"] = _check(ratio(ours["acc"], plain.get("acc")), 0.95)
        out["NMI >= 95% of plain text"] = _check(ratio(ours["nmi"], plain.get("nmi")), 0.95)
    out["seed ARI >= 0.95"] = _check(ours["seed_ari"], TARGET_ARI)
    if kind != "text" and "ari" in ours:
        out["planted ARI >= 0.95"] = _check(ours["ari"], TARGET_ARI)
        if "ceiling" in s:
            out["planted ARI >= 0.95"]["ceiling"] = s["ceiling"]["ari"]
    for column, axis in result["axes"].items():
        out[f"{column} >= 95% of its specialist"] = _check(axis["share"], TARGET_SHARE)
    return out


def run_balance(
    ctx: BenchContext,
    *,
    retail_data: EventData | None = None,
    sizes: BalanceSizes | None = None,
    only: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The balance section: every case, every system, the targets (JSON-able).

    Parameters
    ----------
    ctx : BenchContext
    retail_data : EventData, optional
        Events used instead of the Online Retail file; their split is at 75% of their span.
    sizes : BalanceSizes, optional
        Defaults to :data:`BALANCE_SIZES` of the context's suite.
    only : sequence of str, optional
        Names of the cases to run (default: all).
    """
    start = time.perf_counter()
    sizes = sizes or BALANCE_SIZES.get(ctx.suite, BALANCE_SIZES["quick"])
    cases = build_cases(ctx, sizes, retail_data=retail_data, only=only)
    out: dict[str, Any] = {}
    for case in cases:
        logger.info("balance: %s (%d customers) ...", case.name, len(case.customers))
        t = time.perf_counter()
        out[case.name] = run_case(case, ctx, sizes.weights)
        out[case.name]["seconds"] = round(time.perf_counter() - t, 1)
    curves = {name: c["tier_curve"] for name, c in out.items() if "tier_curve" in c}
    return {
        "status": "ok",
        "k": K,
        "leave_one_out": leave_one_out(curves),
        "seeds": [ctx.seed, ctx.seed + 1],
        "weights": list(sizes.weights),
        "cases": out,
        "seconds": round(time.perf_counter() - start, 1),
    }
