"""Counterfactuals on the actionable behaviour features: what would move a customer to a
neighbouring value tier, and so to the nearest segment there.

The value score is linear in the standardized RFM features, so the smallest change (in
standard deviations) that crosses a tier edge moves each actionable feature in proportion to its
weight; features that cannot change are held: tenure only grows with time, past orders and
spend cannot be undone (frequency and spend only go up), and a customer cannot have bought
less than 0 days ago. Changes are rounded the customer's way (whole orders) and the result is
checked by placing the changed customer again.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from segmenter.cluster.tiered import assign_tiers
from segmenter.explain.decision import ACTIONABLE, decide
from segmenter.features import RFM, SKEWED

#: Overshoot past the edge, in value-score units (so rounding cannot land on the edge).
OVERSHOOT = 0.02
#: Only go up (more orders, more spend); recency may go either way.
ONLY_UP = ("frequency", "monetary")


def _to_raw(name: str, z: float, mean: float, scale: float) -> float:
    x = z * scale + mean
    return float(np.expm1(x)) if name in SKEWED else float(x)


def _to_z(name: str, raw: float, mean: float, scale: float) -> float:
    x = np.log1p(max(raw, 0.0)) if name in SKEWED else raw
    return float((x - mean) / scale)


def suggest(model: Any, features: pl.DataFrame, up: bool) -> dict[str, float] | None:
    """New raw RFM values (changed features only) that take the one customer of ``features``
    across the edge above (``up``) or below its tier; None when nothing allowed can."""
    axis = model.value_axis_
    scaler, w = axis.scaler_, axis.loading_
    columns = list(scaler.columns)
    edges = model.clusterer_.edges_
    own = int(assign_tiers(axis.transform(features), edges)[0])
    if (up and own >= len(edges)) or (not up and own == 0):
        return None
    target = float(edges[own]) + OVERSHOOT if up else float(edges[own - 1]) - OVERSHOOT
    raw = {c: float(features[c][0]) for c in columns}
    z = {c: _to_z(c, raw[c], scaler.mean_[j], scaler.scale_[j]) for j, c in enumerate(columns)}
    zc = {c: float(np.clip(z[c], -scaler.clip, scaler.clip)) for c in columns}
    lo, hi = {}, {}
    for j, c in enumerate(columns):
        lo[c], hi[c] = -scaler.clip, scaler.clip
        if c in ONLY_UP:
            lo[c] = zc[c]
        if c == "recency_days":
            lo[c] = max(lo[c], _to_z(c, 0.0, scaler.mean_[j], scaler.scale_[j]))
    free = [c for c in ACTIONABLE if c in columns and abs(w[columns.index(c)]) > 1e-12]
    new = dict(zc)
    for _ in range(len(free) + 1):
        need = target - sum(w[j] * new[c] for j, c in enumerate(columns))
        if (need <= 0) if up else (need >= 0):
            break
        active = [c for c in free if (lo[c] < new[c] < hi[c]) or
                  (new[c] <= lo[c] and need * w[columns.index(c)] > 0) or
                  (new[c] >= hi[c] and need * w[columns.index(c)] < 0)]  # fmt: skip
        norm = sum(w[columns.index(c)] ** 2 for c in active)
        if not active or norm < 1e-12:
            return None
        for c in active:
            new[c] = float(np.clip(new[c] + need * w[columns.index(c)] / norm, lo[c], hi[c]))
    need = target - sum(w[j] * new[c] for j, c in enumerate(columns))
    if (need > 1e-9) if up else (need < -1e-9):
        return None
    out: dict[str, float] = {}
    for j, c in enumerate(columns):
        if c not in free or abs(new[c] - zc[c]) < 1e-9:
            continue
        value = _to_raw(c, new[c], scaler.mean_[j], scaler.scale_[j])
        if c == "frequency":
            value = float(np.ceil(value - 1e-9))
        elif c == "monetary":
            value = float(np.ceil(value * 100 - 1e-6) / 100)
        elif c == "recency_days":
            value = float(np.floor(value) if w[j] * (1 if up else -1) < 0 else np.ceil(value))
            value = max(value, 0.0)
        if value != raw[c]:
            out[c] = value
    return out or None


def apply(features: pl.DataFrame, change: dict[str, float]) -> pl.DataFrame:
    """``features`` with the changed values (a new frame; the input is left as it is)."""
    return features.with_columns(
        [pl.lit(v, dtype=features.schema[c]).alias(c) for c, v in change.items()]
    )


def counterfactual(model: Any, features: pl.DataFrame, taste: np.ndarray) -> dict[str, Any] | None:
    """The cheapest move of one customer to a neighbouring value tier.

    Parameters
    ----------
    features : polars.DataFrame
        One row: the customer's behaviour features.
    taste : ndarray of shape (1, dims)
        Its taste vector (unchanged: the move is behaviour only).

    Returns
    -------
    dict or None
        ``change`` (feature -> new raw value), ``before`` (feature -> old value), ``target``
        (the segment it should land in), ``landed`` (where placing the changed customer puts
        it) and ``cost`` (the change in standard deviations); None when no allowed change
        crosses an edge (a single tier, or every move blocked).
    """
    axis = model.value_axis_
    best: dict[str, Any] | None = None
    for up in (True, False):
        change = suggest(model, features, up)
        if change is None:
            continue
        moved = apply(features, change)
        decision = decide(model, taste, axis.transform(moved))
        z0 = axis.scaler_.transform(features)[0]
        z1 = axis.scaler_.transform(moved)[0]
        cost = float(np.abs(z1 - z0).sum())
        own = decide(model, taste, axis.transform(features)).tier[0]
        tier = own + 1 if up else own - 1
        centres = model.clusterer_.tier_of_
        d2 = decision.d2[0]
        target = int(min(np.flatnonzero(centres == tier), key=lambda c: d2[c]))
        row = {
            "change": change,
            "before": {c: float(features[c][0]) for c in change},
            "target": target,
            "landed": int(decision.segment[0]),
            "cost": round(cost, 4),
            "direction": "up" if up else "down",
        }
        if best is None or cost < best["cost"]:
            best = row
    return best


__all__ = ["RFM", "apply", "counterfactual", "suggest"]
