"""The segmentation pass: taste space and value score -> value tiers x taste segments.

Text carries taste (what customers buy and write), the behaviour features carry value (what
they spend, how often, how recently). The pass reduces the text embedding to its main
components (the taste space), scores value with :class:`~segmenter.balance.ValueAxis`
(standardized RFM weighted by what predicted later spend in the customers' own history), and
cuts customers into value tiers that taste then splits further
(:class:`~segmenter.cluster.tiered.TieredClusterer`); the number of tiers is chosen from the
data (:func:`~segmenter.balance.choose_tiers`) unless the user fixes it.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import numpy as np
import polars as pl

from segmenter.balance import ValueCheck, activity, choose_tiers, purchase_pairs, value_check
from segmenter.cluster import KMeansClusterer, select_k
from segmenter.cluster.tiered import TieredClusterer
from segmenter.config import SegmenterConfig
from segmenter.documents import DocumentRecipe
from segmenter.fuse import feature_factor, fuse

logger = logging.getLogger(__name__)


class Behaviour(NamedTuple):
    """What a segmentation pass reads of the training customers besides their embedding."""

    events: pl.DataFrame
    features: pl.DataFrame
    scaled: np.ndarray  # standardized fusion features (HDBSCAN; the deep head's check)
    score: np.ndarray  # value score
    check: ValueCheck | None  # the internal temporal split


class Placed(NamedTuple):
    """Where :meth:`Segmenter.transform` puts customers, one row each."""

    features: pl.DataFrame
    documents: pl.DataFrame
    taste: np.ndarray  # the reduced text embedding
    score: np.ndarray  # the value score
    reduced: np.ndarray  # the space the segments live in
    shown: np.ndarray  # what the 2-D map projects


class Segmented(NamedTuple):
    """What one fuse -> reduce -> map -> cluster pass gives, one row per customer."""

    reduced: np.ndarray
    coords: np.ndarray
    labels: np.ndarray
    confidence: np.ndarray
    distance: np.ndarray


def map_input(taste: np.ndarray, score: np.ndarray, factor: float) -> np.ndarray:
    """``[taste | factor * value score]``: what the 2-D map (and ``k = auto``) looks at."""
    return fuse(taste, score[:, None].astype(np.float32), factor)


def value_factor(taste: np.ndarray, cfg: SegmenterConfig) -> float:
    """Multiplier of the (unit-variance) value score next to the taste space: the score then
    holds ``feature_weight`` times the taste space's variance."""
    return feature_factor(taste, 1, cfg.feature_weight)


def resolve_k(cfg: SegmenterConfig, space: np.ndarray) -> tuple[int, list[dict[str, float]]]:
    """``cfg.k``, or the k that :func:`~segmenter.cluster.select_k` picks in ``space``."""
    if cfg.k != "auto":
        return int(cfg.k), []
    k, curve = select_k(space, cfg.k_range, random_state=cfg.seed)
    logger.info("chose k=%d", k)
    return int(k), curve


def value_history(events: pl.DataFrame, features: pl.DataFrame) -> ValueCheck | None:
    """The internal temporal split of these customers' history (:func:`value_check`)."""

    def behaviour_before(before: pl.DataFrame, cutoff: Any) -> pl.DataFrame:
        return DocumentRecipe().fit_features(before, as_of=cutoff)

    return value_check(events, features["user_id"].to_list(), behaviour_before)


def fit_tiers(
    taste: np.ndarray,
    score: np.ndarray,
    features: pl.DataFrame,
    events: pl.DataFrame,
    check: ValueCheck | None,
    cfg: SegmenterConfig,
    k: int,
) -> tuple[TieredClusterer, dict[str, Any]]:
    """Choose the tier count (unless ``cfg.value_tiers`` fixes it) and fit the segments.

    Returns
    -------
    clusterer : TieredClusterer
    balance : dict
        ``n_tiers``, ``chosen_by`` ("data" or "user") and the ``curve`` of the choice (one row
        per tier count: value and taste ratios to the specialists and their minimum).
    """
    weights = activity(features)
    curve: list[dict[str, float]] = []
    if cfg.value_tiers == "auto":
        pairs = purchase_pairs(events, features["user_id"].to_list())
        n_tiers, curve = choose_tiers(
            taste, score, weights, k, pairs=pairs, check=check,
            n_restarts=max(1, cfg.n_restarts // 3), random_state=cfg.seed,
        )  # fmt: skip
        chosen_by = "data"
    else:
        n_tiers, chosen_by = min(int(cfg.value_tiers), k), "user"
    clusterer = TieredClusterer(
        k, n_tiers=n_tiers, n_restarts=cfg.n_restarts, n_iter=cfg.n_iter, random_state=cfg.seed
    ).fit(taste, score, weights)
    balance = {"n_tiers": n_tiers, "chosen_by": chosen_by, "curve": _clean(curve)}
    return clusterer, balance


def taste_groups(taste: np.ndarray, k: int, cfg: SegmenterConfig) -> KMeansClusterer:
    """k-means on the taste space alone: the ``taste_group`` column."""
    return KMeansClusterer(
        k, n_restarts=cfg.n_restarts, n_iter=cfg.n_iter, random_state=cfg.seed
    ).fit(taste)


def _clean(curve: list[dict[str, float]]) -> list[dict[str, float | None]]:
    """JSON-safe: NaN (an axis that could not be checked) becomes null."""
    return [
        {key: None if isinstance(v, float) and np.isnan(v) else v for key, v in row.items()}
        for row in curve
    ]
