"""Numeric per-customer behaviour features (RFM and more), one row per customer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import polars as pl

#: Features that are counts or money: log1p before standardizing.
SKEWED = (
    "frequency",
    "monetary",
    "avg_order_value",
    "basket_size",
    "n_distinct_items",
    "n_distinct_categories",
    "interpurchase_days",
    "n_reviews",
    "n_searches",
    "n_views",
    "n_events",
)
#: The RFM core used by the industry-default baseline.
RFM = ("recency_days", "frequency", "monetary", "tenure_days")

BASE_FEATURES = (
    "recency_days",
    "frequency",
    "monetary",
    "tenure_days",
    "avg_order_value",
    "basket_size",
    "return_rate",
    "n_distinct_items",
    "n_distinct_categories",
    "interpurchase_days",
    "share_morning",
    "share_afternoon",
    "share_evening",
    "share_night",
    "share_weekend",
    "n_reviews",
    "mean_rating",
    "n_searches",
    "n_views",
    "n_events",
)


def top_channels(events: pl.DataFrame, limit: int = 6) -> list[str]:
    """The most common channels, which get a share column each."""
    counts = events.select(pl.col("channel").drop_nulls().value_counts(sort=True)).unnest("channel")
    return [str(c) for c in counts["channel"].head(limit).to_list()]


def channel_column(name: str) -> str:
    clean = "".join(ch if ch.isalnum() else "_" for ch in name.lower())
    return f"share_channel_{clean}"


def behaviour(
    events: pl.DataFrame,
    *,
    as_of: datetime | None = None,
    channels: Sequence[str] = (),
    median_gap: float | None = None,
) -> pl.DataFrame:
    """Compute behaviour features per customer.

    Parameters
    ----------
    events : polars.DataFrame
        Canonical events (see :func:`segmenter.data.load_events`).
    as_of : datetime, optional
        Reference date for recency and tenure; defaults to the last event.
    channels : sequence of str
        Channels that get a ``share_channel_<name>`` column (fixed at fit time).
    median_gap : float, optional
        Usual days between orders, the floor of ``interpurchase_days`` for customers without a
        repeat order; default: the median over these customers' repeat buyers. Pass the
        training value (:func:`repeat_gap`) when computing features of new customers.

    Returns
    -------
    polars.DataFrame
        ``user_id`` plus :data:`BASE_FEATURES` and one column per channel, sorted by user_id,
        no nulls.

    Notes
    -----
    ``frequency`` counts distinct purchase orders (events without an order id group by day);
    ``monetary`` is the purchase amount minus the amount of returns (whatever their sign);
    ``return_rate`` is units returned per unit bought, capped at 1; daypart and weekend shares
    are over all the customer's events.
    """
    ref = as_of or events["timestamp"].max()
    ev = events.with_columns(
        pl.coalesce(
            pl.col("order_id"),
            pl.col("user_id") + pl.lit("@") + pl.col("timestamp").dt.date().cast(pl.String),
        ).alias("_order"),
        pl.col("timestamp").dt.hour().alias("_hour"),
        (pl.col("timestamp").dt.weekday() >= 6).alias("_weekend"),
        (pl.col("event_type") == "purchase").alias("_buy"),
        (pl.col("event_type") == "return").alias("_ret"),
    )
    buy = pl.col("_buy")
    hour = pl.col("_hour")
    aggs = [
        pl.col("_order").filter(buy).n_unique().alias("frequency"),
        pl.col("amount").filter(buy).sum().alias("_gross"),
        # returns count against spend whichever sign the data gives their amount
        pl.col("amount").filter(pl.col("_ret")).abs().sum().alias("_refund"),
        pl.col("quantity").filter(buy).abs().sum().alias("_qty"),
        pl.col("quantity").filter(pl.col("_ret")).abs().sum().alias("_ret_qty"),
        pl.col("timestamp").filter(buy).max().alias("_last_buy"),
        pl.col("timestamp").filter(buy).min().alias("_first_buy"),
        pl.col("timestamp").max().alias("_last"),
        pl.col("timestamp").min().alias("_first"),
        pl.col("item_id").filter(buy).drop_nulls().n_unique().alias("n_distinct_items"),
        pl.col("category").filter(buy).drop_nulls().n_unique().alias("n_distinct_categories"),
        hour.is_between(6, 11).mean().alias("share_morning"),
        hour.is_between(12, 17).mean().alias("share_afternoon"),
        hour.is_between(18, 21).mean().alias("share_evening"),
        ((hour >= 22) | (hour <= 5)).mean().alias("share_night"),
        pl.col("_weekend").mean().alias("share_weekend"),
        (pl.col("event_type") == "review").sum().alias("n_reviews"),
        pl.col("rating").mean().alias("mean_rating"),
        (pl.col("event_type") == "search").sum().alias("n_searches"),
        (pl.col("event_type") == "view").sum().alias("n_views"),
        pl.len().alias("n_events"),
    ]
    aggs += [
        (pl.col("channel") == name).fill_null(False).mean().alias(channel_column(name))
        for name in channels
    ]
    per_user = ev.group_by("user_id").agg(aggs)
    day = 86_400_000_000  # microseconds
    last_seen = pl.coalesce(pl.col("_last_buy"), pl.col("_last"))
    features = per_user.with_columns(
        (pl.col("_gross") - pl.col("_refund")).alias("monetary"),
        ((pl.lit(ref) - last_seen).dt.total_microseconds() / day).clip(0).alias("recency_days"),
        ((pl.lit(ref) - pl.col("_first")).dt.total_microseconds() / day)
        .clip(0)
        .alias("tenure_days"),
        (pl.col("_gross") / pl.col("frequency").clip(1)).alias("avg_order_value"),
        (pl.col("_qty") / pl.col("frequency").clip(1)).alias("basket_size"),
        # units returned per unit bought; 1 when they returned more than they bought here
        # (returns of purchases made before the data starts)
        pl.when(pl.col("_ret_qty") > 0)
        .then((pl.col("_ret_qty") / pl.col("_qty").clip(1e-9)).clip(0, 1))
        .otherwise(0.0)
        .alias("return_rate"),
        pl.when(pl.col("frequency") > 1)
        .then(
            (pl.col("_last_buy") - pl.col("_first_buy")).dt.total_microseconds()
            / day
            / (pl.col("frequency") - 1)
        )
        .otherwise(None)
        .alias("interpurchase_days"),
    )
    columns = list(BASE_FEATURES) + [channel_column(c) for c in channels]
    out = features.select("user_id", *[pl.col(c).cast(pl.Float64) for c in columns])
    gap = repeat_gap(out) if median_gap is None else median_gap
    out = out.with_columns(
        # no repeat purchase yet: at least as long as they have been around, or the usual gap
        pl.col("interpurchase_days").fill_null(pl.col("tenure_days").clip(gap)),
        pl.col("mean_rating").fill_null(0.0),
    )
    return out.fill_null(0.0).fill_nan(0.0).sort("user_id")


def repeat_gap(features: pl.DataFrame) -> float:
    """Median days between orders over the repeat buyers of ``features`` (0 without any)."""
    repeat = features.filter(pl.col("frequency") > 1)["interpurchase_days"]
    return float(repeat.median() or 0.0)  # type: ignore[arg-type]
