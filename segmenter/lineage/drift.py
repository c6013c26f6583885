"""Has the data moved since the model was fitted? A drift check that needs no refit.

At fit time the model keeps a :class:`DriftReference`: the decile edges and shares of every
behaviour feature, the segments' shares, the mean distance of customers to their centre, and
the vocabulary of items and categories. :func:`check_drift` places a new period's customers
with the saved model and compares: population stability index (PSI) per feature, the shift of
segment shares (total variation distance), the mean distance to the centre against training,
the share of returning customers who changed segment, and the share of events whose item or
category the model never saw. Any measure over its threshold makes the verdict "drifting".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from segmenter.data import EventData
    from segmenter.model import Segmenter

#: quantile bins of each feature's reference distribution
BINS = 10
#: at most this many item ids / categories are kept as the reference vocabulary
MAX_VOCABULARY = 50_000
#: verdict thresholds: mean PSI over the features (one feature's PSI is noisy on a few hundred
#: customers, and features measured from the data's last day such as recency move with it),
#: TVD of segment shares, distance ratio, moved share, out-of-vocabulary share of events
THRESHOLDS = {"psi": 0.10, "share_shift": 0.10, "distance_ratio": 1.25, "moved": 0.08, "oov": 0.25}
_EPS = 1e-4


def _edges(values: np.ndarray) -> np.ndarray:
    inner = np.unique(np.nanquantile(values, np.linspace(0, 1, BINS + 1)[1:-1]))
    out = np.full(BINS - 1, np.inf)
    out[: inner.size] = inner
    return out


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    finite = edges[np.isfinite(edges)]
    idx = np.searchsorted(finite, values, side="right")
    counts = np.bincount(idx, minlength=BINS)[:BINS].astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two share vectors (0 = same; > 0.25 = large shift)."""
    e, a = np.clip(expected, _EPS, None), np.clip(actual, _EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


class DriftReference:
    """What new data is compared with: fitted on the training customers.

    Fitted attributes: ``features_`` (names), ``edges_`` (n_features, BINS - 1), ``shares_``
    (n_features, BINS), ``segments_`` / ``segment_shares_``, ``mean_distance_``, ``items_``,
    ``categories_``.
    """

    def fit(
        self, features: pl.DataFrame, assignments: pl.DataFrame, events: pl.DataFrame
    ) -> DriftReference:
        names = [c for c, t in features.schema.items() if c != "user_id" and t.is_numeric()]
        cols = [features[c].cast(pl.Float64).fill_null(np.nan).to_numpy() for c in names]
        self.features_ = names
        self.edges_ = np.array([_edges(v) for v in cols]).reshape(len(names), BINS - 1)
        self.shares_ = np.array(
            [_shares(v, e) for v, e in zip(cols, self.edges_, strict=True)]
        ).reshape(len(names), BINS)
        counts = assignments["segment"].value_counts().sort("segment")
        self.segments_ = counts["segment"].to_numpy().astype(np.int64)
        self.segment_shares_ = counts["count"].to_numpy() / max(assignments.height, 1)
        self.mean_distance_ = float(np.nanmean(assignments["distance"].to_numpy()))
        self.items_ = _vocabulary(events, "item_id")
        self.categories_ = _vocabulary(events, "category")
        return self

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        params = {"features": self.features_, "mean_distance": self.mean_distance_,
                  "items": self.items_, "categories": self.categories_}  # fmt: skip
        arrays = {"edges": self.edges_.astype(np.float64), "shares": self.shares_,
                  "segments": self.segments_, "segment_shares": self.segment_shares_}  # fmt: skip
        return params, arrays

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> DriftReference:
        ref = cls()
        ref.features_ = [str(f) for f in params["features"]]
        ref.mean_distance_ = float(params["mean_distance"])
        ref.items_ = [str(i) for i in params["items"]]
        ref.categories_ = [str(c) for c in params["categories"]]
        ref.edges_, ref.shares_ = arrays["edges"], arrays["shares"]
        ref.segments_, ref.segment_shares_ = arrays["segments"], arrays["segment_shares"]
        if ref.edges_.shape != (len(ref.features_), BINS - 1):
            raise ValueError(f"edges of shape {ref.edges_.shape} for {len(ref.features_)} features")
        return ref


def _vocabulary(events: pl.DataFrame, column: str) -> list[str]:
    if column not in events.columns:
        return []
    values = events[column].drop_nulls().cast(pl.String).value_counts(sort=True)
    return sorted(values[column].head(MAX_VOCABULARY).to_list())


def _oov(events: pl.DataFrame, column: str, known: list[str]) -> float | None:
    if column not in events.columns or not known:
        return None
    values = events[column].drop_nulls().cast(pl.String)
    return _true_share(~values.is_in(known)) if values.len() else None


def _true_share(mask: pl.Series) -> float:
    """Share of True in a boolean series (0 when empty)."""
    return int(mask.sum()) / mask.len() if mask.len() else 0.0


@dataclass(frozen=True)
class DriftResult:
    """The drift check's measures and verdict (``stable`` or ``drifting``) with reasons."""

    verdict: str
    reasons: list[str]
    psi: dict[str, float]
    share_shift: float
    distance_ratio: float
    moved_share: float | None
    oov: dict[str, float | None]
    customers: int
    shares: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict, "reasons": self.reasons, "customers": self.customers,
            "psi": self.psi, "share_shift": self.share_shift,
            "distance_ratio": self.distance_ratio, "moved_share": self.moved_share,
            "oov": self.oov, "shares": self.shares, "thresholds": THRESHOLDS,
        }  # fmt: skip


def check_drift(
    model: Segmenter, data: EventData, *, previous: pl.DataFrame | None = None
) -> DriftResult:
    """Place ``data``'s customers with ``model`` and compare them with its reference.

    Parameters
    ----------
    model : Segmenter
        A fitted or loaded model with a ``reference_`` (models saved before this check
        existed have none: refit them).
    data : EventData
        The new period's events.
    previous : polars.DataFrame, optional
        ``user_id, segment`` the model gave at training (the run folder's assignments), for
        the share of returning customers who changed segment.
    """
    from segmenter.errors import SegmenterError

    ref = getattr(model, "reference_", None)
    if ref is None:
        raise SegmenterError(
            "--model: the model has no drift reference (it was saved by an older segmenter); "
            "re-fit it with python -m pipelines.discover"
        )
    placed = model.predict(data, map_coords=False)
    features = model.recipe_.features(data.events)
    scores: dict[str, float] = {}
    for name, edges, shares in zip(ref.features_, ref.edges_, ref.shares_, strict=True):
        if name in features.columns:
            values = features[name].cast(pl.Float64).fill_null(np.nan).to_numpy()
            scores[name] = round(psi(shares, _shares(values, edges)), 4)
    new_counts = dict(placed["segment"].value_counts().iter_rows())
    ids = sorted(set(ref.segments_.tolist()) | set(new_counts))
    old = dict(zip(ref.segments_.tolist(), ref.segment_shares_.tolist(), strict=True))
    new = {s: new_counts.get(s, 0) / max(placed.height, 1) for s in ids}
    shift = round(0.5 * sum(abs(new[s] - old.get(s, 0.0)) for s in ids), 4)
    ratio = round(
        float(np.nanmean(placed["distance"].to_numpy())) / max(ref.mean_distance_, 1e-12), 4
    )
    moved = None
    if previous is not None:
        both = previous.select("user_id", pl.col("segment").alias("_p")).join(
            placed.select("user_id", "segment"), on="user_id", how="inner"
        )
        moved = round(_true_share(both["_p"] != both["segment"]), 4) if both.height else None
    oov = {"items": _oov(data.events, "item_id", ref.items_),
           "categories": _oov(data.events, "category", ref.categories_)}  # fmt: skip
    reasons = _reasons(scores, shift, ratio, moved, oov)
    return DriftResult(
        "drifting" if reasons else "stable", reasons, scores, shift, ratio, moved,
        {k: None if v is None else round(v, 4) for k, v in oov.items()}, placed.height,
        {str(s): {"training": round(old.get(s, 0.0), 4), "new": round(new[s], 4)} for s in ids},
    )  # fmt: skip


def _reasons(
    scores: dict[str, float],
    shift: float,
    ratio: float,
    moved: float | None,
    oov: dict[str, float | None],
) -> list[str]:
    t = THRESHOLDS
    out = []
    mean = float(np.mean(list(scores.values()))) if scores else 0.0
    if mean > t["psi"]:
        top = sorted(scores.items(), key=lambda kv: -kv[1])[:3]
        named = ", ".join(f"{name} {v:.2f}" for name, v in top)
        out.append(f"behaviour features moved: mean PSI {mean:.2f} (> {t['psi']}; largest {named})")
    if shift > t["share_shift"]:
        out.append(f"segment shares moved by {shift:.2f} (total variation > {t['share_shift']})")
    if ratio > t["distance_ratio"]:
        out.append(f"customers sit {ratio:.2f}x farther from their centres than at training")
    if moved is not None and moved > t["moved"]:
        out.append(f"{moved:.0%} of returning customers changed segment (> {t['moved']:.0%})")
    for what, share in oov.items():
        if share is not None and share > t["oov"]:
            out.append(f"{share:.0%} of events name {what} the model never saw (> {t['oov']:.0%})")
    return out
