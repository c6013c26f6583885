"""Dimensionality reduction: optional PCA, then UMAP (seeded), fitted on a sample when large.

UMAP comes from umap-learn, or for a 2-D map from :func:`segmenter.layout.layout` (the same
graph and objective in numpy, with no numba compilation in each fresh process).

Everything a fitted :class:`Reducer` needs to place new points is plain arrays: PCA's mean and
components, and for UMAP the training points in its input space with their fitted coordinates.
A new point's UMAP coordinates are the distance-weighted average of its nearest training
points' coordinates (a training point itself gets its fitted coordinates back), so a saved
reducer loads without unpickling anything.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Literal

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


class NeighbourEmbedding:
    """Low-dimensional coordinates of new points from stored training points.

    Parameters
    ----------
    anchors : ndarray of shape (n_anchors, dim_in)
        Training points in the input space of the embedding, float32.
    coords : ndarray of shape (n_anchors, dim_out)
        Their fitted coordinates, float32.
    n_neighbors : int
        Neighbours averaged for a new point, weighted by inverse distance.
    """

    def __init__(self, anchors: np.ndarray, coords: np.ndarray, n_neighbors: int) -> None:
        self.anchors = np.ascontiguousarray(anchors, dtype=np.float32)
        self.coords = np.ascontiguousarray(coords, dtype=np.float32)
        self.n_neighbors = n_neighbors

    def transform(self, Z: np.ndarray) -> np.ndarray:
        """Coordinates of ``Z`` (n, dim_in): ndarray of shape (n, dim_out), float32."""
        from segmenter.cluster.kmeans import nearest

        Z = np.ascontiguousarray(Z, dtype=np.float32)
        if not len(Z):
            return np.empty((0, self.coords.shape[1]), dtype=np.float32)
        _, idx = nearest(Z, self.anchors, self.n_neighbors)
        # exact distances (FAISS's expansion ||a||^2 + ||b||^2 - 2ab is not 0 for a == b)
        dist = np.sqrt(((self.anchors[idx] - Z[:, None, :]) ** 2).sum(axis=2))
        weight = 1.0 / np.maximum(dist, 1e-12)
        out = np.einsum("nk,nkd->nd", weight, self.coords[idx]) / weight.sum(axis=1)[:, None]
        same = dist[:, 0] == 0.0
        out[same] = self.coords[idx[same, 0]]  # a training point keeps its fitted coordinates
        return out.astype(np.float32)


class Reducer:
    """PCA to ``pca_dims`` then UMAP to ``umap_dims`` (either may be 0 = skipped).

    Parameters
    ----------
    pca_dims : int
        PCA components (0 disables PCA).
    umap_dims : int
        UMAP components (0 disables UMAP; the PCA output is used as is).
    n_neighbors : int
        UMAP neighbourhood size; also how many training points place a new point.
    min_dist : float
        UMAP ``min_dist``; 0 packs clusters tightly, which suits clustering.
    sample_size : int
        UMAP is fitted on (and stores) at most this many points; the rest are placed by
        their nearest neighbours among them.
    random_state : int
        Seed of the PCA solver, the sample and UMAP.
    engine : {"umap-learn", "numpy"}
        Who fits UMAP: umap-learn, or :func:`segmenter.layout.layout` (``umap_dims=2`` only).
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
        engine: Literal["umap-learn", "numpy"] = "umap-learn",
    ) -> None:
        self.pca_dims = pca_dims
        self.umap_dims = umap_dims
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.sample_size = sample_size
        self.random_state = random_state
        self.engine = engine

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        """Fit on ``X`` of shape (n_users, dim) and return the reduced training points."""
        for name in ("pca_dims", "umap_dims", "n_neighbors", "sample_size"):
            at_least(name, getattr(self, name), 0)
        n = len(X)
        if n < 3:
            raise SegmenterError(f"n_samples={n} should be >= 3 to reduce dimensions")
        if self.umap_dims and self.sample_size < 3:
            raise SegmenterError(f"sample_size={self.sample_size} should be >= 3")
        if self.engine not in ("umap-learn", "numpy"):
            raise SegmenterError(f"engine={self.engine!r} should be 'umap-learn' or 'numpy'")
        if self.engine == "numpy" and self.umap_dims not in (0, 2):
            raise SegmenterError(f"umap_dims={self.umap_dims} should be 2 with engine='numpy'")
        self.n_fit_ = n
        self.pca_mean_: np.ndarray | None = None
        self.pca_components_: np.ndarray | None = None
        Z = X.astype(np.float32)
        if self.pca_dims and self.pca_dims < X.shape[1]:
            from sklearn.decomposition import PCA

            dims = min(self.pca_dims, n - 1)
            pca = PCA(dims, svd_solver="randomized", random_state=self.random_state)
            Z = pca.fit_transform(Z).astype(np.float32)
            # C-contiguous, as they load back: the same arithmetic before and after saving
            self.pca_mean_ = np.ascontiguousarray(pca.mean_, dtype=np.float32)
            self.pca_components_ = np.ascontiguousarray(pca.components_, dtype=np.float32)
        self.umap_: NeighbourEmbedding | None = None
        self.sampled_ = False
        if self.umap_dims:
            Z = self._fit_umap(Z, self.pca_transform(X))
        return np.ascontiguousarray(Z, dtype=np.float32)

    def _fit_umap(self, Z: np.ndarray, anchors: np.ndarray) -> np.ndarray:
        """Fit UMAP on ``Z`` (or a sample); keep as anchors the same points as
        :meth:`pca_transform` computes them for new data, so that a training customer placed
        again finds itself at distance 0 and gets its fitted coordinates back."""
        n = len(Z)
        rng = np.random.default_rng(self.random_state)
        idx = np.arange(n)
        if n > self.sample_size:
            self.sampled_ = True
            idx = np.sort(rng.choice(n, size=self.sample_size, replace=False))
            logger.info("UMAP fitted on a sample of %d of %d points", self.sample_size, n)
        coords = self._fit_coords(Z[idx])
        # as many neighbours as UMAP's own neighbourhood (measured: agreement with umap-learn's
        # transform is highest at 10-15 neighbours, lower at 1-5 or 30)
        k = max(1, min(self.n_neighbors, len(idx)))
        self.umap_ = NeighbourEmbedding(anchors[idx], coords, k)
        if not self.sampled_:
            return coords
        out = self.umap_.transform(anchors)
        out[idx] = coords
        return out

    def _fit_coords(self, Z: np.ndarray) -> np.ndarray:
        if self.engine == "numpy":
            from segmenter.layout import layout

            return layout(
                Z, n_neighbors=max(2, min(self.n_neighbors, len(Z))), min_dist=self.min_dist,
                random_state=self.random_state,
            )  # fmt: skip
        umap = _umap(self.umap_dims, self.n_neighbors, self.min_dist, self.random_state, len(Z))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*n_jobs.*")
            return np.asarray(umap.fit_transform(Z), dtype=np.float32)

    def pca_transform(self, X: np.ndarray) -> np.ndarray:
        """PCA coordinates of ``X`` (n, dim): shape (n, pca components), float32.

        Computed as scikit-learn's ``PCA.transform`` does: ``X @ C.T - mean @ C.T``.
        """
        Z = np.asarray(X, dtype=np.float32)
        if self.pca_components_ is None or self.pca_mean_ is None:
            return Z
        C = self.pca_components_
        return np.asarray(Z @ C.T - (self.pca_mean_[None, :] @ C.T), dtype=np.float32)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Reduce new points with the fitted PCA and UMAP coordinates."""
        Z = self.pca_transform(X)
        if self.umap_ is not None:
            Z = self.umap_.transform(Z)
        return np.ascontiguousarray(Z, dtype=np.float32)

    # -- state -------------------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Parameters (JSON) and fitted arrays of a fitted reducer."""
        params = {
            "pca_dims": self.pca_dims,
            "umap_dims": self.umap_dims,
            "n_neighbors": self.n_neighbors,
            "min_dist": self.min_dist,
            "sample_size": self.sample_size,
            "random_state": self.random_state,
            "engine": self.engine,
            "n_fit": getattr(self, "n_fit_", None),  # None: never fitted (a map not drawn)
            "sampled": getattr(self, "sampled_", False),
        }
        arrays: dict[str, np.ndarray] = {}
        mean, components = getattr(self, "pca_mean_", None), getattr(self, "pca_components_", None)
        if mean is not None and components is not None:
            arrays.update(pca_mean=mean, pca_components=components)
        umap = getattr(self, "umap_", None)
        if umap is not None:
            params["transform_neighbors"] = umap.n_neighbors
            arrays.update(umap_anchors=umap.anchors, umap_coords=umap.coords)
        return params, arrays

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> Reducer:
        """Rebuild a fitted reducer from :meth:`get_state`'s output (shapes are checked)."""
        self = cls(
            pca_dims=int(params["pca_dims"]),
            umap_dims=int(params["umap_dims"]),
            n_neighbors=int(params["n_neighbors"]),
            min_dist=float(params["min_dist"]),
            sample_size=int(params["sample_size"]),
            random_state=int(params["random_state"]),
            engine=params.get("engine", "umap-learn"),  # folders saved before it was a choice
        )
        if params["n_fit"] is None:
            return self
        self.n_fit_, self.sampled_ = int(params["n_fit"]), bool(params["sampled"])
        self.pca_mean_, self.pca_components_ = arrays.get("pca_mean"), arrays.get("pca_components")
        if (self.pca_mean_ is None) != (self.pca_components_ is None) or (
            self.pca_mean_ is not None
            and self.pca_components_ is not None
            and self.pca_components_.shape[1:] != self.pca_mean_.shape
        ):
            raise ValueError("PCA mean and components do not match")
        self.umap_ = None
        if "umap_anchors" in arrays:
            anchors, coords = arrays["umap_anchors"], arrays["umap_coords"]
            k = int(params["transform_neighbors"])
            dims = len(self.pca_components_) if self.pca_components_ is not None else None
            if (
                len(anchors) != len(coords)
                or not 1 <= k <= len(anchors)
                or dims not in (None, anchors.shape[1])
            ):
                raise ValueError("UMAP anchors, coordinates and neighbours do not match")
            self.umap_ = NeighbourEmbedding(anchors, coords, k)
        return self
