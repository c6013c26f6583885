"""Per-segment statistics and automatic short names."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from segmenter.data import EventData
    from segmenter.model import Segmenter

#: (feature, word when the segment median is clearly above the base, word when below)
_NAME_FACTS = (
    ("monetary", "High value", "Low value"),
    ("frequency", "Frequent", "Infrequent"),
    ("recency_days", "Lapsed", "Active"),
    ("avg_order_value", "Big orders", "Small orders"),
    ("return_rate", "Returners", None),
    ("share_night", "Late-night", None),
    ("share_weekend", "Weekend", None),
)


def segment_stats(features: pl.DataFrame, labels: np.ndarray) -> pl.DataFrame:
    """Size, share and medians of the main behaviour features per segment."""
    frame = features.with_columns(pl.Series("segment", labels, dtype=pl.Int64))
    cols = [c for c, *_ in _NAME_FACTS if c in features.columns]
    return (
        frame.group_by("segment")
        .agg(
            pl.len().alias("size"),
            *[pl.col(c).median().alias(f"median_{c}") for c in cols],
        )
        .with_columns((pl.col("size") / len(labels)).alias("share"))
        .sort("segment")
    )


def name_segments(features: pl.DataFrame, labels: np.ndarray) -> dict[int, str]:
    """A short name per segment from the facts that set it apart from the whole base.

    Each behaviour feature is ranked over all customers (percentiles); a segment gets a word
    when its mean percentile is far from the middle. Names are made unique with a number.
    """
    cols = [c for c, *_ in _NAME_FACTS if c in features.columns]
    ranks = features.select([pl.col(c).rank("average") / features.height for c in cols])
    pct = ranks.to_numpy()
    names: dict[int, str] = {}
    for seg in sorted(int(s) for s in np.unique(labels) if s >= 0):
        mean = pct[labels == seg].mean(axis=0)
        scored = []
        for j, (col, up, down) in enumerate(f for f in _NAME_FACTS if f[0] in cols):
            delta = mean[j] - 0.5
            word = up if delta > 0 else down
            if word and abs(delta) > 0.12:
                scored.append((abs(delta), word, col))
        scored.sort(reverse=True)
        words = [w for _, w, _ in scored[:3]] or ["Mainstream"]
        names[seg] = " · ".join(words)
    seen: dict[str, int] = {}
    for seg, name in names.items():
        seen[name] = seen.get(name, 0) + 1
        if list(names.values()).count(name) > 1:
            names[seg] = f"{name} {seen[name]}"
    return names


def profile_table(model: Segmenter, data: EventData) -> pl.DataFrame:
    """One row per segment: id, name, size, share and key statistics."""
    labels = model.assignments_["segment"].to_numpy()
    stats = segment_stats(model.features_, labels)
    names = pl.DataFrame(
        {
            "segment": [*model.segment_names_, -1],
            "name": [*model.segment_names_.values(), "Outliers"],
        },
        schema={"segment": pl.Int64, "name": pl.String},
    )
    return stats.join(names, on="segment", how="left").rename({"segment": "id"})
