"""``history.parquet``: one row per (run, segment), appended run after run."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

#: behaviour features whose median per segment the history keeps (when present)
STATS = ("monetary", "frequency", "recency_days")


def history_rows(
    assignments: pl.DataFrame,
    features: pl.DataFrame,
    names: Mapping[int, str],
    *,
    run: str,
    period_end: str,
) -> pl.DataFrame:
    """This run's rows: ``run, period_end, segment, name, size, share, median_<stat>``
    (outliers, id -1, left out)."""
    stats = [c for c in STATS if c in features.columns]
    frame = assignments.select("user_id", "segment").join(
        features.select("user_id", *stats), on="user_id", how="left"
    )
    n = max(frame.height, 1)
    rows = (
        frame.filter(pl.col("segment") >= 0)
        .group_by("segment")
        .agg(
            pl.len().cast(pl.Int64).alias("size"),
            *[pl.col(c).cast(pl.Float64).median().alias(f"median_{c}") for c in stats],
        )
        .with_columns((pl.col("size") / n).alias("share"))
    )
    named = pl.DataFrame(
        {"segment": list(names), "name": list(names.values())},
        schema={"segment": pl.Int64, "name": pl.String},
    )
    return (
        rows.join(named, on="segment", how="left")
        .select(
            pl.lit(run).alias("run"),
            pl.lit(period_end).alias("period_end"),
            pl.col("segment").cast(pl.Int64),
            "name",
            "size",
            "share",
            *[f"median_{c}" for c in stats],
        )
        .sort("segment")
    )


def append(history: pl.DataFrame | None, rows: pl.DataFrame) -> pl.DataFrame:
    """``history`` with ``rows`` appended; rows of the same run replace the old ones (a re-run
    of one period never counts twice). Sorted by period end, run and segment."""
    if history is None or history.height == 0:
        out = rows
    else:
        runs = rows["run"].unique().to_list()
        out = pl.concat([history.filter(~pl.col("run").is_in(runs)), rows], how="diagonal_relaxed")
    return out.sort("period_end", "run", "segment")
