"""Choose k by silhouette and stability across seeds."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score, silhouette_score

from segmenter.checks import check_k_range
from segmenter.cluster.kmeans import KMeansClusterer
from segmenter.errors import SegmenterError

logger = logging.getLogger(__name__)


def select_k(
    X: np.ndarray,
    k_range: tuple[int, int] = (2, 15),
    *,
    random_state: int = 0,
    n_restarts: int = 3,
    sample_size: int = 5000,
    tolerance: float = 0.1,
    progress: Any = None,
) -> tuple[int, list[dict[str, float]]]:
    """Pick k: the best silhouette among the k whose stability is within ``tolerance`` of the
    most stable one.

    Stability is the adjusted Rand index between two k-means runs with different seeds.

    Returns
    -------
    k : int
    curve : list of dict with ``k``, ``silhouette``, ``stability``, ``inertia``
    """
    check_k_range(k_range)
    lo, hi = k_range
    hi = min(hi, len(X) - 1)
    if hi < lo:
        raise SegmenterError(f"n_samples={len(X)} is too small for --k-range starting at {lo}")
    rng = np.random.default_rng(random_state)
    sample = rng.choice(len(X), size=min(sample_size, len(X)), replace=False)
    curve: list[dict[str, float]] = []
    for k in range(lo, hi + 1):
        a = KMeansClusterer(k, n_restarts=n_restarts, random_state=random_state).fit(X)
        b = KMeansClusterer(k, n_restarts=n_restarts, random_state=random_state + 1).fit(X)
        sil = float(silhouette_score(X[sample], a.labels_[sample]))
        stab = float(adjusted_rand_score(a.labels_, b.labels_))
        curve.append({"k": k, "silhouette": sil, "stability": stab, "inertia": a.inertia_})
        logger.info("k=%d silhouette=%.3f stability=%.3f", k, sil, stab)
        if progress is not None:
            progress.update(1)
    best_stab = max(c["stability"] for c in curve)
    eligible = [c for c in curve if c["stability"] >= best_stab - tolerance]
    chosen = max(eligible, key=lambda c: (c["silhouette"], -c["k"]))
    return int(chosen["k"]), curve
