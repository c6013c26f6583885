"""Segment profiles from mergeable parts, for an engine that sees its customers block by block.

:func:`profile_part` counts what one block of customers adds to every segment's profile;
:func:`merge_parts` adds parts of disjoint blocks together (associative, so a driver can fold
them in as they arrive and hold one part at a time); :func:`profile_from_parts` turns the
total into the table :func:`segmenter.profile.profile_segments` gives for all customers at once.

What is exact and what is not:

- exact: sizes and shares, means (and their lifts), timing shares, distinctive categories and
  items, channels, the representatives closest to each centre, and the term counts behind the
  distinctive terms (over every text: the one-process path reads a sample of 20,000 per segment);
- read from a grid of quantiles of the fit sample (:func:`fit_grid`, 1,000 per feature):
  medians (the mean of the values in the grid cell that holds the middle value, of the two
  cells where the count is even: exact where values repeat, as counts do, and within one cell
  elsewhere) and each segment's mean percentile of a feature.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np
import polars as pl

from segmenter.profile import (
    TASTE_KEYS,
    TIMING,
    VALUE_STATS,
    _lift,
    _members,
    _order,
    assemble,
    channel_counts,
    closest,
    purchase_lines,
    rank_channels,
    rank_distinctive,
    representative_lists,
    segment_labels,
)
from segmenter.terms import score_terms, segment_texts, stop_words, term_counts

#: Quantiles per feature in the grid that medians and percentiles are read from.
QUANTILES = 1000
#: The parts, with the columns each is keyed (and merged) on.
KEYS: dict[str, tuple[str, ...]] = {
    "numeric": ("segment", "column"),
    "cells": ("segment", "column", "cell"),
    "lines": ("key", "segment", "value"),
    "buyers": ("key", "segment"),
    "channels": ("segment", "channel"),
    "terms": ("segment", "term"),
    "representatives": (),
}
Part = dict[str, pl.DataFrame]


def part_to_ipc(part: Part) -> dict[str, bytes]:
    """A part as Arrow IPC bytes per table (to send between processes; no pickle)."""
    out = {}
    for name, frame in part.items():
        buffer = io.BytesIO()
        frame.write_ipc(buffer)
        out[name] = buffer.getvalue()
    return out


def part_from_ipc(blobs: Mapping[str, bytes]) -> Part:
    """:func:`part_to_ipc` read back."""
    return {name: pl.read_ipc(io.BytesIO(blob)) for name, blob in blobs.items()}


def fit_grid(features: pl.DataFrame, quantiles: int = QUANTILES) -> dict[str, np.ndarray]:
    """The grid: ``quantiles`` evenly spaced quantiles of every numeric feature (a sample)."""
    probs = (np.arange(quantiles) + 0.5) / quantiles
    grid = {}
    for col, dtype in features.schema.items():
        values = features[col].drop_nulls() if col != "user_id" and dtype.is_numeric() else None
        if values is not None and values.len():
            grid[col] = np.quantile(values.cast(pl.Float64).to_numpy(), probs)
    return grid


def _numeric(features: pl.DataFrame, labels: np.ndarray, grid: Mapping[str, np.ndarray]) -> Part:
    rows, cells = [], []
    for col, edges in grid.items():
        if col not in features.columns:
            continue
        x = features[col].cast(pl.Float64).to_numpy()
        ok = ~np.isnan(x)
        lo, hi = np.searchsorted(edges, x[ok], "left"), np.searchsorted(edges, x[ok], "right")
        frame = pl.DataFrame({"segment": labels[ok], "x": x[ok],
                              "pct": (lo + hi) * (50.0 / len(edges)), "cell": hi})  # fmt: skip
        rows.append(frame.group_by("segment").agg(
            pl.lit(col).alias("column"), pl.len().cast(pl.Int64).alias("n"),
            pl.col("x").sum().alias("sum"), pl.col("pct").sum().alias("pct"),
            pl.col("x").min().alias("min"), pl.col("x").max().alias("max"),
        ))  # fmt: skip
        if col in VALUE_STATS:
            cells.append(frame.group_by("segment", "cell").agg(
                pl.lit(col).alias("column"), pl.len().cast(pl.Int64).alias("n"),
                pl.col("x").sum().alias("sum"),
            ))  # fmt: skip
    schema = {"segment": pl.Int64, "column": pl.String}
    numeric = pl.concat(rows) if rows else pl.DataFrame(schema=schema)
    found = pl.concat(cells) if cells else pl.DataFrame(schema={**schema, "cell": pl.Int64})
    sizes = pl.DataFrame({"segment": labels}).group_by("segment").agg(
        pl.lit("").alias("column"), pl.len().cast(pl.Int64).alias("n"))  # fmt: skip
    numeric = pl.concat([sizes, numeric], how="diagonal_relaxed")
    return {"numeric": numeric.cast({"segment": pl.Int64}),
            "cells": found.cast({"segment": pl.Int64, "cell": pl.Int64})}  # fmt: skip


def profile_part(
    features: pl.DataFrame,
    documents: pl.DataFrame,
    events: pl.DataFrame,
    assignments: pl.DataFrame,
    grid: Mapping[str, np.ndarray],
    *,
    n_representatives: int = 5,
) -> Part:
    """What one block of customers adds to every segment's profile.

    Parameters
    ----------
    features, documents, events, assignments
        As :func:`segmenter.profile.profile_segments` takes them, for the block's customers.
    grid : mapping of str to ndarray
        :func:`fit_grid` of the fit sample (the same for every block).
    """
    labels = segment_labels(features, assignments)
    members = _members(features["user_id"], labels)
    part = _numeric(features, labels, grid)
    lines, buyers = [], []
    for key, _ in TASTE_KEYS:
        found, bought = purchase_lines(events, members, key)
        lines.append(found.select(pl.lit(key).alias("key"), pl.all()))
        buyers.append(bought.select(pl.lit(key).alias("key"), pl.all()))
    part["lines"], part["buyers"] = pl.concat(lines), pl.concat(buyers)
    part["channels"] = channel_counts(events, members)
    texts = segment_texts(documents, events, members)
    part["terms"] = term_counts(texts, stop=stop_words())
    near = closest(assignments.select("user_id", "segment", "distance"), n_representatives)
    part["representatives"] = near.join(
        documents.select("user_id", "document"), on="user_id", how="left", maintain_order="left"
    )
    return part


def merge_parts(parts: list[Part], *, n_representatives: int = 5) -> Part:
    """The part of the union of disjoint blocks of customers (in a canonical row order)."""
    out: Part = {}
    for name, keys in KEYS.items():
        frames = [p[name] for p in parts if p[name].height]
        if not frames:
            out[name] = parts[0][name]
            continue
        both = pl.concat(frames, how="diagonal_relaxed")
        if name == "representatives":
            out[name] = closest(both, n_representatives)
            continue
        values = [c for c in both.columns if c not in keys]
        aggs = [getattr(pl.col(c), c if c in ("min", "max") else "sum")() for c in values]
        out[name] = both.group_by(*keys).agg(aggs).sort(*keys)
    return out


def _medians(cells: pl.DataFrame) -> pl.DataFrame:
    """``segment, column, median`` of each segment (and of the whole base, as segment null):
    the mean of the values in the grid cell that holds the middle value, or, where the count
    is even and the two middle values sit in two cells, the mean of the two cells' means."""
    base = cells.group_by("column", "cell").agg(pl.col("n").sum(), pl.col("sum").sum())
    both = pl.concat([cells, base.select(pl.lit(None, pl.Int64).alias("segment"), pl.all())],
                     how="diagonal_relaxed")  # fmt: skip
    keys = ["segment", "column"]
    mean = pl.col("sum") / pl.col("n")
    half = pl.col("n").sum().over(keys) / 2
    return (
        both.filter(pl.col("n") > 0)
        .sort(*keys, "cell", nulls_last=True)
        .with_columns(
            pl.col("n").cum_sum().over(keys).alias("below"),
            half.alias("half"),
            mean.alias("mean"),
            mean.shift(-1).over(keys).alias("next"),
        )
        .filter(pl.col("below") >= pl.col("half"))
        .group_by(keys, maintain_order=True)
        .first()
        .select(
            *keys,
            pl.when((pl.col("below") == pl.col("half")) & pl.col("next").is_not_null())
            .then((pl.col("mean") + pl.col("next")) / 2)
            .otherwise(pl.col("mean"))
            .alias("median"),
        )
    )


def _value_stats(part: Part, features: list[str]) -> pl.DataFrame:
    """What :func:`segmenter.profile.value_stats` gives, from a merged part."""
    numeric = part["numeric"]
    sizes = numeric.filter(pl.col("column") == "").select("segment", pl.col("n").alias("size"))
    numeric = numeric.filter(pl.col("column") != "")
    n = int(sizes["size"].sum())
    total = numeric.group_by("column").agg(
        pl.col("n").sum(), pl.col("sum").sum(), pl.col("min").min(), pl.col("max").max()
    )
    columns = set(total["column"])
    moving = set(total.filter(pl.col("min") < pl.col("max"))["column"])
    varying = [c for c in features if c in moving]
    medians = _medians(part["cells"])
    mean = {c: s / k for c, k, s in total.select("column", "n", "sum").iter_rows() if k}
    median = {c: m for s, c, m in medians.iter_rows() if s is None}

    def wide(frame: pl.DataFrame, value: str, cols: list[str], name: str) -> pl.DataFrame:
        picked = frame.filter(pl.col("column").is_in(cols))
        if picked.height == 0:
            return sizes.select("segment")
        out = picked.pivot("column", index="segment", values=value)
        return out.rename({c: name.format(c) for c in out.columns if c != "segment"})

    stats = [c for c in VALUE_STATS if c in columns]
    timing = [c for c in TIMING if c in columns]
    means = numeric.with_columns((pl.col("sum") / pl.col("n")).alias("mean"),
                                 (pl.col("pct") / pl.col("n")).alias("pct_mean"))  # fmt: skip
    out = sizes
    for frame in (
        wide(medians.filter(pl.col("segment").is_not_null()), "median", stats, "median_{}"),
        wide(means, "mean", stats, "mean_{}"),
        wide(means, "mean", timing, "{}"),
        wide(means, "pct_mean", varying, "pct_{}"),
    ):
        out = out.join(frame, on="segment", how="left")
    order = ["segment", "size", *[f"{k}_{c}" for c in stats for k in ("median", "mean")],
             *timing, *[f"pct_{c}" for c in varying]]  # fmt: skip
    lifts: list[pl.Expr] = [(pl.col("size") / n).alias("share")]
    for c in stats:
        for kind, value in (("median", median.get(c)), ("mean", mean.get(c))):
            base = float(value or 0.0)
            lifts += [pl.lit(base).alias(f"base_{kind}_{c}"), _lift(f"{kind}_{c}", base)]
    for c in timing:
        base = float(mean.get(c) or 0.0)
        lifts += [pl.lit(base).alias(f"base_{c}"), _lift(c, base)]
    return _order(out.select(order).with_columns(lifts))


def profile_from_parts(
    part: Part,
    names: Mapping[int, str],
    columns: list[str],
    *,
    n_top: int = 5,
    n_terms: int = 10,
) -> pl.DataFrame:
    """The profile table (:func:`segmenter.profile.profile_segments`) from a merged part;
    ``columns``: the features in their order (of the percentile columns)."""
    sections = []
    for key, prefix in TASTE_KEYS:
        lines = part["lines"].filter(pl.col("key") == key).drop("key")
        buyers = part["buyers"].filter(pl.col("key") == key).drop("key")
        found = rank_distinctive(lines, buyers, top=n_top)
        sections.append(found.rename({c: c.replace("top", prefix) for c in found.columns[1:]}))
    channels = part["channels"]
    extra = channels["channel"].unique().str.to_lowercase().to_list()
    terms = part["terms"].filter(~pl.col("term").is_in(list(stop_words(tuple(extra)))))
    sections += [score_terms(terms, top=n_terms), rank_channels(channels)]
    sections.append(representative_lists(part["representatives"]))
    return assemble(_value_stats(part, columns), sections, names)
