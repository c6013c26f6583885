"""Configuration of a discovery run (frozen; validated before any work starts)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from segmenter.errors import SegmenterError
from segmenter.fuse import DEFAULT_FUSION

Method = Literal["kmeans", "hdbscan"]
METHODS: tuple[str, ...] = ("kmeans", "hdbscan")


@dataclass(frozen=True)
class SegmenterConfig:
    """Every option of the discovery pipeline; one ``seed`` drives every random step.

    Attributes
    ----------
    method : {"kmeans", "hdbscan"}
    k : int or "auto"
        Number of segments for k-means; ``"auto"`` picks it in ``k_range``.
    feature_weight : float
        Variance of the behaviour-feature block relative to the text block (0 = text only).
    """

    method: Method = "kmeans"
    k: int | Literal["auto"] = 8
    k_range: tuple[int, int] = (3, 14)
    seed: int = 0
    feature_weight: float = 0.6
    fusion_features: tuple[str, ...] = DEFAULT_FUSION
    pca_dims: int = 50
    umap_dims: int = 10
    umap_neighbors: int = 15
    umap_sample: int = 50_000
    n_restarts: int = 5
    n_iter: int = 50
    min_cluster_size: int | None = None
    assign_outliers: bool = False
    max_tokens: int = 128
    encoder: str | None = None
    device: str = "auto"
    batch_size: int = 64
    deep: bool = False
    deep_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> SegmenterConfig:
        """Raise :class:`SegmenterError` for the first bad option; return self."""
        if self.method not in METHODS:
            raise SegmenterError(f"--method: '{self.method}' is not one of {list(METHODS)}")
        if self.k != "auto" and (
            isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 2
        ):
            raise SegmenterError(f"--k: '{self.k}' should be an integer >= 2 or 'auto'")
        lo, hi = self.k_range
        if lo < 2 or hi < lo:
            raise SegmenterError(f"--k-range: {lo}:{hi} should satisfy 2 <= min <= max")
        if not self.feature_weight >= 0:
            raise SegmenterError(f"--feature-weight: {self.feature_weight} should be >= 0")
        for name in ("pca_dims", "umap_dims"):
            if getattr(self, name) < 0:
                raise SegmenterError(f"--{name.replace('_', '-')}: {getattr(self, name)} < 0")
        if self.umap_neighbors < 2:
            raise SegmenterError(f"--umap-neighbors: {self.umap_neighbors} should be >= 2")
        if self.umap_sample < 100:
            raise SegmenterError(f"--umap-sample: {self.umap_sample} should be >= 100")
        if self.n_restarts < 1 or self.n_iter < 1:
            raise SegmenterError(
                f"n_restarts={self.n_restarts} and n_iter={self.n_iter} should be >= 1"
            )
        if self.min_cluster_size is not None and self.min_cluster_size < 2:
            raise SegmenterError(f"--min-cluster-size: {self.min_cluster_size} should be >= 2")
        if self.max_tokens < 16:
            raise SegmenterError(f"--max-tokens: {self.max_tokens} should be >= 16")
        if self.batch_size < 1:
            raise SegmenterError(f"--batch-size: {self.batch_size} should be >= 1")
        return self

    def replace(self, **changes: Any) -> SegmenterConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["k_range"] = list(self.k_range)
        out["fusion_features"] = list(self.fusion_features)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmenterConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "k_range" in kwargs:
            kwargs["k_range"] = tuple(kwargs["k_range"])
        if "fusion_features" in kwargs:
            kwargs["fusion_features"] = tuple(kwargs["fusion_features"])
        return cls(**kwargs)
