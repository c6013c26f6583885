"""HDBSCAN with outliers as -1, optionally attached to their nearest segment.

New points are placed as ``hdbscan.approximate_predict`` places them, from data alone: the
training points, their core distances, where each point leaves the condensed tree and the tree
of clusters (all plain arrays), so a saved clusterer loads without unpickling anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segmenter.checks import at_least
from segmenter.cluster.kmeans import margin_confidence, nearest
from segmenter.errors import SegmenterError

#: fitted arrays that :meth:`DensityClusterer.predict` reads (see :func:`_prediction_data`)
PREDICTION_ARRAYS = (
    "points", "core_distances", "point_parent", "point_lambda",
    "tree_parent", "tree_child", "tree_lambda", "clusters", "cluster_labels", "max_lambdas",
)  # fmt: skip


class DensityClusterer:
    """HDBSCAN on the reduced space.

    Parameters
    ----------
    min_cluster_size : int or None
        Smallest segment; ``None`` = max(10, 1% of customers).
    min_samples : int or None
        HDBSCAN ``min_samples`` (``None`` = same as min_cluster_size).
    assign_outliers : bool
        Attach outliers (-1) to the nearest segment centre instead of keeping them apart.
    """

    def __init__(
        self,
        *,
        min_cluster_size: int | None = None,
        min_samples: int | None = None,
        assign_outliers: bool = False,
    ) -> None:
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.assign_outliers = assign_outliers

    def fit(self, X: np.ndarray) -> DensityClusterer:
        import hdbscan

        n = len(X)
        size = self.min_cluster_size or max(10, n // 100)
        at_least("--min-cluster-size", size, 2)
        if n < size:
            raise SegmenterError(f"n_samples={n} should be >= min_cluster_size={size}")
        model = hdbscan.HDBSCAN(
            min_cluster_size=size,
            min_samples=self.min_samples,
            prediction_data=True,
            core_dist_n_jobs=1,
        ).fit(X.astype(np.float64))
        raw = np.asarray(model.labels_, dtype=np.int64)
        if raw.max(initial=-1) < 0:
            raise SegmenterError(
                f"HDBSCAN found no segment with min_cluster_size={size} in {n} customers; "
                f"lower --min-cluster-size or use --method kmeans"
            )
        # renumber by size, largest = 0
        ids, counts = np.unique(raw[raw >= 0], return_counts=True)
        order = ids[np.lexsort((ids, -counts))]
        remap = {int(old): new for new, old in enumerate(order)}
        labels = np.array([remap.get(int(v), -1) for v in raw], dtype=np.int64)
        self.min_samples_ = int(self.min_samples or size)
        self.prediction_ = _prediction_data(model, remap)
        self.cluster_centers_ = np.stack([X[labels == j].mean(axis=0) for j in range(len(order))])
        self.cluster_centers_ = self.cluster_centers_.astype(np.float32)
        self.n_outliers_ = int((labels < 0).sum())
        self.labels_, self.probabilities_ = labels, np.asarray(model.probabilities_)
        if self.assign_outliers and self.n_outliers_:
            _, idx = nearest(X[labels < 0], self.cluster_centers_, 1)
            self.labels_ = labels.copy()
            self.labels_[labels < 0] = idx[:, 0]
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Segment (-1 = outlier unless assigned), confidence, distance to the centre."""
        if getattr(self, "_tree", None) is None:  # built once per fitted or loaded clusterer
            from sklearn.neighbors import KDTree

            self._tree = KDTree(self.prediction_["points"].astype(np.float64))
        labels, strength = _approximate_predict(self.prediction_, self.min_samples_, self._tree, X)
        dist, idx = nearest(X, self.cluster_centers_, 2)
        if self.assign_outliers:
            outlier = labels < 0
            labels[outlier] = idx[outlier, 0]
            strength = np.where(outlier, margin_confidence(dist), strength)
        own = np.where(labels >= 0, labels, idx[:, 0])
        centre = self.cluster_centers_[own]
        distance = np.linalg.norm(X - centre, axis=1)
        return labels, np.asarray(strength, dtype=np.float32), distance.astype(np.float32)

    # -- state -------------------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Parameters (JSON) and fitted arrays: the centres and the prediction data."""
        params = {
            "min_cluster_size": self.min_cluster_size,
            "min_samples": self.min_samples,
            "assign_outliers": self.assign_outliers,
            "min_samples_fitted": self.min_samples_,
            "n_outliers": self.n_outliers_,
        }
        return params, {"cluster_centers": self.cluster_centers_, **self.prediction_}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> DensityClusterer:
        """Rebuild a fitted clusterer from :meth:`get_state`'s output (shapes are checked)."""
        self = cls(
            min_cluster_size=params["min_cluster_size"],
            min_samples=params["min_samples"],
            assign_outliers=bool(params["assign_outliers"]),
        )
        self.min_samples_, self.n_outliers_ = (
            int(params["min_samples_fitted"]),
            int(params["n_outliers"]),
        )
        self.cluster_centers_ = arrays["cluster_centers"]
        self.prediction_ = {name: arrays[name] for name in PREDICTION_ARRAYS}
        p = self.prediction_
        n, k = len(p["points"]), len(self.cluster_centers_)
        if not (
            len(p["core_distances"]) == len(p["point_parent"]) == len(p["point_lambda"]) == n
            and len(p["tree_parent"]) == len(p["tree_child"]) == len(p["tree_lambda"])
            and len(p["clusters"]) == len(p["cluster_labels"]) == len(p["max_lambdas"])
            and p["cluster_labels"].max(initial=-1) < k
            and p["points"].shape[1:] == self.cluster_centers_.shape[1:]
            and 1 <= self.min_samples_ < n
        ):
            raise ValueError("prediction arrays do not match each other")
        return self


def _prediction_data(model: Any, remap: dict[int, int]) -> dict[str, np.ndarray]:
    """What ``approximate_predict`` reads from a fitted ``hdbscan.HDBSCAN``, as arrays."""
    data = model.prediction_data_
    raw_tree = model.condensed_tree_._raw_tree
    n = len(data.raw_data)
    rows = raw_tree[raw_tree["child"] < n]
    parent = np.empty(n, dtype=np.int64)
    lam = np.empty(n, dtype=np.float64)
    parent[rows["child"]], lam[rows["child"]] = rows["parent"], rows["lambda_val"]
    tree = data.cluster_tree
    clusters = np.array(sorted(data.cluster_map), dtype=np.int64)
    return {
        "points": np.asarray(data.raw_data, dtype=np.float32),
        "core_distances": np.asarray(data.core_distances, dtype=np.float64),
        "point_parent": parent,
        "point_lambda": lam,
        "tree_parent": np.asarray(tree["parent"], dtype=np.int64),
        "tree_child": np.asarray(tree["child"], dtype=np.int64),
        "tree_lambda": np.asarray(tree["lambda_val"], dtype=np.float64),
        "clusters": clusters,
        "cluster_labels": np.array(
            [remap.get(int(data.cluster_map[c]), -1) for c in clusters], dtype=np.int64
        ),
        "max_lambdas": np.array([data.max_lambdas[c] for c in clusters], dtype=np.float64),
    }


def _approximate_predict(
    p: dict[str, np.ndarray], min_samples: int, tree: Any, X: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``hdbscan.approximate_predict`` over :func:`_prediction_data` and a KD-tree of its
    points: labels and strengths, as ``approximate_predict`` computes them."""
    k = min(2 * min_samples, len(p["points"]))
    dist, idx = tree.query(np.asarray(X, dtype=np.float64), k=k)
    # mutual reachability to each neighbour; the new point's core distance is its
    # (min_samples + 1)-th neighbour's distance, as hdbscan takes it
    own_core = dist[:, min(min_samples, k - 1)][:, None]
    reach = np.maximum(np.maximum(p["core_distances"][idx], own_core), dist)
    best = reach.argmin(axis=1)
    rows = np.arange(len(X))
    neighbour, mr = idx[rows, best], reach[rows, best]
    lam = np.where(mr > 0, 1.0 / np.where(mr > 0, mr, 1.0), np.finfo(np.float64).max)
    parent_of = _table(p["tree_child"], p["tree_parent"], p["tree_lambda"])
    label_of = _table(p["clusters"], p["cluster_labels"], p["max_lambdas"])
    tree = p["tree_parent"] if len(p["tree_parent"]) else p["point_parent"]
    root = int(tree.min())
    labels = np.full(len(X), -1, dtype=np.int64)
    strength = np.zeros(len(X), dtype=np.float64)
    for i in range(len(X)):
        cluster = int(p["point_parent"][neighbour[i]])
        if p["point_lambda"][neighbour[i]] > lam[i]:
            while cluster > root:
                entry = parent_of.get(cluster)
                if entry is None or not entry[1] >= lam[i]:
                    break
                cluster = entry[0]
        label, max_lambda = label_of.get(cluster, (-1, 0.0))
        labels[i] = label
        if label >= 0:
            strength[i] = min(max_lambda, lam[i]) / max_lambda if max_lambda > 0 else 1.0
    return labels, strength


def _table(keys: np.ndarray, first: np.ndarray, second: np.ndarray) -> dict[int, tuple[Any, Any]]:
    return dict(zip(keys.tolist(), zip(first.tolist(), second.tolist(), strict=True), strict=True))
