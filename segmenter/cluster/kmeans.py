"""FAISS k-means over all points, several restarts, GPU index when faiss has GPUs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from segmenter.checks import at_least, check_enough, check_k

logger = logging.getLogger(__name__)

#: below this many points FAISS runs on one thread: its per-iteration barrier costs more than
#: a second thread gains, and far more when other jobs share the cores (BENCHMARKS.md, wave 2)
ONE_THREAD_POINTS = 20_000
#: above this many points the restarts run on a seeded sample of this size, and one run on all
#: points starts from the best of them: restarts on 100,000 customers dominated a fit
RESTART_SAMPLE = 20_000


@contextlib.contextmanager
def faiss_threads(n_points: int) -> Iterator[None]:
    """One FAISS thread for small inputs (fewer than :data:`ONE_THREAD_POINTS`), restored after."""
    import faiss

    before = faiss.omp_get_max_threads()
    if n_points >= ONE_THREAD_POINTS or before == 1:
        yield
        return
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def faiss_has_gpu() -> bool:
    """True when the installed faiss is a GPU build and sees at least one GPU."""
    import faiss

    return bool(hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0)


def nearest(X: np.ndarray, centroids: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Squared L2 distances and indices of the ``k`` nearest centroids (exact, FAISS flat)."""
    import faiss

    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    k = min(k, len(centroids))
    with faiss_threads(len(X)):
        dist, idx = index.search(np.ascontiguousarray(X, dtype=np.float32), k)
    return np.maximum(dist, 0.0), idx


def margin_confidence(sq_dist: np.ndarray) -> np.ndarray:
    """1 - d1/d2: 0 on the border between two segments, 1 at a centre."""
    if sq_dist.shape[1] < 2:
        return np.ones(len(sq_dist), dtype=np.float32)
    d = np.sqrt(sq_dist)
    return np.clip(1.0 - d[:, 0] / np.maximum(d[:, 1], 1e-12), 0.0, 1.0).astype(np.float32)


def kmeans_centroids(
    X: np.ndarray,
    k: int,
    weights: np.ndarray | None = None,
    *,
    n_restarts: int = 5,
    n_iter: int = 50,
    random_state: int = 0,
    gpu: bool = False,
    init: np.ndarray | None = None,
) -> np.ndarray:
    """Centres of (weighted) k-means++ with ``n_restarts`` runs, the lowest objective kept.

    Above :data:`RESTART_SAMPLE` points the restarts run on a seeded sample and one run on all
    points starts from the best sample centres.

    Parameters
    ----------
    X : ndarray of shape (n_points, dims)
    k : int
    weights : ndarray of shape (n_points,), optional
        Non-negative weight of each point in the objective.
    init : ndarray of shape (k, dims), optional
        Start one run from these centres instead (``n_restarts`` is then ignored).

    Returns
    -------
    ndarray of shape (k, dims), float32
    """
    import faiss

    X = np.ascontiguousarray(X, dtype=np.float32)
    w = None if weights is None else np.ascontiguousarray(weights, np.float32)
    if init is not None:
        init, n_restarts = np.ascontiguousarray(init, dtype=np.float32), 1
    elif n_restarts > 1 and len(X) > RESTART_SAMPLE:
        rng = np.random.default_rng(random_state)
        idx = np.sort(rng.choice(len(X), size=RESTART_SAMPLE, replace=False))
        init = kmeans_centroids(
            X[idx], k, None if w is None else w[idx],
            n_restarts=n_restarts, n_iter=n_iter, random_state=random_state, gpu=gpu,
        )  # fmt: skip
        n_restarts = 1
    km = faiss.Kmeans(
        X.shape[1],
        int(k),
        niter=n_iter,
        nredo=n_restarts,
        seed=int(random_state) % (2**31),
        # the default (256) silently subsamples to k * 256 points; use them all
        max_points_per_centroid=max(256, len(X) // int(k) + 1),
        min_points_per_centroid=1,
        init_method=faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS,
        gpu=bool(gpu),
        verbose=False,
    )
    with faiss_threads(len(X)):
        km.train(X, weights=w, init_centroids=init)
    return np.asarray(km.centroids, dtype=np.float32)


class KMeansClusterer:
    """k-means (FAISS) with k-means++ initialization and restarts.

    Parameters
    ----------
    k : int
        Number of segments.
    n_restarts : int
        Independent runs; the one with the lowest inertia is kept.
    n_iter : int
        Lloyd iterations per run.
    random_state : int
        Seed of the initialization.
    gpu : bool or None
        Use a GPU index; ``None`` = when faiss has GPUs.
    """

    def __init__(
        self,
        k: int = 8,
        *,
        n_restarts: int = 5,
        n_iter: int = 50,
        random_state: int = 0,
        gpu: bool | None = None,
    ) -> None:
        self.k = k
        self.n_restarts = n_restarts
        self.n_iter = n_iter
        self.random_state = random_state
        self.gpu = gpu

    def fit(self, X: np.ndarray) -> KMeansClusterer:

        n = len(X)
        # the pipeline checked its config already; these guard standalone use, same messages
        check_k(self.k, auto=False)
        check_enough(n, int(self.k))
        at_least("n_restarts", self.n_restarts, 1)
        at_least("n_iter", self.n_iter, 1)
        gpu = faiss_has_gpu() if self.gpu is None else self.gpu
        X = np.ascontiguousarray(X, dtype=np.float32)
        centroids = kmeans_centroids(
            X, int(self.k),
            n_restarts=self.n_restarts, n_iter=self.n_iter, random_state=self.random_state, gpu=gpu,
        )  # fmt: skip
        return self.adopt(X, centroids, gpu=bool(gpu))

    def adopt(
        self, X: np.ndarray, centroids: np.ndarray, *, gpu: bool = False, consensus: bool = False
    ) -> KMeansClusterer:
        """Take ``centroids`` (k, dims), found elsewhere (for example by
        :func:`segmenter.cluster.consensus.stable_centroids`: ``consensus`` records whether
        they came from its vote, as ``consensus_``), as the fit on ``X``."""
        if len(centroids) != self.k:
            raise ValueError(f"centroids hold {len(centroids)} rows, k={self.k}")
        X = np.ascontiguousarray(X, dtype=np.float32)
        self.gpu_, self.consensus_ = gpu, consensus
        self.cluster_centers_ = _canonical_order(centroids, X)
        dist, idx = nearest(X, self.cluster_centers_, 2)
        self.labels_ = idx[:, 0].astype(np.int64)
        self.inertia_ = float(dist[:, 0].sum())
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Segment, confidence and distance to the segment centre for each row of ``X``."""
        dist, idx = nearest(X, self.cluster_centers_, 2)
        return idx[:, 0].astype(np.int64), margin_confidence(dist), np.sqrt(dist[:, 0])

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Parameters (JSON) and the centres, of shape (k, dims)."""
        params = {
            "k": int(self.k),
            "n_restarts": self.n_restarts,
            "n_iter": self.n_iter,
            "random_state": self.random_state,
            "gpu": self.gpu,
            "gpu_fitted": self.gpu_,
            "inertia": self.inertia_,
        }
        return params, {"cluster_centers": self.cluster_centers_}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> KMeansClusterer:
        """Rebuild a fitted clusterer from :meth:`get_state`'s output (shapes are checked)."""
        self = cls(
            int(params["k"]),
            n_restarts=int(params["n_restarts"]),
            n_iter=int(params["n_iter"]),
            random_state=int(params["random_state"]),
            gpu=params["gpu"],
        )
        self.gpu_, self.inertia_ = bool(params["gpu_fitted"]), float(params["inertia"])
        self.cluster_centers_ = np.ascontiguousarray(arrays["cluster_centers"], dtype=np.float32)
        if self.cluster_centers_.ndim != 2 or len(self.cluster_centers_) != self.k:
            raise ValueError(f"cluster_centers should hold k={self.k} rows")
        return self


def _canonical_order(centroids: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Number segments by size (largest = 0), ties by coordinates, so ids are stable."""
    _, idx = nearest(X, centroids, 1)
    sizes = np.bincount(idx[:, 0], minlength=len(centroids))
    order = np.lexsort((centroids[:, 0], -sizes))
    return np.ascontiguousarray(centroids[order])
