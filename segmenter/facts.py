"""Per-customer document facts, computed by one polars plan.

The facts frame has one row per customer of ``features``, in that order, with these fields
(:func:`segmenter.render.render` turns a row into text):

=================================  ===========================================================
``user_id``                        customer key
``monetary`` ... ``basket_size``   bin index into :data:`~segmenter.vocabulary.VALUE_WORDS`
``frequency``                      0 never bought, 1 once, 2 + bin of the repeat buyers
``returns``                        0 never, 1 + bin of the customers who return
``categories``, ``category_shares``  distinctive categories (lowercase) and their % of rows
``items``                          distinctive item labels (lowercase)
``daypart``                        index into :data:`~segmenter.vocabulary.DAYPARTS` or null
``week``                           index into :data:`~segmenter.vocabulary.WEEK_WORDS`
``channels``                       channels with >= 25% of the events (lowercase)
``attributes``                     list of ``{name, value}`` (masked) or null without a users row
``rating``                         mean rating rounded to one decimal, as text, or null
``searches``, ``writes``           the newest distinct texts, whitespace-squashed and masked
=================================  ===========================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

import polars as pl

from segmenter.privacy import mask_expr
from segmenter.vocabulary import DAYPARTS, VALUE_WORDS

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)

#: Share of a customer's events from which a channel is named.
CHANNEL_SHARE = 0.25
SEARCHES = 3
#: Features the facts are computed from.
FEATURES = (
    *VALUE_WORDS,
    "frequency",
    "return_rate",
    *DAYPARTS,
    "share_weekend",
    "n_reviews",
    "mean_rating",
)


class FittedFacts(Protocol):
    """What the facts need of a fitted :class:`~segmenter.documents.DocumentRecipe`."""

    n_items: int

    @property
    def weighting(self) -> str: ...

    n_categories: int
    n_texts: int
    text_chars: int
    edges_: dict[str, list[float]]
    idf_: dict[str, dict[str, float]]
    max_idf_: float
    attributes_: list[str]


def facts_frame(
    recipe: FittedFacts,
    events: pl.DataFrame,
    features: pl.DataFrame,
    users: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The facts of every customer of ``features`` (same order), as one lazy plan."""
    ev = with_item_label(events.lazy())
    feats = features.lazy()
    parts = [
        _value(recipe, feats),
        _tfidf(recipe, ev, "category", recipe.n_categories, "categories", "category_shares"),
        _tfidf(recipe, ev, "_item", recipe.n_items, "items", None),
        _habits(feats),
        _channels(ev),
        _attributes(recipe, users),
        _rating(feats),
        _texts(ev, True, SEARCHES, recipe.text_chars, "searches"),
        _texts(ev, False, recipe.n_texts, recipe.text_chars, "writes"),
    ]
    plan = feats.select("user_id").with_row_index("_row")
    for part in parts:
        plan = plan.join(part, on="user_id", how="left")
    return plan.sort("_row").drop("_row").collect()  # joins do not promise to keep the order


def with_item_label(events: FrameT) -> FrameT:
    """``_item``: the item's name (else its id), whitespace squashed."""
    return events.with_columns(
        pl.coalesce(pl.col("item_name"), pl.col("item_id"))
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
        .alias("_item")
    )


def bin_index(expr: pl.Expr, edges: Sequence[float]) -> pl.Expr:
    """Index of the bin of each value: ``i`` for values up to ``edges[i]``, ``len(edges)`` above."""
    if not edges:
        return pl.lit(0, dtype=pl.Int64)
    return pl.sum_horizontal([expr > edge for edge in edges]).cast(pl.Int64)


def _value(recipe: FittedFacts, features: pl.LazyFrame) -> pl.LazyFrame:
    freq, ret = pl.col("frequency"), pl.col("return_rate")
    return features.select(
        "user_id",
        *[bin_index(pl.col(c), recipe.edges_[c]).alias(c) for c in VALUE_WORDS],
        pl.when(freq <= 0)
        .then(0)
        .when(freq <= 1)
        .then(1)
        .otherwise(2 + bin_index(freq, recipe.edges_["frequency"]))
        .cast(pl.Int64)
        .alias("frequency"),
        pl.when(ret <= 0)
        .then(0)
        .otherwise(1 + bin_index(ret, recipe.edges_["return_rate"]))
        .cast(pl.Int64)
        .alias("returns"),
    )


def _none(*columns: tuple[str, pl.DataType]) -> pl.LazyFrame:
    return pl.LazyFrame(schema={"user_id": pl.String, **dict(columns)})


def _tfidf(
    recipe: FittedFacts, ev: pl.LazyFrame, key: str, k: int, name: str, shares: str | None
) -> pl.LazyFrame:
    columns = [(name, pl.List(pl.String))] + ([(shares, pl.List(pl.Int64))] if shares else [])
    if k == 0:
        return _none(*columns)
    idf = pl.LazyFrame(
        {key: list(recipe.idf_[key]), "idf": list(recipe.idf_[key].values())},
        schema={key: pl.String, "idf": pl.Float64},
    )
    bought = ev.filter(pl.col(key).is_not_null() & (pl.col("event_type") != "return"))
    counts = _shares(bought.group_by("user_id", key).agg(pl.len().alias("n")))
    scored = (
        counts.join(idf, on=key, how="left")
        .with_columns(pl.col("idf").fill_null(recipe.max_idf_))
        .with_columns(_score(recipe.weighting).alias("score"))
        .sort(["user_id", "score", key], descending=[False, True, False])
        .group_by("user_id", maintain_order=True)
        .head(k)
    )
    aggs = [pl.col(key).str.to_lowercase().str.slice(0, 48).str.strip_chars().alias(name)]
    if shares:
        percent = (pl.col("share") * 100).round(0, mode="half_to_even").cast(pl.Int64)
        aggs.append(percent.alias(shares))
    return scored.group_by("user_id", maintain_order=True).agg(aggs)


def _score(weighting: str) -> pl.Expr:
    if weighting == "count":
        return pl.col("n").cast(pl.Float64)
    return pl.col("n").sqrt() * pl.col("idf")


def _shares(counts: pl.LazyFrame) -> pl.LazyFrame:
    """``share``: ``n`` over the customer's total ``n``.

    The total is joined rather than taken ``over("user_id")``: with a single customer polars
    computes that division differently (23 / 40 gives 0.5750000000000001 instead of
    0.575 - 1e-17), and a share of 57.5% would round the other way than in a batch.
    """
    totals = counts.group_by("user_id").agg(pl.col("n").sum().alias("_total"))
    return counts.join(totals, on="user_id").with_columns(
        (pl.col("n") / pl.col("_total")).alias("share")
    )


def _habits(features: pl.LazyFrame) -> pl.LazyFrame:
    shares = pl.concat_list([pl.col(c) for c in DAYPARTS])
    weekend = pl.col("share_weekend")
    return features.select(
        "user_id",
        pl.when(shares.list.max() >= 0.5)
        .then(shares.list.arg_max().cast(pl.Int64))
        .otherwise(None)
        .alias("daypart"),
        pl.when(weekend >= 0.5)
        .then(0)
        .when(weekend <= 0.15)
        .then(1)
        .otherwise(2)
        .cast(pl.Int64)
        .alias("week"),
    )


def _channels(ev: pl.LazyFrame) -> pl.LazyFrame:
    return (
        ev.filter(pl.col("channel").is_not_null())
        .group_by("user_id", "channel")
        .agg(pl.len().alias("n"))
        .pipe(_shares)
        .filter(pl.col("share") >= CHANNEL_SHARE)
        .sort(["user_id", "share", "channel"], descending=[False, True, False])
        .group_by("user_id", maintain_order=True)
        .agg(pl.col("channel").str.to_lowercase().alias("channels"))
    )


def _attributes(recipe: FittedFacts, users: pl.DataFrame | None) -> pl.LazyFrame:
    cols = [c for c in recipe.attributes_ if users is not None and c in users.columns]
    if not cols or users is None:
        return _none(("attributes", pl.List(pl.Struct({"name": pl.String, "value": pl.String}))))
    pairs = [pl.struct(pl.lit(c).alias("name"), mask_expr(pl.col(c)).alias("value")) for c in cols]
    return users.lazy().select("user_id", pl.concat_list(pairs).alias("attributes"))


def _rating(features: pl.LazyFrame) -> pl.LazyFrame:
    rounded = pl.col("mean_rating").round(1, mode="half_to_even").cast(pl.String)
    return features.select(
        "user_id", pl.when(pl.col("n_reviews") > 0).then(rounded).alias("rating")
    )


def _texts(ev: pl.LazyFrame, search: bool, k: int, chars: int, name: str) -> pl.LazyFrame:
    """The customer's most recent distinct texts (masked), newest first."""
    if k == 0:
        return _none((name, pl.List(pl.String)))
    is_search = pl.col("event_type") == "search"
    texts = ev.filter(
        pl.col("text").is_not_null()
        & (pl.col("text").str.strip_chars() != "")
        & (is_search if search else ~is_search)
    )
    cleaned = mask_expr(pl.col("text").str.replace_all(r"\s+", " ").str.strip_chars())
    return (
        # the text breaks ties in time, so that the input's row order does not matter
        texts.sort(["user_id", "timestamp", "text"], descending=[False, True, False])
        .unique(["user_id", "text"], keep="first", maintain_order=True)
        .group_by("user_id", maintain_order=True)
        .head(k)
        .group_by("user_id", maintain_order=True)
        .agg(cleaned.str.slice(0, chars).alias(name))
    )
