"""Fusion of the text embedding with standardized behaviour features."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from segmenter.errors import SegmenterError
from segmenter.features import SKEWED

#: Behaviour features fused with the text embedding by default: what a business acts on
#: (value, frequency, recency, tenure, basket, returns) rather than every descriptive column.
DEFAULT_FUSION = (
    "recency_days",
    "frequency",
    "monetary",
    "tenure_days",
    "avg_order_value",
    "basket_size",
    "return_rate",
)


class FeatureScaler:
    """log1p for counts and money, then standardize and clip to +-``clip`` standard deviations.

    Parameters
    ----------
    columns : sequence of str
        Feature columns to use, in order.
    clip : float
        Standardized values are clipped to ``[-clip, clip]`` so that one extreme customer
        cannot dominate the distance.
    """

    def __init__(self, columns: Sequence[str] = DEFAULT_FUSION, *, clip: float = 5.0) -> None:
        self.columns = columns
        self.clip = clip

    def _raw(self, features: pl.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns if c not in features.columns]
        if missing:
            raise SegmenterError(
                f"fusion feature '{missing[0]}' is not a behaviour feature; available: "
                f"{[c for c in features.columns if c != 'user_id']}"
            )
        raw = features.select(list(self.columns)).to_numpy().astype(np.float64)
        skewed = [c in SKEWED for c in self.columns]
        raw[:, skewed] = np.log1p(np.clip(raw[:, skewed], 0.0, None))
        return raw

    def fit(self, features: pl.DataFrame) -> FeatureScaler:
        raw = self._raw(features)
        self.mean_ = raw.mean(axis=0)
        std = raw.std(axis=0)
        self.scale_ = np.where(std > 1e-12, std, 1.0)
        return self

    def transform(self, features: pl.DataFrame) -> np.ndarray:
        """Standardized features, ndarray of shape (n_users, n_columns), float32."""
        z = (self._raw(features) - self.mean_) / self.scale_
        return np.clip(z, -self.clip, self.clip).astype(np.float32)

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Parameters (JSON) and fitted arrays: mean and scale, each of shape (n_columns,)."""
        params = {"columns": list(self.columns), "clip": self.clip}
        return params, {"mean": self.mean_, "scale": self.scale_}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> FeatureScaler:
        """Rebuild a fitted scaler from :meth:`get_state`'s output (shapes are checked)."""
        self = cls([str(c) for c in params["columns"]], clip=float(params["clip"]))
        self.mean_, self.scale_ = arrays["mean"], arrays["scale"]
        if not self.mean_.shape == self.scale_.shape == (len(self.columns),):
            raise ValueError(f"mean/scale shapes do not match {len(self.columns)} columns")
        return self


def feature_factor(embeddings: np.ndarray, n_features: int, feature_weight: float) -> float:
    """Multiplier on the standardized features so that their block holds ``feature_weight``
    times the total variance of the text block (each standardized column has variance ~1).

    Parameters
    ----------
    embeddings : ndarray of shape (n_users, dim)
    n_features : int
        Columns of the standardized feature block.
    feature_weight : float
        ``SegmenterConfig.feature_weight`` (>= 0, checked there).

    Returns
    -------
    float
        The factor :func:`fuse` applies; 0 drops the features.
    """
    if n_features == 0 or feature_weight == 0:
        return 0.0
    text_var = float(embeddings.var(axis=0).sum()) if len(embeddings) > 1 else 1.0
    return float(np.sqrt(feature_weight * text_var / n_features))


def fuse(embeddings: np.ndarray, scaled: np.ndarray, factor: float) -> np.ndarray:
    """``[text embedding | factor * standardized features]``, float32.

    Parameters
    ----------
    embeddings : ndarray of shape (n_users, dim)
    scaled : ndarray of shape (n_users, n_features)
    factor : float
        From :func:`feature_factor`; 0 drops the features.
    """
    if len(embeddings) != len(scaled):
        raise SegmenterError(
            f"embeddings have {len(embeddings)} rows but features have {len(scaled)}"
        )
    if factor == 0 or scaled.shape[1] == 0:
        return np.ascontiguousarray(embeddings, dtype=np.float32)
    return np.hstack([embeddings, factor * scaled]).astype(np.float32)
