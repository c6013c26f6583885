"""Stable k-means: two independent sets of restarts, and a consensus when they disagree.

k-means restarts keep the lowest objective, but where many partitions have nearly the same
objective (many segments for few customers: 77 intents in 2,000 texts), the winner changes
with the seed: two seeds agreed at ARI 0.63 on Banking77 at k = 77, and 300 restarts only
raised that to 0.69 (BENCHMARKS.md, issue 13). :func:`stable_centroids` splits the restarts
into two seeded halves; when their best partitions agree (ARI >= :data:`STABLE_ARI`, the
agreement we promise between seeds) the better one is kept, so data with one clear optimum
costs what it did. Halves that disagree run again with :data:`ESCALATE` times the restarts
(a flat landscape with one best optimum: both then find it). Only where even that fails do
many single k-means runs vote: two customers that the runs put together most often stay
together (evidence accumulation: average linkage on the co-association of the runs, Fred &
Jain 2005), and one weighted Lloyd run on every customer starts from the centres of that
consensus, which is kept only when it is steadier than the restarts were.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.sparse import csr_matrix
from sklearn.metrics import adjusted_rand_score

from segmenter.cluster.kmeans import kmeans_centroids, nearest

logger = logging.getLogger(__name__)

#: two restart sets that agree at least this well are one optimum: no consensus needed
STABLE_ARI = 0.95
#: when the two halves disagree, each runs this many times more restarts before a consensus is
#: considered (where one optimum exists, both halves then find it: Online Retail's 2- and
#: 4-means tier splits)
ESCALATE = 4
#: single k-means runs that vote in a consensus (seed ARI on Banking77 at k = 77: 100 runs
#: 0.91, 200 runs 0.95, 400 runs 0.95)
CONSENSUS_RUNS = 200
#: customers whose co-association is computed (a seeded sample above it); n^2 memory
CONSENSUS_SAMPLE = 3_000


def labels_of(X: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Nearest centre of each row."""
    return nearest(X, centres, 1)[1][:, 0].astype(np.int64)


def objective(X: np.ndarray, centres: np.ndarray, weights: np.ndarray | None) -> float:
    """Weighted sum of squared distances to the nearest centre."""
    dist = nearest(X, centres, 1)[0][:, 0].astype(np.float64)
    return float(dist.sum() if weights is None else (dist * weights).sum())


def stable_centroids(
    X: np.ndarray,
    k: int,
    weights: np.ndarray | None = None,
    *,
    n_restarts: int = 10,
    n_iter: int = 50,
    random_state: int = 0,
) -> tuple[np.ndarray, bool]:
    """Centres of weighted k-means that do not hinge on the seed.

    The restarts run in two seeded halves. When the halves' best partitions agree (ARI >=
    :data:`STABLE_ARI`) the better one is kept; when they do not, both halves run again with
    :data:`ESCALATE` times the restarts, and agreeing halves are kept. Otherwise a consensus of
    :data:`CONSENSUS_RUNS` single runs is taken, but only when it is itself steadier than the
    restarts: its two halves of runs must agree with each other better than the two sets of
    restarts did (where groups have no clear borders at a small k, the cut of the
    co-association tree can move more than k-means does).

    Parameters
    ----------
    X : ndarray of shape (n_points, dims)
    k : int
    weights : ndarray of shape (n_points,), optional
    n_restarts : int
        Restarts in all, split between the two halves of the check.
    n_iter : int
    random_state : int

    Returns
    -------
    centres : ndarray of shape (k, dims), float32
    consensus : bool
        Whether the consensus made the centres.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    if k < 2:  # one centre: nothing for a seed to decide
        return kmeans_centroids(X, k, weights, n_iter=n_iter, random_state=random_state), False
    half = max(1, n_restarts // 2)
    restarts_agree = -1.0
    for each in (half, ESCALATE * half):  # more restarts find a reproducible optimum if any
        runs = [
            kmeans_centroids(X, k, weights, n_restarts=each, n_iter=n_iter, random_state=seed)
            for seed in (random_state, random_state + 1)
        ]
        best = min(runs, key=lambda c: objective(X, c, weights))
        restarts_agree = adjusted_rand_score(labels_of(X, runs[0]), labels_of(X, runs[1]))
        if restarts_agree >= STABLE_ARI:
            return best, False
    found = consensus_centroids(
        X, k, weights, n_iter=n_iter, random_state=random_state, must_beat=restarts_agree
    )
    if found is None:
        return best, False
    return found[0], True


def consensus_centroids(
    X: np.ndarray,
    k: int,
    weights: np.ndarray | None = None,
    *,
    n_runs: int = CONSENSUS_RUNS,
    n_iter: int = 50,
    random_state: int = 0,
    must_beat: float = -1.0,
) -> tuple[np.ndarray, float] | None:
    """Centres from the co-association of ``n_runs`` single k-means runs, and how well the
    consensus of the first half of the runs agrees with that of the second half (ARI on every
    point, each after the Lloyd run that the final centres get too). None when a consensus
    holds fewer than ``k`` groups (every run put the same points together), or when the two
    halves agree no better than ``must_beat`` (then the consensus of all runs is not computed)."""
    rng = np.random.default_rng(random_state)
    rows = np.arange(len(X))
    if len(X) > CONSENSUS_SAMPLE:
        rows = np.sort(rng.choice(len(X), size=CONSENSUS_SAMPLE, replace=False))
    Xs = X[rows]
    ws = None if weights is None else np.asarray(weights, dtype=np.float64)[rows]
    seeds = rng.integers(0, 2**31 - 1, size=max(2, n_runs))
    runs = [
        labels_of(Xs, kmeans_centroids(Xs, k, ws, n_restarts=1, n_iter=n_iter, random_state=int(s)))
        for s in seeds
    ]
    half = len(runs) // 2
    first, second = co_association(runs[:half], k), co_association(runs[half:], k)
    w = np.ones(len(Xs)) if ws is None else ws + 1e-12

    def settled(together: np.ndarray) -> np.ndarray | None:
        """The cut of ``together`` and one Lloyd run on every point from its centres."""
        groups = cut(together, k)
        if groups is None:
            return None
        init = np.stack([np.average(Xs[groups == g], axis=0, weights=w[groups == g])
                         for g in range(k)])  # fmt: skip
        return kmeans_centroids(X, k, weights, n_iter=n_iter, random_state=random_state, init=init)

    halves = [settled(first), settled(second)]
    if halves[0] is None or halves[1] is None:
        return None
    # as the final centres will be used: each half's consensus after its Lloyd run, on all points
    agree = float(adjusted_rand_score(labels_of(X, halves[0]), labels_of(X, halves[1])))
    logger.debug("consensus of %d k-means runs on %d points, k=%d: halves agree %.3f "
                 "(to beat: %.3f)", len(runs), len(Xs), k, agree, must_beat)  # fmt: skip
    if agree <= must_beat:
        return None
    final = settled((first * half + second * (len(runs) - half)) / len(runs))
    return None if final is None else (final, agree)


def co_association(runs: list[np.ndarray], k: int) -> np.ndarray:
    """Share of the runs that put each pair of points in one group, (n, n) float32."""
    n = len(runs[0])
    columns = np.concatenate([labels + r * k for r, labels in enumerate(runs)])
    votes = csr_matrix(
        (np.ones(n * len(runs), dtype=np.float32), (np.tile(np.arange(n), len(runs)), columns)),
        shape=(n, len(runs) * k),
    )
    return (votes @ votes.T).toarray() / len(runs)


def cut(together: np.ndarray, k: int) -> np.ndarray | None:
    """``k`` groups by average linkage on 1 - co-association (None when fewer come out)."""
    distance = 1.0 - together[np.triu_indices(len(together), 1)]
    groups = fcluster(linkage(distance, method="average"), k, criterion="maxclust") - 1
    return groups if len(np.unique(groups)) == k else None
