"""A 2-D map in plain numpy: UMAP's neighbour graph and objective, without numba.

umap-learn compiles its numba kernels in every fresh process (tens of seconds on two cores,
more than fitting the map itself); the report only needs two coordinates per customer. This
module builds the same fuzzy neighbour graph (exact neighbours from FAISS, UMAP's smoothed
memberships, fuzzy union) and minimizes the same cross-entropy with attraction along the
graph's edges and negative sampling, but moves all points at once per epoch with numpy.
The figures that compare it with umap-learn are in BENCHMARKS.md (wave 2, step 3).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.optimize import curve_fit

from segmenter.checks import at_least

#: UMAP's gradient clip
_CLIP = 4.0


def curve_params(min_dist: float, spread: float = 1.0) -> tuple[float, float]:
    """``a, b`` of the low-dimensional similarity ``1 / (1 + a d^(2b))`` (UMAP's fit)."""
    x = np.linspace(0.0, spread * 3.0, 300)
    y = np.where(x < min_dist, 1.0, np.exp(-(x - min_dist) / spread))
    (a, b), _ = curve_fit(lambda d, a, b: 1.0 / (1.0 + a * d ** (2 * b)), x, y, p0=(1.0, 1.0))
    return float(a), float(b)


def fuzzy_graph(dist: np.ndarray, idx: np.ndarray) -> sparse.coo_matrix:
    """UMAP's fuzzy union of the k-nearest-neighbour memberships.

    Parameters
    ----------
    dist, idx : ndarray of shape (n_points, k)
        Distances (not squared) and indices of each point's neighbours, itself first.

    Returns
    -------
    scipy.sparse.coo_matrix of shape (n_points, n_points)
        Symmetric edge weights in (0, 1].
    """
    n, k = dist.shape
    d, nb = dist[:, 1:], idx[:, 1:]  # without the point itself
    positive = np.where(d > 0, d, np.inf)
    rho = np.where(np.isfinite(positive.min(axis=1)), positive.min(axis=1), 0.0)[:, None]
    excess = np.maximum(d - rho, 0.0)
    target = np.log2(k)
    lo, hi = np.zeros(n), np.full(n, np.inf)
    sigma = np.ones(n)
    for _ in range(64):  # bisection on each point's bandwidth, all points at once
        total = np.exp(-excess / sigma[:, None]).sum(axis=1)
        big = total > target
        hi = np.where(big, sigma, hi)
        lo = np.where(big, lo, sigma)
        sigma = np.where(np.isinf(hi), sigma * 2.0, (lo + hi) / 2.0)
    sigma = np.maximum(sigma, 1e-3 * max(float(d.mean()), 1e-12))
    weight = np.exp(-excess / sigma[:, None])
    rows = np.repeat(np.arange(n), k - 1)
    a = sparse.csr_matrix((weight.ravel(), (rows, nb.ravel())), shape=(n, n))
    union = a + a.T - a.multiply(a.T)
    return sparse.coo_matrix(union)


def layout(
    X: np.ndarray,
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    n_epochs: int = 150,
    negative_rate: int = 5,
    random_state: int = 0,
) -> np.ndarray:
    """2-D coordinates of the rows of ``X``.

    Parameters
    ----------
    X : ndarray of shape (n_points, dims)
    n_neighbors : int
        Size of each point's neighbourhood in the graph.
    min_dist : float
        How tightly points may pack on the map.
    n_epochs : int
        Optimization passes; an edge of weight w moves its ends in a share w / max of them.
    negative_rate : int
        Random points pushed away per moved edge.
    random_state : int
        Seed of the negative samples and of the tie-breaking jitter of the start.

    Returns
    -------
    ndarray of shape (n_points, 2), float32
    """
    from segmenter.cluster.kmeans import nearest

    at_least("n_neighbors", n_neighbors, 2)
    at_least("n_epochs", n_epochs, 1)
    X = np.ascontiguousarray(X, dtype=np.float32)
    n = len(X)
    rng = np.random.default_rng(random_state)
    sq, idx = nearest(X, X, min(n_neighbors, n))
    sq, idx = _self_first(sq, idx)
    graph = fuzzy_graph(np.sqrt(sq), idx)
    head, tail, w = graph.row, graph.col, graph.data
    Y = _start(X, rng)
    if len(w) == 0:
        return Y.astype(np.float32)
    a, b = curve_params(min_dist)
    share = w / w.max()
    Y = Y.astype(np.float32)
    for epoch in range(n_epochs):
        alpha = np.float32(1.0 - epoch / n_epochs)
        fired = np.floor((epoch + 1) * share) > np.floor(epoch * share)
        h, t = head[fired], tail[fired]
        # each directed edge pulls its head; the reverse edge (the graph is symmetric) the tail
        move = _sums(h, _attract(Y[h] - Y[t], a, b), n)
        hn = np.repeat(h, negative_rate)
        other = rng.integers(0, n, size=len(hn))
        move += _sums(hn, _repel(Y[hn] - Y[other], a, b), n)
        degree = np.bincount(h, minlength=n).astype(np.float32)
        Y += alpha * move / np.maximum(degree, 1.0)[:, None]
    return Y.astype(np.float32)


def _attract(diff: np.ndarray, a: float, b: float) -> np.ndarray:
    """Clipped gradient steps of the attraction along edges with offsets ``diff`` (m, 2)."""
    d2 = np.maximum(np.einsum("ij,ij->i", diff, diff), 1e-12)
    d2b = np.exp(b * np.log(d2))
    pull = (-2.0 * a * b) * d2b / d2 / (1.0 + a * d2b)
    return np.clip(pull[:, None] * diff, -_CLIP, _CLIP)


def _repel(diff: np.ndarray, a: float, b: float) -> np.ndarray:
    """Clipped gradient steps pushing apart pairs with offsets ``diff`` (m, 2); a pair at
    the same place (a point drawn as its own negative sample included) does not move."""
    d2 = np.einsum("ij,ij->i", diff, diff)
    d2b = np.exp(b * np.log(np.maximum(d2, 1e-12)))
    push = (2.0 * b) / ((0.001 + d2) * (1.0 + a * d2b))
    return np.clip(push[:, None] * diff, -_CLIP, _CLIP)


def _sums(rows: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per-row sums of ``values`` (m, 2) grouped by ``rows``: shape (n, 2)."""
    return np.column_stack([np.bincount(rows, values[:, j], minlength=n) for j in range(2)])


def _start(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The first two principal components, scaled to [0, 10] as UMAP's initializations are,
    plus a little jitter so that identical points can separate."""
    centred = X.astype(np.float64) - X.mean(axis=0)
    if centred.shape[1] >= 2 and len(X) > 2:
        _, vectors = np.linalg.eigh(centred.T @ centred)
        Y = centred @ vectors[:, ::-1][:, :2]
    else:
        Y = np.column_stack([centred[:, 0], np.zeros(len(X))])
    span = np.maximum(np.abs(Y).max(axis=0), 1e-12)
    return 10.0 * Y / span + rng.normal(scale=1e-4, size=Y.shape)


def _self_first(sq: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's own index in column 0, as :func:`fuzzy_graph` expects: identical points tie
    at distance 0, so FAISS may list a duplicate first or leave the point itself out."""
    sq, idx = sq.copy(), idx.copy()
    rows = np.arange(len(idx))
    wrong = np.flatnonzero(idx[:, 0] != rows)
    for i in wrong:
        where = np.flatnonzero(idx[i] == i)
        j = int(where[0]) if len(where) else idx.shape[1] - 1  # absent: it replaces the last
        idx[i, 1 : j + 1], sq[i, 1 : j + 1] = idx[i, :j].copy(), sq[i, :j].copy()
        idx[i, 0], sq[i, 0] = i, 0.0
    return sq, idx
