"""Who moved where between two runs: the from -> to table of customers and their spend."""

from __future__ import annotations

from datetime import datetime

import polars as pl

#: ``from_segment`` of customers the previous run did not have, ``to_segment`` of churned ones
NONE = -2


def period_spend(events: pl.DataFrame, since: str) -> pl.DataFrame:
    """``user_id, spend``: net money of each customer's events after the date ``since``
    (YYYY-MM-DD; every event when empty): what a customer was worth in the new period."""
    frame = events
    if since:
        frame = frame.filter(pl.col("timestamp") > datetime.fromisoformat(since))
    amount = pl.col("amount") if "amount" in frame.columns else pl.lit(0.0)
    return frame.group_by("user_id").agg(
        amount.fill_null(0.0).sum().cast(pl.Float64).alias("spend")
    )


def migrations(previous: pl.DataFrame, current: pl.DataFrame, spend: pl.DataFrame) -> pl.DataFrame:
    """The migration table between two runs' assignments.

    Parameters
    ----------
    previous, current : polars.DataFrame
        ``user_id, segment, segment_name`` of the previous and the new run (stable ids).
    spend : polars.DataFrame
        ``user_id, spend`` in the new period (:func:`period_spend`).

    Returns
    -------
    polars.DataFrame
        ``from_segment, from_name, to_segment, to_name, customers, spend``: one row per
        non-empty cell. New customers come from :data:`NONE` ("new customers"), churned ones
        go to :data:`NONE` ("churned"); ``customers`` sums to the union of both runs' customers.
    """
    prev = previous.select(
        "user_id",
        pl.col("segment").alias("from_segment"),
        pl.col("segment_name").alias("from_name"),
    )
    cur = current.select(
        "user_id", pl.col("segment").alias("to_segment"), pl.col("segment_name").alias("to_name")
    )
    both = prev.join(cur, on="user_id", how="full", coalesce=True).join(
        spend, on="user_id", how="left"
    )
    both = both.with_columns(
        pl.col("from_segment").fill_null(NONE),
        pl.col("from_name").fill_null("new customers"),
        pl.col("to_segment").fill_null(NONE),
        pl.col("to_name").fill_null("churned"),
        pl.col("spend").fill_null(0.0),
    )
    return (
        both.group_by("from_segment", "from_name", "to_segment", "to_name")
        .agg(pl.len().cast(pl.Int64).alias("customers"), pl.col("spend").sum().round(2))
        .sort("from_segment", "to_segment")
    )


def moved_share(table: pl.DataFrame) -> float:
    """Share of the customers present in both runs whose segment changed."""
    stayed = table.filter((pl.col("from_segment") != NONE) & (pl.col("to_segment") != NONE))
    total = int(stayed["customers"].sum())
    moved = int(stayed.filter(pl.col("from_segment") != pl.col("to_segment"))["customers"].sum())
    return moved / total if total else 0.0
