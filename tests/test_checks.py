"""One check per option: the config and the standalone stage classes say the same thing."""

from __future__ import annotations

import numpy as np
import pytest

from segmenter.cluster import DensityClusterer, KMeansClusterer, select_k
from segmenter.config import SegmenterConfig
from segmenter.errors import SegmenterError

X = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)


@pytest.mark.parametrize(
    ("standalone", "changes", "match"),
    [
        (lambda: KMeansClusterer(1).fit(X), {"k": 1}, "--k: '1' should be an integer >= 2"),
        (lambda: KMeansClusterer(4, n_iter=0).fit(X), {"n_iter": 0},
         "n_iter: 0 should be an integer >= 1"),
        (lambda: select_k(X, (5, 3)), {"k_range": (5, 3)}, "--k-range: 5:3 should satisfy"),
        (lambda: DensityClusterer(min_cluster_size=1).fit(X), {"min_cluster_size": 1},
         "--min-cluster-size: 1 should be an integer >= 2"),
    ],
)  # fmt: skip
def test_stage_guards_and_config_share_one_message(
    standalone: object, changes: dict, match: str
) -> None:
    with pytest.raises(SegmenterError, match=match):
        SegmenterConfig(**changes).validate()
    with pytest.raises(SegmenterError, match=match):
        standalone()  # type: ignore[operator]


def test_kmeans_needs_as_many_rows_as_segments() -> None:
    with pytest.raises(SegmenterError, match=r"n_customers=30 should be >= --k=40"):
        KMeansClusterer(40).fit(X)


@pytest.mark.parametrize(
    ("changes", "match"),
    [({"seed": -1}, "--seed: -1 should be an integer >= 0"),
     ({"feature_weight": float("nan")}, "--feature-weight: nan should be >= 0"),
     ({"k": True}, "--k: 'True' should be an integer >= 2 or 'auto'")],
)  # fmt: skip
def test_config_refuses(changes: dict, match: str) -> None:
    with pytest.raises(SegmenterError, match=match):
        SegmenterConfig(**changes).validate()
