"""How a fitted segmentation decides, written so that it can be explained.

A k-means :class:`~segmenter.model.Segmenter` places a customer in two steps
(:class:`~segmenter.cluster.tiered.TieredClusterer`): its value score (a linear function of the
standardized RFM features, :class:`~segmenter.balance.ValueAxis`) picks a value tier, then the
nearest segment centre inside that tier in the taste space (PCA of the document embedding)
picks the segment. So a customer's segment ``s`` is set apart from an alternative ``r``:

* in another tier, by the value score alone: the margin is the distance of the score to the
  edge between the tiers, and it splits exactly into one term per RFM feature (the score is
  linear in the standardized, log-transformed and clipped features);
* in the same tier, by taste alone: the margin is ``d2(r) - d2(s)``, squared distances to the
  two centres; behaviour features contribute exactly nothing to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from segmenter.cluster.tiered import assign_tiers, within_tier_distances
from segmenter.errors import SegmenterError
from segmenter.features import RFM

#: RFM features a customer can change by buying (tenure only grows with time).
ACTIONABLE = ("recency_days", "frequency", "monetary")


def check_explainable(model: Any) -> None:
    """Refuse models whose decision this package cannot write out (HDBSCAN, unfitted)."""
    if not hasattr(model, "clusterer_"):
        raise SegmenterError("the model is not fitted; fit or load it before explaining")
    if getattr(model, "reducer_", None) is not None or not hasattr(model.clusterer_, "edges_"):
        raise SegmenterError(
            "explanations need a model fitted with --method kmeans (value tiers x taste); "
            "this one uses HDBSCAN on a UMAP space"
        )


@dataclass(frozen=True)
class Decision:
    """Where customers sit relative to the segments, one row each.

    Attributes
    ----------
    segment : ndarray of shape (n,)
    tier : ndarray of shape (n,)
    d2 : ndarray of shape (n, k)
        Squared taste distances to every centre (all tiers).
    score : ndarray of shape (n,)
        Value score.
    """

    segment: np.ndarray
    tier: np.ndarray
    d2: np.ndarray
    score: np.ndarray


def decide(model: Any, taste: np.ndarray, score: np.ndarray) -> Decision:
    """The :class:`Decision` of ``model`` for taste vectors and value scores."""
    clusterer = model.clusterer_
    tiers = assign_tiers(score, clusterer.edges_)
    everywhere = np.zeros(len(clusterer.tier_of_), dtype=np.int64)
    d2 = within_tier_distances(
        np.asarray(taste, dtype=np.float32),
        clusterer.cluster_centers_,
        np.zeros(len(taste), dtype=np.int64),
        everywhere,
    )
    inside = np.where(clusterer.tier_of_[None, :] == tiers[:, None], d2, np.inf)
    return Decision(np.argmin(inside, axis=1), tiers, d2, np.asarray(score, dtype=np.float64))


def runner_up(model: Any, decision: Decision, against: int | None = None) -> np.ndarray:
    """The alternative each customer is explained against: ``against`` when given, else the
    nearest other centre of its own tier (what ``confidence`` compares with), else -- the
    tier holds one segment -- the nearest centre of the nearest neighbouring tier. -1 when the
    model has a single segment."""
    tier_of = model.clusterer_.tier_of_
    k = len(tier_of)
    if against is not None:
        if not 0 <= against < k:
            raise SegmenterError(f"--against: segment {against} does not exist; allowed 0..{k - 1}")
        return np.full(len(decision.segment), against, dtype=np.int64)
    out = np.full(len(decision.segment), -1, dtype=np.int64)
    edges = model.clusterer_.edges_
    for i, (s, t) in enumerate(zip(decision.segment, decision.tier, strict=True)):
        same = [c for c in range(k) if tier_of[c] == t and c != s]
        if not same:
            near = sorted(
                {int(x) for x in tier_of if x != t},
                key=lambda x: _gap(x, t, edges, decision.score[i]),
            )
            same = [c for c in range(k) if near and tier_of[c] == near[0]]
        if same:
            out[i] = min(same, key=lambda c: decision.d2[i, c])
    return out


def _gap(tier: int, own: int, edges: np.ndarray, score: float) -> float:
    """Distance of ``score`` to the edge towards ``tier`` (tiers further away add their
    widths through their edges)."""
    edge = edges[own] if tier > own else edges[own - 1]
    return abs(score - float(edge)) + abs(tier - own)


def edge_between(model: Any, own_tier: int, other_tier: int) -> float:
    """The value-score edge a customer of ``own_tier`` crosses first towards ``other_tier``."""
    edges = model.clusterer_.edges_
    return float(edges[own_tier] if other_tier > own_tier else edges[own_tier - 1])


def standardized_rfm(model: Any, features: pl.DataFrame) -> np.ndarray:
    """Standardized (log1p, centred, scaled, clipped) RFM of each customer, shape (n, 4)."""
    return model.value_axis_.scaler_.transform(features).astype(np.float64)


def value_contributions(model: Any, features: pl.DataFrame, edge: np.ndarray) -> np.ndarray:
    """Signed share of each RFM feature in ``score - edge``, shape (n, 4); rows sum to it.

    The score is ``z @ w`` (``z`` the standardized RFM, ``w`` the value loading). Against an
    edge ``e`` the reference is the point of the edge nearest the average customer,
    ``z* = e w / |w|^2``, so ``score - e = sum_j w_j (z_j - z*_j)``: exact, given the clipped
    ``z`` (a feature beyond 5 standard deviations contributes as if it were at 5).
    """
    w = model.value_axis_.loading_
    z = standardized_rfm(model, features)
    norm = float(w @ w)
    if norm < 1e-12:
        return np.zeros_like(z)
    ref = np.asarray(edge, dtype=np.float64)[:, None] * w[None, :] / norm
    return (z - ref) * w[None, :]


def taste_margin(decision_d2: np.ndarray, segment: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``d2(other) - d2(segment)`` per row (positive: closer to its own centre); 0 without an
    alternative."""
    rows = np.arange(len(segment))
    safe = np.where(other >= 0, other, segment)
    return decision_d2[rows, safe] - decision_d2[rows, segment]


__all__ = [
    "ACTIONABLE",
    "RFM",
    "Decision",
    "check_explainable",
    "decide",
    "edge_between",
    "runner_up",
    "standardized_rfm",
    "taste_margin",
    "value_contributions",
]
