"""The numpy 2-D map (segmenter.layout) and FAISS's thread choice (segmenter.cluster.kmeans)."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest
from sklearn.manifold import trustworthiness
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from segmenter.cluster.kmeans import ONE_THREAD_POINTS, faiss_threads, kmeans_centroids, nearest
from segmenter.errors import SegmenterError
from segmenter.layout import _self_first, curve_params, fuzzy_graph, layout
from segmenter.reduce import Reducer


def _blobs(n_per: int = 80, groups: int = 5, dims: int = 12, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(groups, dims))
    X = np.vstack([c + rng.normal(size=(n_per, dims)) for c in centres]).astype(np.float32)
    return X, np.repeat(np.arange(groups), n_per)


def test_curve_params_match_umaps_values_for_its_default_min_dist() -> None:
    a, b = curve_params(0.1)
    assert a == pytest.approx(1.577, abs=0.01)  # umap-learn's find_ab_params(1.0, 0.1)
    assert b == pytest.approx(0.895, abs=0.01)


def test_fuzzy_graph_is_symmetric_with_weights_in_0_1() -> None:
    X, _ = _blobs(20, 3)
    sq, idx = faiss.knn(X, X, 6)
    graph = fuzzy_graph(np.sqrt(np.maximum(sq, 0)), idx).tocsr()
    assert abs(graph - graph.T).max() < 1e-12
    assert graph.data.min() > 0 and graph.data.max() <= 1.0 + 1e-12
    assert graph.diagonal().sum() == 0  # no point is its own neighbour


def test_layout_keeps_groups_apart_and_neighbours_together() -> None:
    X, groups = _blobs()
    Y = layout(X, random_state=0)
    assert Y.shape == (len(X), 2) and Y.dtype == np.float32 and np.isfinite(Y).all()
    # the floors umap's own tests use for trustworthiness, and groups readable on the map
    assert trustworthiness(X, Y, n_neighbors=10) >= 0.8
    assert cross_val_score(KNeighborsClassifier(10), Y, groups, cv=5).mean() >= 0.95


def test_layout_is_reproducible_and_seeded() -> None:
    X, _ = _blobs(30, 3)
    assert np.array_equal(layout(X, random_state=3), layout(X, random_state=3))
    assert not np.array_equal(layout(X, random_state=3), layout(X, random_state=4))


def test_layout_survives_duplicate_points() -> None:
    X = np.repeat(_blobs(10, 2)[0], 3, axis=0)
    assert np.isfinite(layout(X, n_neighbors=5)).all()


def test_numpy_map_saves_its_engine_and_places_training_points_back(tmp_path: Path) -> None:
    X, _ = _blobs(40, 3)
    reducer = Reducer(pca_dims=0, umap_dims=2, sample_size=60, engine="numpy", random_state=0)
    coords = reducer.fit_transform(X)
    params, arrays = reducer.get_state()
    loaded = Reducer.from_state(params, arrays)
    assert loaded.engine == "numpy"
    assert np.allclose(loaded.transform(X), coords)


def test_numpy_engine_draws_only_2d_maps() -> None:
    X, _ = _blobs(10, 2)
    with pytest.raises(SegmenterError, match="umap_dims=3 should be 2 with engine='numpy'"):
        Reducer(pca_dims=0, umap_dims=3, engine="numpy").fit_transform(X)
    with pytest.raises(SegmenterError, match="engine='tsne' should be"):
        Reducer(pca_dims=0, umap_dims=2, engine="tsne").fit_transform(X)  # type: ignore[arg-type]


def test_faiss_runs_small_inputs_on_one_thread_and_restores_the_count() -> None:
    before = faiss.omp_get_max_threads()
    with faiss_threads(100):
        assert faiss.omp_get_max_threads() == 1
    with faiss_threads(ONE_THREAD_POINTS):
        assert faiss.omp_get_max_threads() == before
    assert faiss.omp_get_max_threads() == before


def test_kmeans_centroids_find_the_blobs() -> None:
    X, groups = _blobs()
    centres = kmeans_centroids(X, 5, np.ones(len(X)), n_restarts=3, random_state=0)
    labels = faiss.knn(X, centres, 1)[1][:, 0]
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(groups, labels) >= 0.99


def test_restarts_on_a_sample_then_all_points_still_find_the_blobs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sklearn.metrics import adjusted_rand_score

    from segmenter.cluster import kmeans

    X, groups = _blobs()
    monkeypatch.setattr(kmeans, "RESTART_SAMPLE", 150)  # 400 points: restarts on 150 of them
    centres = kmeans.kmeans_centroids(X, 5, np.ones(len(X)), n_restarts=4, random_state=0)
    assert centres.shape == (5, X.shape[1])
    labels = faiss.knn(X, centres, 1)[1][:, 0]
    assert adjusted_rand_score(groups, labels) >= 0.99
    # seeded: the same sample and the same centres
    again = kmeans.kmeans_centroids(X, 5, np.ones(len(X)), n_restarts=4, random_state=0)
    assert np.array_equal(centres, again)


def test_identical_points_keep_themselves_first_in_the_graph() -> None:
    # triplets of identical points: FAISS may list a twin before the point itself
    X = np.repeat(np.random.default_rng(3).normal(size=(60, 5)), 3, axis=0).astype(np.float32)
    sq, idx = nearest(X, X, 6)
    sq, idx = _self_first(sq, idx)
    assert (idx[:, 0] == np.arange(len(X))).all()
    assert all(len(set(row)) == len(row) for row in idx.tolist())
    assert (np.diff(sq, axis=1) >= -1e-6).all()
    Y = layout(X, n_neighbors=6, n_epochs=30, random_state=0)
    assert np.isfinite(Y).all() and Y.shape == (180, 2)
