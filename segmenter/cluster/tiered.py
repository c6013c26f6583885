"""Value tiers, then taste groups inside each tier: one partition that carries both axes.

Customers are first cut into ``n_tiers`` equal-size tiers of a value score (low to high); the
remaining ``k - n_tiers`` segments are spent on taste: one at a time, each goes to the tier
whose activity-weighted spread in the taste space it reduces most, and each tier is split by
weighted k-means into the segments it got. Buying activity weights the spread because taste is
what active customers buy next: splitting the tier of one-time lapsed buyers by taste tells a
marketer little.
``n_tiers = 1`` is plain taste clustering, ``n_tiers = k`` plain value tiers.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from segmenter.cluster.consensus import labels_of, stable_centroids
from segmenter.cluster.kmeans import kmeans_centroids, margin_confidence, nearest
from segmenter.errors import SegmenterError

logger = logging.getLogger(__name__)


def tier_edges(score: np.ndarray, n_tiers: int) -> np.ndarray:
    """Edges between ``n_tiers`` equal-size tiers of ``score`` (ascending; ties stay together).

    Parameters
    ----------
    score : ndarray of shape (n_users,)
    n_tiers : int

    Returns
    -------
    ndarray of shape (<= n_tiers - 1,)
        Tier of a customer = number of edges <= its score; duplicated edges (many tied scores)
        are dropped, so fewer tiers may result.
    """
    if n_tiers < 1:
        raise SegmenterError(f"n_tiers={n_tiers} should be >= 1")
    if n_tiers == 1 or len(score) == 0:
        return np.empty(0, dtype=np.float64)
    ordered = np.sort(np.asarray(score, dtype=np.float64))
    cuts = ordered[(np.arange(1, n_tiers) * len(ordered)) // n_tiers]
    above = ordered[ordered > ordered[0]]
    if len(above) == 0:  # one value for everybody: one tier
        return np.empty(0, dtype=np.float64)
    # a cut inside the lowest tied block moves up to the next value, so the tie stays whole
    return np.unique(np.where(cuts > ordered[0], cuts, above[0]))


def assign_tiers(score: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Tier of each score, 0 = lowest."""
    return np.searchsorted(edges, np.asarray(score, dtype=np.float64), side="right").astype(
        np.int64
    )


def _spread(X: np.ndarray, labels: np.ndarray, w: np.ndarray) -> float:
    """Weighted sum of squared distances of the points to their group's weighted centre."""
    total = 0.0
    for g in np.unique(labels):
        m = labels == g
        centre = (X[m] * w[m, None]).sum(axis=0) / max(float(w[m].sum()), 1e-12)
        total += float((w[m] * ((X[m] - centre) ** 2).sum(axis=1)).sum())
    return total


def split_within(
    X: np.ndarray,
    groups: np.ndarray,
    weights: np.ndarray,
    k: int,
    *,
    n_restarts: int = 10,
    n_iter: int = 50,
    random_state: int = 0,
    stable: bool = False,
) -> tuple[np.ndarray, bool]:
    """Split each of the groups (0..g-1) by weighted k-means on ``X``, ``k`` segments in all.

    Each group gets one segment, then each further segment goes to the group whose weighted
    spread it reduces most (k-means of that group with one more centre), so taste segments go
    where customers' tastes differ most.

    Parameters
    ----------
    X : ndarray of shape (n_users, dims)
    groups : ndarray of shape (n_users,)
        Starting partition (never merged: every final segment lies inside one group).
    weights : ndarray of shape (n_users,)
        Non-negative weight of each customer in the spread.
    k : int
        Final number of segments (>= the number of groups).
    stable : bool
        Split each group's final count with :func:`~segmenter.cluster.consensus.stable_centroids`
        (a consensus where the seed would decide).

    Returns
    -------
    labels : ndarray of shape (n_users,)
        Segment of each customer; ids are dense but not ordered.
    consensus : bool
        Whether any group's split came from a consensus.
    """
    groups = np.asarray(groups, dtype=np.int64)
    ids = np.unique(groups)
    if k < len(ids):
        raise SegmenterError(f"k={k} should be >= the number of value tiers ({len(ids)})")
    members = {g: np.flatnonzero(groups == g) for g in ids}
    fits: dict[tuple[int, int], tuple[float, np.ndarray]] = {}

    def fit(g: int, c: int) -> tuple[float, np.ndarray]:
        if (g, c) not in fits:
            m = members[g]
            labels = np.zeros(len(m), dtype=np.int64)
            if c > 1:
                centres = kmeans_centroids(
                    X[m], c, weights[m],
                    n_restarts=n_restarts, n_iter=n_iter, random_state=random_state,
                )  # fmt: skip
                labels = nearest(X[m], centres, 1)[1][:, 0].astype(np.int64)
            fits[g, c] = (_spread(X[m], labels, weights[m]), labels)
        return fits[g, c]

    count = dict.fromkeys(ids, 1)
    if len(ids) == 1:  # one group takes every segment: no split to weigh against another
        if k > len(np.unique(X, axis=0)):
            raise SegmenterError(f"cannot split into k={k} segments: too few distinct customers")
        count[ids[0]] = k
    for _ in range(k - sum(count.values())):
        gains = {  # a local optimum with one more centre may spread more: still a candidate
            g: fit(g, count[g])[0] - fit(g, count[g] + 1)[0]
            if count[g] < len(np.unique(X[members[g]], axis=0))
            else -np.inf
            for g in ids
        }
        best = max(ids, key=lambda g: (gains[g], -g))
        if gains[best] == -np.inf:
            raise SegmenterError(f"cannot split into k={k} segments: too few distinct customers")
        count[best] += 1
    out = np.empty(len(X), dtype=np.int64)
    start, voted = 0, False
    for g in ids:
        labels = fit(g, count[g])[1]
        if stable and count[g] > 1:
            m = members[g]
            centres, used = stable_centroids(
                X[m], count[g], weights[m],
                n_restarts=n_restarts, n_iter=n_iter, random_state=random_state,
            )  # fmt: skip
            labels, voted = labels_of(X[m], centres), voted or used
        out[members[g]] = start + labels
        start += count[g]
    return out, voted


def within_tier_distances(
    X: np.ndarray, centres: np.ndarray, tiers: np.ndarray, tier_of: np.ndarray
) -> np.ndarray:
    """Squared distances (n_points, n_centres), infinite to the centres of other tiers."""
    X64, c64 = X.astype(np.float64), centres.astype(np.float64)
    d2 = (X64**2).sum(axis=1)[:, None] - 2.0 * X64 @ c64.T + (c64**2).sum(axis=1)[None, :]
    d2 = np.maximum(d2, 0.0)
    d2[tier_of[None, :] != tiers[:, None]] = np.inf
    return d2


def refine_within(
    X: np.ndarray, tiers: np.ndarray, labels: np.ndarray, weights: np.ndarray, *, n_iter: int
) -> np.ndarray:
    """Weighted Lloyd iterations in which a customer may only move between the segments of
    its own tier, until no one moves: every customer then sits with its nearest centre, so
    placing the training customers again gives back their segments."""
    labels = labels.copy()
    ids = np.unique(labels)
    tier_of = np.array([tiers[labels == s][0] for s in ids])
    for _ in range(n_iter):
        centres = np.stack(
            [np.average(X[labels == s], axis=0, weights=weights[labels == s] + 1e-12) for s in ids]
        )
        d2 = within_tier_distances(X, centres, tiers, tier_of)
        moved = ids[np.argmin(d2, axis=1)]
        if np.array_equal(moved, labels) or len(np.unique(moved)) < len(ids):
            break
        labels = moved
    return labels


class TieredClusterer:
    """Value tiers split further by taste (see the module docstring).

    Parameters
    ----------
    k : int
        Number of segments.
    n_tiers : int
        Number of value tiers (1 <= n_tiers <= k).
    n_restarts, n_iter : int
        Of each weighted 2-means split.
    random_state : int
    stable : bool
        Make the final split of each tier with a consensus where two sets of restarts
        disagree (see :mod:`segmenter.cluster.consensus`).

    Attributes
    ----------
    edges_ : ndarray
        Value-score edges between tiers.
    cluster_centers_ : ndarray of shape (k, dims)
        Weighted centre of each segment in the taste space.
    tier_of_ : ndarray of shape (k,)
        The tier each segment lies in.
    labels_ : ndarray of shape (n_users,)
        Segments of the training customers, numbered by size (largest = 0).
    consensus_ : bool
        Whether a consensus made any tier's split.
    """

    def __init__(
        self,
        k: int = 8,
        *,
        n_tiers: int = 1,
        n_restarts: int = 10,
        n_iter: int = 50,
        random_state: int = 0,
        stable: bool = False,
    ) -> None:
        self.k = k
        self.n_tiers = n_tiers
        self.n_restarts = n_restarts
        self.n_iter = n_iter
        self.random_state = random_state
        self.stable = stable

    def fit(self, X: np.ndarray, score: np.ndarray, weights: np.ndarray | None = None) -> Any:
        """Fit on the taste space ``X`` (n_users, dims) and the value ``score`` (n_users,)."""
        n = len(X)
        if not 1 <= self.n_tiers <= self.k:
            raise SegmenterError(f"n_tiers={self.n_tiers} should be in 1..k={self.k}")
        if n < self.k:
            raise SegmenterError(f"n_samples={n} should be >= n_clusters={self.k}")
        if len(score) != n:
            raise SegmenterError(f"score has {len(score)} rows but X has {n}")
        w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
        X = np.ascontiguousarray(X, dtype=np.float32)
        self.edges_ = tier_edges(score, self.n_tiers)
        tiers = assign_tiers(score, self.edges_)
        labels, self.consensus_ = split_within(
            X, tiers, w, self.k, n_restarts=self.n_restarts, n_iter=self.n_iter,
            random_state=self.random_state, stable=self.stable,
        )  # fmt: skip
        labels = refine_within(X, tiers, labels, w, n_iter=self.n_iter)
        # number segments by size (largest = 0), ties by tier then first member
        ids, sizes = np.unique(labels, return_counts=True)
        first = np.array([np.flatnonzero(labels == i)[0] for i in ids])
        order = ids[np.lexsort((first, -sizes))]
        remap = np.empty(labels.max() + 1, dtype=np.int64)
        remap[order] = np.arange(len(order))
        self.labels_ = remap[labels]
        self.tier_of_ = np.array([tiers[self.labels_ == s][0] for s in range(len(order))])
        self.cluster_centers_ = np.stack(
            [
                np.average(X[self.labels_ == s], axis=0, weights=w[self.labels_ == s] + 1e-12)
                for s in range(len(order))
            ]
        ).astype(np.float32)
        return self

    def predict(
        self, X: np.ndarray, score: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Segment, confidence and taste-space distance to the segment centre of each row.

        A customer goes to its value tier, then to the nearest segment centre inside it.
        """
        tiers = assign_tiers(score, self.edges_)
        X = np.asarray(X, dtype=np.float32)
        d2 = within_tier_distances(X, self.cluster_centers_, tiers, self.tier_of_)
        order = np.argsort(d2, axis=1, kind="stable")[:, :2]
        nearest = np.take_along_axis(d2, order, axis=1)
        nearest[:, 1] = np.where(np.isfinite(nearest[:, 1]), nearest[:, 1], np.inf)
        confidence = margin_confidence(np.where(np.isinf(nearest), 1e30, nearest))
        return order[:, 0].astype(np.int64), confidence, np.sqrt(nearest[:, 0])

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        params = {"k": int(self.k), "n_tiers": int(self.n_tiers), "random_state": self.random_state}
        arrays = {
            "edges": self.edges_,
            "centers": self.cluster_centers_,
            "tier_of": self.tier_of_.astype(np.int64),
        }
        return params, arrays

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> TieredClusterer:
        self = cls(int(params["k"]), n_tiers=int(params["n_tiers"]))
        self.random_state = params.get("random_state", 0)
        self.edges_ = arrays["edges"].astype(np.float64)
        self.cluster_centers_ = arrays["centers"].astype(np.float32)
        self.tier_of_ = arrays["tier_of"].astype(np.int64)
        if len(self.tier_of_) != len(self.cluster_centers_):
            raise ValueError("tier_of and centers disagree in length")
        return self
