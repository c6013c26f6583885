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
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import polars as pl

from segmenter.balance import (
    VALUE_SAMPLE,
    ValueCheck,
    activity,
    choose_tiers,
    purchase_pairs,
    sample_check,
    value_check,
)
from segmenter.checks import check_enough
from segmenter.cluster import KMeansClusterer, select_k
from segmenter.cluster.consensus import stable_centroids
from segmenter.cluster.tiered import TieredClusterer
from segmenter.config import SegmenterConfig
from segmenter.documents import DocumentRecipe
from segmenter.features import behaviour as behaviour_features
from segmenter.fuse import feature_factor, fuse

logger = logging.getLogger(__name__)


class Past(NamedTuple):
    """A sample of the internal split's customers as they were at its cut-off."""

    check: ValueCheck  # the sample (:func:`~segmenter.balance.sample_check`)
    changed: np.ndarray  # bool, per sampled customer: their document then differs from now
    documents: list[str]  # the documents then of those whose document changed
    weights: np.ndarray  # their activity then (:func:`~segmenter.balance.activity`)


class Behaviour(NamedTuple):
    """What a segmentation pass reads of the training customers besides their embedding."""

    events: pl.DataFrame
    features: pl.DataFrame
    scaled: np.ndarray  # standardized fusion features (HDBSCAN; the deep head's check)
    score: np.ndarray  # value score
    check: ValueCheck | None  # the internal temporal split
    past: Past | None = None  # what the tier choice scores value with (None: no choice)


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


def past_documents(
    recipe: DocumentRecipe,
    events: pl.DataFrame,
    documents: pl.DataFrame,
    users: pl.DataFrame | None,
    check: ValueCheck,
    seed: int,
) -> Past:
    """The documents that a sample of the internal split's customers had at its cut-off.

    The tier choice scores value on them: documents of the whole history hold what a customer
    bought after the cut-off, which would let taste segments look as if they foretold spend.
    Only documents that changed need encoding again.
    """
    check = sample_check(check, VALUE_SAMPLE, seed)
    users_then = pl.DataFrame({"user_id": documents["user_id"].gather(check.rows)})
    before = events.filter(pl.col("timestamp") < check.cutoff).join(
        users_then, on="user_id", how="semi"
    )
    features = behaviour_features(
        before, as_of=check.cutoff, channels=recipe.channels_, median_gap=recipe.median_gap_
    )
    features = users_then.join(features, on="user_id", how="left", maintain_order="left")
    then = recipe.documents(before, features, users)["document"].to_numpy()
    now = documents["document"].gather(check.rows).to_numpy()
    changed = then != now
    logger.debug("value check: %d of %d documents differ at the cut-off", changed.sum(), len(now))
    return Past(check, changed, then[changed].tolist(), activity(features))


def past_embedding(
    past: Past, emb: np.ndarray, embed: Callable[[list[str]], np.ndarray]
) -> np.ndarray:
    """Embedding of the :class:`Past` customers' documents at the cut-off, shape
    (n_sampled, dim): rows of ``emb`` where nothing changed, ``embed`` of the rest."""
    out = emb[past.check.rows].copy()
    if past.changed.any():
        out[past.changed] = embed(past.documents)
    return out


def fit_tiers(
    taste: np.ndarray,
    score: np.ndarray,
    features: pl.DataFrame,
    events: pl.DataFrame,
    check: ValueCheck | None,
    cfg: SegmenterConfig,
    k: int,
    past_taste: np.ndarray | None = None,
    past_weights: np.ndarray | None = None,
) -> tuple[TieredClusterer, dict[str, Any]]:
    """Choose the tier count (unless ``cfg.value_tiers`` fixes it) and fit the segments.

    ``check`` and ``past_taste`` (the taste space of its customers' documents at its cut-off,
    :func:`past_embedding`) are what :func:`~segmenter.balance.choose_tiers` scores value on.

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
            taste, score, weights, k, pairs=pairs, check=check, past_taste=past_taste,
            past_weights=past_weights,
            n_restarts=max(1, cfg.n_restarts // 3), random_state=cfg.seed,
        )  # fmt: skip
        chosen_by = "data"
    else:
        n_tiers, chosen_by = min(int(cfg.value_tiers), k), "user"
    clusterer = TieredClusterer(
        k, n_tiers=n_tiers, n_restarts=cfg.n_restarts, n_iter=cfg.n_iter, random_state=cfg.seed,
        stable=True,
    ).fit(taste, score, weights)  # fmt: skip
    balance = {
        "n_tiers": n_tiers,
        "chosen_by": chosen_by,
        "curve": _clean(curve),
        "consensus": bool(clusterer.consensus_),
    }
    return clusterer, balance


def taste_groups(taste: np.ndarray, k: int, cfg: SegmenterConfig) -> KMeansClusterer:
    """k-means on the taste space alone: the ``taste_group`` column (seed-stable: see
    :func:`~segmenter.cluster.consensus.stable_centroids`; ``consensus_`` says if it voted)."""
    model = KMeansClusterer(k, n_restarts=cfg.n_restarts, n_iter=cfg.n_iter, random_state=cfg.seed)
    check_enough(len(taste), k)
    centres, voted = stable_centroids(
        taste, k, n_restarts=cfg.n_restarts, n_iter=cfg.n_iter, random_state=cfg.seed
    )
    return model.adopt(taste, centres, consensus=voted)


def _clean(curve: list[dict[str, float]]) -> list[dict[str, float | None]]:
    """JSON-safe: NaN (an axis that could not be checked) becomes null."""
    return [
        {key: None if isinstance(v, float) and np.isnan(v) else v for key, v in row.items()}
        for row in curve
    ]
