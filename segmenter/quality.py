"""Internal quality metrics of a segmentation (no labels needed)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

from segmenter.errors import SegmenterError


def clustering_quality(
    X: np.ndarray, labels: np.ndarray, *, seed: int = 0, sample_size: int = 10_000
) -> dict[str, float | int | list[int]]:
    """Silhouette (on a seeded sample), Davies-Bouldin, Calinski-Harabasz and segment sizes.

    Outliers (label -1) are left out of the scores and counted.
    """
    inside = labels >= 0
    Xi, li = X[inside], labels[inside]
    sizes = np.bincount(li, minlength=int(li.max(initial=-1)) + 1).tolist()
    out: dict[str, float | int | list[int]] = {
        "n_segments": len(np.unique(li)),
        "n_outliers": int((~inside).sum()),
        "sizes": sizes,
    }
    if len(np.unique(li)) < 2 or len(li) < 3:
        return out
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(li), size=min(sample_size, len(li)), replace=False)
    if len(np.unique(li[sample])) > 1:
        out["silhouette"] = float(silhouette_score(Xi[sample], li[sample]))
    out["davies_bouldin"] = float(davies_bouldin_score(Xi, li))
    out["calinski_harabasz"] = float(calinski_harabasz_score(Xi, li))
    return out


def eta_squared(values: np.ndarray, labels: np.ndarray) -> float:
    """Share of the variance of ``values`` explained by group membership.

    Parameters
    ----------
    values : ndarray of shape (n,)
        One number per customer.
    labels : ndarray of shape (n,)
        Group of each customer (any hashable integers; -1 is a group like any other).

    Returns
    -------
    float
        Between-group sum of squares divided by the total sum of squares, in [0, 1];
        0 when ``values`` is constant.
    """
    y = np.asarray(values, dtype=np.float64)
    g = np.asarray(labels)
    if y.shape != g.shape or y.ndim != 1:
        raise SegmenterError(
            f"values of shape {y.shape} and labels of shape {g.shape} should be equal 1-D shapes"
        )
    if len(y) == 0:
        raise SegmenterError("eta_squared needs at least one value; got 0")
    total = float(((y - y.mean()) ** 2).sum())
    if total <= 0:
        return 0.0
    _, inverse, counts = np.unique(g, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=y) / counts
    between = float((counts * (means - y.mean()) ** 2).sum())
    return between / total


def behaviour_separation(scaled: np.ndarray, labels: np.ndarray) -> float:
    """Mean :func:`eta_squared` of the scaled behaviour features (columns) across segments:
    how much of the spend, frequency, recency... variation the segments explain."""
    if scaled.shape[1] == 0:
        return 0.0
    return float(np.mean([eta_squared(scaled[:, j], labels) for j in range(scaled.shape[1])]))
