"""How many value tiers a segmentation should have, chosen from the data itself.

The segments must carry value (what a customer will spend) and taste (what they will buy). Both
are checked without labels, on the user's own history:

* value: an internal temporal split. Behaviour before a cut-off three quarters of the way
  through the history gives each customer a value score; the rank eta-squared of their spend
  after it, explained by the segments, is compared with RFM + k-means on the same split.
* taste: each segment's 50 most-bought items, from half of its members' purchases, against
  the other half (:func:`heldout_hit_rate`); compared with pure taste segments.

The tier count ``t`` in ``1..k`` with the largest worse-of-the-two ratio wins: the balanced score
B = min(value / RFM's value, taste / text's taste) of the benchmark, estimated in-sample.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl
from scipy.stats import rankdata

from segmenter.cluster.kmeans import KMeansClusterer
from segmenter.cluster.tiered import TieredClusterer, assign_tiers, tier_edges
from segmenter.errors import SegmenterError
from segmenter.features import RFM
from segmenter.fuse import FeatureScaler
from segmenter.quality import eta_squared

logger = logging.getLogger(__name__)

#: Share of the history (in time) that the internal value check treats as the past.
SPLIT_SHARE = 0.75
#: Customers used to choose the tier count (a seeded sample beyond it).
CHOICE_SAMPLE = 20_000
#: Customers of the internal split whose value the choice checks: their documents as of the
#: cut-off are encoded again, so the sample bounds that extra work.
VALUE_SAMPLE = 3_000
N_TOP = 50
#: An axis counts only when its specialist beats chance by this factor (value: eta^2 of k
#: random groups, (k-1)/(n-1)) or lift (taste: hit rate of the whole base's top items).
SIGNAL = 3.0
#: Ridge of the learned value weights, per customer (standardized columns have variance 1).
RIDGE = 0.1
MIN_LIFT = 1.05


class ValueAxis:
    """A value score: standardized RFM weighted by how it predicted later spend on the user's
    own history (:func:`value_check`), else their first principal component oriented so spend
    goes up; unit variance on the training customers, cut into ``n_tiers`` equal-size tiers.

    Parameters
    ----------
    n_tiers : int
        Tiers of the ``value_tier`` column (0 = lowest value).

    Attributes
    ----------
    scaler_ : FeatureScaler
    loading_ : ndarray of shape (4,)
        Weights of recency, frequency, monetary and tenure (zeros when they are all constant).
    edges_ : ndarray
        Scores between tiers.
    """

    def __init__(self, n_tiers: int = 4) -> None:
        self.n_tiers = n_tiers

    def fit(self, features: pl.DataFrame, check: ValueCheck | None = None) -> ValueAxis:
        """Fit on the customers' ``features``; ``check`` gives the learned weights."""
        self.scaler_ = FeatureScaler(RFM).fit(features)
        Z = self.scaler_.transform(features).astype(np.float64)
        loading = principal_loading(Z) if check is None else check.loading
        spread = float((Z @ loading).std()) if len(Z) > 1 else 0.0
        self.loading_ = loading / spread if spread > 1e-12 else np.zeros(Z.shape[1])
        self.edges_ = tier_edges(self.transform(features), self.n_tiers)
        return self

    def transform(self, features: pl.DataFrame) -> np.ndarray:
        """Value score of each customer, ndarray of shape (n_users,)."""
        return self.scaler_.transform(features).astype(np.float64) @ self.loading_

    def tiers(self, score: np.ndarray) -> np.ndarray:
        """Value tier of each score (0 = lowest)."""
        return assign_tiers(score, self.edges_)

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        params, arrays = self.scaler_.get_state()
        state = {"n_tiers": self.n_tiers, "scaler": params}
        return state, {**arrays, "loading": self.loading_, "edges": self.edges_}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> ValueAxis:
        arrays = dict(arrays)
        self = cls(int(params["n_tiers"]))
        self.loading_ = arrays.pop("loading").astype(np.float64)
        self.edges_ = arrays.pop("edges").astype(np.float64)
        self.scaler_ = FeatureScaler.from_state(params["scaler"], arrays)
        return self


def principal_loading(Z: np.ndarray) -> np.ndarray:
    """First principal direction of ``Z`` (n, 4), oriented so that spend goes up."""
    if len(Z) < 2 or float(Z.var(axis=0).sum()) < 1e-12:
        return np.zeros(Z.shape[1])
    _, _, vt = np.linalg.svd(Z - Z.mean(axis=0), full_matrices=False)
    return vt[0] if vt[0][RFM.index("monetary")] >= 0 else -vt[0]


def spend_loading(Z: np.ndarray, future: np.ndarray) -> np.ndarray:
    """Weights of standardized RFM ``Z`` (n, 4: recency, frequency, monetary, tenure) that best
    predict the ranks of later spend: ridge least squares (the ridge, a tenth of the customers,
    shares weight between collinear columns such as frequency and spend) with the signs that
    make it a value score: more orders and more spend never lower it, a longer time since the
    last order never raises it (tenure may go either way). The principal direction when
    nothing predicts.
    """
    from scipy.optimize import nnls

    signs = {"recency_days": -1.0, "frequency": 1.0, "monetary": 1.0}
    # columns as they may enter: signed ones once, free ones twice (+ and -)
    cols = [(j, signs.get(name, 1.0)) for j, name in enumerate(RFM)]
    cols += [(j, -1.0) for j, name in enumerate(RFM) if name not in signs]
    Zc, y = Z - Z.mean(axis=0), future - future.mean()
    A = np.column_stack([sign * Zc[:, j] for j, sign in cols])
    ridge = np.sqrt(RIDGE * len(Z)) * np.eye(len(cols))
    weights, _ = nnls(np.vstack([A, ridge]), np.r_[y, np.zeros(len(cols))])
    coef = np.zeros(Z.shape[1])
    for (j, sign), w in zip(cols, weights, strict=True):
        coef[j] += sign * w
    return coef if np.abs(coef).sum() > 1e-12 else principal_loading(Z)


def activity(features: pl.DataFrame) -> np.ndarray:
    """Weight of each customer in the taste spread: distinct items bought (orders when there
    are no items; 1 when neither), capped at the 99th percentile so wholesalers do not rule."""
    for column in ("n_distinct_items", "frequency"):
        if column in features.columns:
            values = features[column].fill_null(0).to_numpy().astype(np.float64)
            if values.max(initial=0) > 0:
                cap = float(np.quantile(values, 0.99))
                return np.clip(values, 1.0, max(cap, 1.0))
    return np.ones(features.height)


@dataclass(frozen=True)
class ValueCheck:
    """The internal temporal split: value scores before it, spend ranks after it."""

    rows: np.ndarray  # indices (into the customers) of those active before the cut-off
    score: np.ndarray  # their value score from the earlier history
    rfm: np.ndarray  # their standardized RFM from the earlier history
    future: np.ndarray  # ranks of their spend after the cut-off
    cutoff: datetime
    loading: np.ndarray  # weights of standardized RFM that best predict that spend


def value_check(events: pl.DataFrame, customers: list[str], behaviour_fn: Any) -> ValueCheck | None:
    """Build the internal temporal split; ``None`` when it cannot say anything.

    ``behaviour_fn(events, as_of)`` computes the behaviour features (one row per customer of
    ``events``, sorted by user id).
    """
    first, last = events["timestamp"].min(), events["timestamp"].max()
    if first is None or last is None or last <= first:  # type: ignore[operator]
        return None
    cutoff = first + (last - first) * SPLIT_SHARE  # type: ignore[operator]
    before = events.filter(pl.col("timestamp") < cutoff)
    purchases = pl.col("event_type") == "purchase"
    if before.filter(purchases).height == 0:
        return None
    features = behaviour_fn(before, cutoff)
    index = pl.DataFrame({"user_id": customers, "_row": np.arange(len(customers))})
    features = features.join(index, on="user_id", how="inner").sort("_row")
    money = pl.col("amount") if "amount" in events.columns else pl.lit(1.0)
    after = (
        events.filter((pl.col("timestamp") >= cutoff) & purchases)
        .group_by("user_id")
        .agg(money.fill_null(0).sum().alias("_spend"), pl.len().alias("_n"))
    )
    joined = features.select("user_id", "_row").join(after, on="user_id", how="left")
    spend = joined["_spend"].fill_null(0).to_numpy().astype(np.float64)
    if np.ptp(spend) == 0:
        spend = joined["_n"].fill_null(0).to_numpy().astype(np.float64)
    if features.height < 10 or np.ptp(spend) == 0:
        return None
    rfm = FeatureScaler(RFM).fit(features).transform(features).astype(np.float64)
    future = rankdata(spend)
    loading = spend_loading(rfm, future)
    return ValueCheck(
        rows=features["_row"].to_numpy(),
        score=rfm @ loading,
        rfm=rfm,
        future=future,
        cutoff=cutoff,  # type: ignore[arg-type]
        loading=loading,
    )


def sample_check(check: ValueCheck, n: int, seed: int) -> ValueCheck:
    """At most ``n`` customers of the internal split, a seeded sample in their order (the
    learned ``loading`` stays the one of every customer)."""
    if len(check.rows) <= n:
        return check
    keep = np.sort(np.random.default_rng(seed).choice(len(check.rows), size=n, replace=False))
    return replace(
        check,
        rows=check.rows[keep],
        score=check.score[keep],
        rfm=check.rfm[keep],
        future=check.future[keep],
    )


def purchase_pairs(events: pl.DataFrame, customers: list[str]) -> np.ndarray:
    """Distinct (customer row, item code) purchases, ndarray of shape (n_pairs, 2), int64.

    Sorted by customer row, then item; item codes are the items' ranks in sorted order. Both
    depend on the events alone: :func:`heldout_hit_rate` holds out pairs by position and breaks
    ties by code, so an order left to polars' threads (``unique``) or codes left to the
    process's categorical cache could change the tier choice from one run to the next.
    """
    key = next((c for c in ("item_id", "item_name", "category") if c in events.columns), None)
    if key is None:
        return np.empty((0, 2), dtype=np.int64)
    index = pl.DataFrame({"user_id": customers, "_row": np.arange(len(customers))})
    pairs = (
        events.filter((pl.col("event_type") == "purchase") & pl.col(key).is_not_null())
        .select("user_id", pl.col(key).cast(pl.String).alias("_item"))
        .unique()
        .join(index, on="user_id", how="inner")
        .with_columns((pl.col("_item").rank("dense") - 1).alias("_code"))
        .sort("_row", "_code")
    )
    return np.column_stack([pairs["_row"].to_numpy(), pairs["_code"].to_numpy()]).astype(np.int64)


def heldout_hit_rate(
    pairs: np.ndarray, labels: np.ndarray, n_top: int = N_TOP, *, random_state: int = 0
) -> float:
    """Share of held-out purchases whose item is in the customer's segment's top items.

    Half of the distinct (customer, item) purchases, drawn at random, make each segment's
    ``n_top`` list (most distinct buyers first, ties by item code, as the benchmark's taste
    lift does with the purchases before its cut-off); the other half are scored against it,
    so no purchase votes for itself.
    """
    rng = np.random.default_rng(random_state)
    held = rng.random(len(pairs)) < 0.5
    groups = labels[pairs[:, 0]]
    n_items = int(pairs[:, 1].max()) + 1
    listed = np.zeros((int(labels.max()) + 1, n_items), dtype=bool)
    for g in np.unique(groups[~held]):
        items, counts = np.unique(pairs[~held & (groups == g), 1], return_counts=True)
        listed[g, items[np.lexsort((items, -counts))[:n_top]]] = True
    if not held.any():
        return float("nan")
    return float(listed[groups[held], pairs[held, 1]].mean())


def choose_tiers(
    X: np.ndarray,
    score: np.ndarray,
    weights: np.ndarray,
    k: int,
    *,
    pairs: np.ndarray,
    check: ValueCheck | None,
    past_taste: np.ndarray | None = None,
    past_weights: np.ndarray | None = None,
    n_restarts: int = 10,
    random_state: int = 0,
) -> tuple[int, list[dict[str, float]]]:
    """The tier count in ``1..k`` with the best worse-of-the-two ratio, and the whole curve.

    Parameters
    ----------
    X : ndarray of shape (n_users, dims)
        Taste space (reduced text embedding).
    score : ndarray of shape (n_users,)
        Value score from the whole history.
    weights : ndarray of shape (n_users,)
        :func:`activity`.
    pairs : ndarray of shape (n_pairs, 2)
        :func:`purchase_pairs` (may be empty: taste is then the explained text spread).
    check : ValueCheck or None
        :func:`value_check` (None: value cannot be checked, so no tiers are spent on it).
    past_taste : ndarray of shape (len(check.rows), dims), optional
        Taste space of the check's customers from their documents as of its cut-off. The
        value side of each tier count is scored with it, so that no segment is told by what a
        customer bought after the cut-off (documents of the whole history are a leak: more
        purchases later make a document longer). Default ``X[check.rows]``, leak included.
    past_weights : ndarray of shape (len(check.rows),), optional
        Their :func:`activity` at the cut-off (default ``weights[check.rows]``).

    Returns
    -------
    n_tiers : int
    curve : list of dict
        One row per tier count: ``n_tiers``, ``value`` and ``taste`` (ratios to the
        specialists) and ``balance`` (their minimum).
    """
    if k < 1 or len(X) < k:
        raise SegmenterError(f"n_samples={len(X)} should be >= k={k}")
    sample = _sample(len(X), random_state)
    Xs, ss, ws = X[sample], score[sample], weights[sample]
    spread_all = _weighted_spread(Xs, np.zeros(len(Xs), dtype=np.int64), ws)
    taste_on = spread_all > 1e-9
    pairs_s = _remap_pairs(pairs, sample, len(X))
    use_items = taste_on and len(pairs_s) > 0

    def fit(t: int, Xa: np.ndarray, sa: np.ndarray, wa: np.ndarray) -> np.ndarray:
        model = TieredClusterer(k, n_tiers=t, n_restarts=n_restarts, random_state=random_state)
        return model.fit(Xa, sa, wa).labels_

    value_ref = float("nan")
    if check is not None and len(check.rows) > 2 * k:
        ref = KMeansClusterer(k, n_restarts=n_restarts, random_state=random_state)
        value_ref = eta_squared(check.future, ref.fit(check.rfm).labels_)
        # no better than k random groups: the history does not predict spend at all
        if value_ref < SIGNAL * (k - 1) / (len(check.rows) - 1):
            logger.info("value check: RFM explains no more of later spend than chance")
            value_ref = float("nan")
    if not taste_on:  # every document alike: nothing to split by taste
        return k, _unchecked(k)
    if check is None or np.isnan(value_ref):  # nothing bought, or spend not predictable
        return 1, _unchecked(k)
    taste_labels = {t: fit(t, Xs, ss, ws) for t in range(1, k + 1)}
    if use_items:  # taste is checked only where a segment's list beats the global one
        everyone = heldout_hit_rate(
            pairs_s, np.zeros(len(Xs), dtype=np.int64), random_state=random_state
        )
        by_taste = heldout_hit_rate(pairs_s, taste_labels[1], random_state=random_state)
        taste_on = by_taste > MIN_LIFT * everyone
    rows: list[dict[str, float]] = []
    rows_x = X[check.rows] if past_taste is None else past_taste
    rows_w = weights[check.rows] if past_weights is None else past_weights
    for t, labels in taste_labels.items():
        if not taste_on:
            taste = float("nan")
        elif use_items:
            taste = heldout_hit_rate(pairs_s, labels, random_state=random_state)
        else:
            taste = 1.0 - _weighted_spread(Xs, labels, ws) / spread_all
        value = eta_squared(check.future, fit(t, rows_x, check.score, rows_w))
        rows.append({"n_tiers": t, "value_raw": value, "taste_raw": taste})
    taste_ref = rows[0]["taste_raw"]
    for row in rows:
        row["value"] = row["value_raw"] / value_ref
        row["taste"] = row["taste_raw"] / taste_ref if taste_ref > 0 else float("nan")
        known = [x for x in (row["value"], row["taste"]) if not np.isnan(x)]
        row["balance"] = min(known)
    # no taste signal: every segment goes to value
    best = k if np.isnan(rows[0]["taste"]) else int(np.argmax([r["balance"] for r in rows])) + 1
    logger.info("value tiers: chose %d of %d segments (balance %.3f)", best, k,
                rows[best - 1]["balance"])  # fmt: skip
    return best, rows


def _unchecked(k: int) -> list[dict[str, float]]:
    nan = float("nan")
    names = ("value_raw", "taste_raw", "value", "taste", "balance")
    return [{"n_tiers": t, **dict.fromkeys(names, nan)} for t in range(1, k + 1)]


def _sample(n: int, seed: int) -> np.ndarray:
    if n <= CHOICE_SAMPLE:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=CHOICE_SAMPLE, replace=False))


def _remap_pairs(pairs: np.ndarray, sample: np.ndarray, n: int) -> np.ndarray:
    if len(pairs) == 0 or len(sample) == n:
        return pairs
    position = np.full(n, -1)
    position[sample] = np.arange(len(sample))
    kept = position[pairs[:, 0]] >= 0
    return np.column_stack([position[pairs[kept, 0]], pairs[kept, 1]])


def _weighted_spread(X: np.ndarray, labels: np.ndarray, w: np.ndarray) -> float:
    total = 0.0
    for g in np.unique(labels):
        m = labels == g
        centre = np.average(X[m], axis=0, weights=w[m])
        total += float((w[m] * ((X[m] - centre) ** 2).sum(axis=1)).sum())
    return total
