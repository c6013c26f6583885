"""Stable k-means: consensus only where the seed would decide, and then seed-independent."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from segmenter.cluster.consensus import consensus_centroids, labels_of, stable_centroids
from segmenter.cluster.kmeans import KMeansClusterer, kmeans_centroids
from segmenter.cluster.tiered import TieredClusterer
from segmenter.config import SegmenterConfig
from segmenter.segment import taste_groups


def blobs(k: int, n: int, spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, 10)) * 2.0
    truth = rng.integers(0, k, n)
    return (centres[truth] + rng.normal(size=(n, 10)) * spread).astype(np.float32), truth


@pytest.fixture(scope="module")
def crowded() -> tuple[np.ndarray, np.ndarray]:
    """30 overlapping groups in 900 points: restarts land on different optima per seed."""
    return blobs(30, 900, 1.2)


def test_one_clear_optimum_needs_no_consensus() -> None:
    X, truth = blobs(4, 400, 0.3)
    centres, voted = stable_centroids(X, 4, n_restarts=6, random_state=3)
    assert not voted
    assert adjusted_rand_score(truth, labels_of(X, centres)) > 0.99


def test_consensus_makes_seeds_agree(crowded: tuple[np.ndarray, np.ndarray]) -> None:
    X, truth = crowded
    plain = [labels_of(X, kmeans_centroids(X, 30, n_restarts=10, random_state=s)) for s in (0, 1)]
    runs = [stable_centroids(X, 30, n_restarts=10, random_state=s) for s in (0, 1)]
    stable = [labels_of(X, centres) for centres, _ in runs]
    assert all(voted for _, voted in runs)
    assert adjusted_rand_score(*plain) < 0.9  # the seed decides without the consensus
    assert adjusted_rand_score(*stable) >= 0.95
    # and the consensus is nearer the truth than the best of the restarts, not only steadier
    assert adjusted_rand_score(truth, stable[0]) > adjusted_rand_score(truth, plain[0])


def test_consensus_is_deterministic_and_weighted(crowded: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = crowded
    weights = np.random.default_rng(1).uniform(0.5, 3.0, len(X))
    a = consensus_centroids(X, 30, weights, n_runs=20, random_state=5)
    b = consensus_centroids(X, 30, weights, n_runs=20, random_state=5)
    assert a is not None and b is not None
    np.testing.assert_array_equal(a[0], b[0])
    assert a[0].shape == (30, X.shape[1]) and a[1] == b[1] and 0.5 < a[1] <= 1.0


def test_too_few_distinct_points_falls_back() -> None:
    X = np.repeat(np.eye(3, dtype=np.float32), 20, axis=0)  # three distinct points only
    assert consensus_centroids(X, 5, n_runs=6) is None


def test_clusterers_take_the_consensus(crowded: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = crowded
    config = [SegmenterConfig(k=30, seed=s, n_restarts=10) for s in (0, 1)]
    flat = [taste_groups(X, 30, cfg) for cfg in config]
    assert all(m.consensus_ for m in flat)
    assert adjusted_rand_score(flat[0].labels_, flat[1].labels_) >= 0.95
    np.testing.assert_array_equal(flat[0].predict(X)[0], flat[0].labels_)
    with pytest.raises(ValueError, match="centroids hold 3 rows, k=30"):
        KMeansClusterer(30).adopt(X, X[:3])
    score = np.zeros(len(X))
    tiered = [
        TieredClusterer(30, n_tiers=1, n_restarts=10, random_state=s, stable=True).fit(X, score)
        for s in (0, 1)
    ]
    assert all(m.consensus_ for m in tiered)
    assert adjusted_rand_score(tiered[0].labels_, tiered[1].labels_) >= 0.95
    # a placed training customer gets back its segment
    np.testing.assert_array_equal(tiered[0].predict(X, score)[0], tiered[0].labels_)
