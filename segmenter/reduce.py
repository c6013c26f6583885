"""Dimensionality reduction: optional PCA, then UMAP (seeded), fitted on a sample when large."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

from segmenter.checks import at_least
from segmenter.errors import SegmenterError

logger = logging.getLogger(__name__)


def _umap(n_components: int, n_neighbors: int, min_dist: float, seed: int, n: int) -> Any:
    import umap

    return umap.UMAP(
        n_components=n_components,
        n_neighbors=max(2, min(n_neighbors, n - 1)),
        min_dist=min_dist,
        metric="euclidean",
        random_state=seed,
        transform_seed=seed,
        init="spectral" if n > n_components + 1 else "random",
        low_memory=True,
        verbose=False,
    )


class Reducer:
    """PCA to ``pca_dims`` then UMAP to ``umap_dims`` (either may be 0 = skipped).

    Parameters
    ----------
    pca_dims : int
        PCA components (0 disables PCA).
    umap_dims : int
        UMAP components (0 disables UMAP; the PCA output is used as is).
    n_neighbors : int
        UMAP neighbourhood size.
    min_dist : float
        UMAP ``min_dist``; 0 packs clusters tightly, which suits clustering.
    sample_size : int
        UMAP is fitted on at most this many points; the rest are transformed.
    random_state : int
        Seed of the PCA solver, the sample and UMAP.
    """

    def __init__(
        self,
        *,
        pca_dims: int = 50,
        umap_dims: int = 10,
        n_neighbors: int = 15,
        min_dist: float = 0.0,
        sample_size: int = 50_000,
        random_state: int = 0,
    ) -> None:
        self.pca_dims = pca_dims
        self.umap_dims = umap_dims
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.sample_size = sample_size
        self.random_state = random_state

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        """Fit on ``X`` of shape (n_users, dim) and return the reduced training points."""
        for name in ("pca_dims", "umap_dims", "n_neighbors", "sample_size"):
            at_least(name, getattr(self, name), 0)
        n = len(X)
        if n < 3:
            raise SegmenterError(f"n_samples={n} should be >= 3 to reduce dimensions")
        self.n_fit_ = n
        self.pca_: Any = None
        Z = X.astype(np.float32)
        if self.pca_dims and self.pca_dims < X.shape[1]:
            from sklearn.decomposition import PCA

            dims = min(self.pca_dims, n - 1)
            self.pca_ = PCA(dims, svd_solver="randomized", random_state=self.random_state)
            Z = self.pca_.fit_transform(Z).astype(np.float32)
        self.umap_: Any = None
        self.sampled_ = False
        if self.umap_dims:
            Z = self._fit_umap(Z)
        return np.ascontiguousarray(Z, dtype=np.float32)

    def _fit_umap(self, Z: np.ndarray) -> np.ndarray:
        n = len(Z)
        rng = np.random.default_rng(self.random_state)
        self.umap_ = _umap(self.umap_dims, self.n_neighbors, self.min_dist, self.random_state, n)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*n_jobs.*")
            if n <= self.sample_size:
                return np.asarray(self.umap_.fit_transform(Z), dtype=np.float32)
            self.sampled_ = True
            idx = np.sort(rng.choice(n, size=self.sample_size, replace=False))
            logger.info("UMAP fitted on a sample of %d of %d points", self.sample_size, n)
            out = np.empty((n, self.umap_dims), dtype=np.float32)
            out[idx] = self.umap_.fit_transform(Z[idx])
            rest = np.setdiff1d(np.arange(n), idx)
            out[rest] = self.umap_.transform(Z[rest])
            return out

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Reduce new points with the fitted PCA and UMAP."""
        Z = X.astype(np.float32)
        if self.pca_ is not None:
            Z = self.pca_.transform(Z).astype(np.float32)
        if self.umap_ is not None and len(Z):
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*n_jobs.*")
                Z = np.asarray(self.umap_.transform(Z), dtype=np.float32)
        return np.ascontiguousarray(Z, dtype=np.float32)

    def pca_transform(self, X: np.ndarray) -> np.ndarray:
        Z = X.astype(np.float32)
        return Z if self.pca_ is None else self.pca_.transform(Z).astype(np.float32)
