"""HDBSCAN with outliers as -1, optionally attached to their nearest segment."""

from __future__ import annotations

from typing import Any

import numpy as np

from segmenter.checks import at_least
from segmenter.cluster.kmeans import margin_confidence, nearest
from segmenter.errors import SegmenterError


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
        self.model_: Any = hdbscan.HDBSCAN(
            min_cluster_size=size,
            min_samples=self.min_samples,
            prediction_data=True,
            core_dist_n_jobs=1,
        ).fit(X.astype(np.float64))
        raw = np.asarray(self.model_.labels_, dtype=np.int64)
        if raw.max(initial=-1) < 0:
            raise SegmenterError(
                f"HDBSCAN found no segment with min_cluster_size={size} in {n} customers; "
                f"lower --min-cluster-size or use --method kmeans"
            )
        # renumber by size, largest = 0
        ids, counts = np.unique(raw[raw >= 0], return_counts=True)
        order = ids[np.lexsort((ids, -counts))]
        self.remap_ = {int(old): new for new, old in enumerate(order)}
        labels = np.array([self.remap_.get(int(v), -1) for v in raw], dtype=np.int64)
        self.cluster_centers_ = np.stack([X[labels == j].mean(axis=0) for j in range(len(order))])
        self.cluster_centers_ = self.cluster_centers_.astype(np.float32)
        self.n_outliers_ = int((labels < 0).sum())
        self.labels_, self.probabilities_ = labels, np.asarray(self.model_.probabilities_)
        if self.assign_outliers and self.n_outliers_:
            _, idx = nearest(X[labels < 0], self.cluster_centers_, 1)
            self.labels_ = labels.copy()
            self.labels_[labels < 0] = idx[:, 0]
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Segment (-1 = outlier unless assigned), confidence, distance to the centre."""
        import hdbscan

        raw, strength = hdbscan.approximate_predict(self.model_, X.astype(np.float64))
        labels = np.array([self.remap_.get(int(v), -1) for v in raw], dtype=np.int64)
        dist, idx = nearest(X, self.cluster_centers_, 2)
        if self.assign_outliers:
            outlier = labels < 0
            labels[outlier] = idx[outlier, 0]
            strength = np.where(outlier, margin_confidence(dist), strength)
        own = np.where(labels >= 0, labels, idx[:, 0])
        centre = self.cluster_centers_[own]
        distance = np.linalg.norm(X - centre, axis=1)
        return labels, np.asarray(strength, dtype=np.float32), distance.astype(np.float32)
