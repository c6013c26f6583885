"""What a practitioner writes in a notebook: RFM + k-means, plain text + k-means, and the
simplest fusion of the two. Computed from the canonical events only (never from the library's
features), so that the baselines stay fixed while the pipeline changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import polars as pl
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler

#: Items per customer in the plain-text baseline.
PLAIN_ITEMS = 12
#: The weights of the standardized RFM block swept in the simple fusion.
FUSION_WEIGHTS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 1.0)
RFM_COLUMNS = ("recency_days", "log_frequency", "log_spend", "tenure_days")


def kmeans(X: np.ndarray, k: int, seed: int) -> np.ndarray:
    """sklearn ``KMeans(n_clusters=k, n_init=10, random_state=seed)`` labels of ``X``.

    ``k`` is capped at the number of rows (tiny smoke inputs).
    """
    k = max(1, min(k, X.shape[0]))
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit(X).labels_.astype(np.int64)


def rfm_matrix(events: pl.DataFrame, customers: Sequence[str], cutoff: datetime) -> np.ndarray:
    """Standardized recency, log frequency, log spend and tenure of each customer.

    Parameters
    ----------
    events : polars.DataFrame
        Canonical calibration events.
    customers : sequence of str
        Row order of the result.
    cutoff : datetime
        Recency is measured from it.

    Returns
    -------
    ndarray of shape (n_customers, 4)
        Columns :data:`RFM_COLUMNS`, each with mean 0 and variance 1. Recency is the days from
        the last purchase to the cut-off, frequency the distinct orders (order ids, else
        distinct purchase times), spend purchases minus returns (floored at 0), tenure the days
        from the first to the last purchase. A customer without purchases gets recency = the
        longest observed, frequency, spend and tenure 0.
    """
    buy = pl.col("event_type") == "purchase"
    ret = pl.col("event_type") == "return"
    order = pl.coalesce(pl.col("order_id"), pl.col("timestamp").cast(pl.String))
    days = 86_400_000_000  # microseconds
    agg = events.group_by("user_id").agg(
        pl.col("timestamp").filter(buy).max().alias("last"),
        pl.col("timestamp").filter(buy).min().alias("first"),
        order.filter(buy).n_unique().alias("frequency"),
        (
            pl.col("amount").filter(buy).sum().fill_null(0)
            - pl.col("amount").filter(ret).abs().sum().fill_null(0)
        ).alias("spend"),
    )
    frame = (
        pl.DataFrame({"user_id": list(customers)}, schema={"user_id": pl.String})
        .join(agg, on="user_id", how="left")
        .with_columns(
            ((pl.lit(cutoff) - pl.col("last")).dt.total_microseconds() / days).alias("recency"),
            ((pl.col("last") - pl.col("first")).dt.total_microseconds() / days).alias("tenure"),
        )
    )
    recency = frame["recency"].to_numpy().astype(np.float64)
    recency = np.where(np.isnan(recency), np.nanmax(recency, initial=0.0), recency)
    raw = np.column_stack(
        [
            recency,
            np.log1p(frame["frequency"].fill_null(0).to_numpy().astype(np.float64)),
            np.log1p(np.clip(frame["spend"].fill_null(0.0).to_numpy(), 0.0, None)),
            np.nan_to_num(frame["tenure"].to_numpy().astype(np.float64)),
        ]
    )
    return StandardScaler().fit_transform(raw)


def item_key(events: pl.DataFrame) -> str | None:
    """The item column of the plain-text baseline: names, else categories, else item ids."""
    for column in ("item_name", "category", "item_id"):
        if column in events.columns and events[column].null_count() < events.height:
            return column
    return None


def plain_texts(events: pl.DataFrame, customers: Sequence[str], key: str) -> list[str]:
    """Each customer's :data:`PLAIN_ITEMS` most-bought ``key`` values joined with ", ".

    Most bought = most purchase lines; ties by value, ascending. A customer without any
    gets an empty string.
    """
    top = (
        events.filter((pl.col("event_type") == "purchase") & pl.col(key).is_not_null())
        .group_by("user_id", key)
        .len()
        .sort(["user_id", "len", key], descending=[False, True, False])
        .group_by("user_id", maintain_order=True)
        .agg(pl.col(key).head(PLAIN_ITEMS).str.join(", ").alias("text"))
    )
    text = dict(zip(top["user_id"].to_list(), top["text"].to_list(), strict=True))
    return [text.get(u, "") for u in customers]


def fused(embeddings: np.ndarray, rfm: np.ndarray, weight: float) -> np.ndarray:
    """The simplest fusion: ``[embeddings | weight * rfm]``."""
    return np.hstack([embeddings, weight * rfm]).astype(np.float64)
