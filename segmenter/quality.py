"""Internal quality metrics of a segmentation (no labels needed)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score


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
