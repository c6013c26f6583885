"""Segment profiles: what sets each segment apart from the whole customer base.

For every segment (HDBSCAN outliers, id -1, get a profile of their own): size and share; value
statistics with their lift over the base; the categories and items it buys more than the base
does; distinctive terms from a class-based TF-IDF over its documents and texts; timing and
channel habits; the customers closest to its centre; and a short, unique name.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from segmenter.terms import class_tfidf, segment_texts, stop_words

if TYPE_CHECKING:
    from segmenter.data import EventData
    from segmenter.model import Segmenter

logger = logging.getLogger(__name__)

OUTLIERS = "Outliers"
#: Value statistics reported with their lift over the whole base (median and mean).
VALUE_STATS = (
    "monetary", "avg_order_value", "frequency", "recency_days", "tenure_days", "return_rate",
)  # fmt: skip
#: What :func:`distinctive` ranks for the profile, and the profile columns it fills.
TASTE_KEYS = (("category", "top_categories"), ("item", "top_items"))
TIMING = ("share_morning", "share_afternoon", "share_evening", "share_night", "share_weekend")
_TIME_WORDS = {
    "share_morning": "morning",
    "share_afternoon": "afternoon",
    "share_evening": "evening",
    "share_night": "late-night",
    "share_weekend": "weekend",
}


def segment_labels(features: pl.DataFrame, assignments: pl.DataFrame) -> np.ndarray:
    """The segment of each row of ``features`` (int64; -1 where ``assignments`` has none)."""
    seg = features.select("user_id").join(
        assignments.select("user_id", "segment"), on="user_id", how="left", maintain_order="left"
    )
    return seg["segment"].fill_null(-1).to_numpy().astype(np.int64)


def _members(user_id: pl.Series, labels: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({"user_id": user_id, "segment": pl.Series(labels, dtype=pl.Int64)})


def _schema(**lists: type[pl.DataType]) -> pl.Schema:
    """``segment`` and list columns of the given inner types."""
    return pl.Schema({"segment": pl.Int64(), **{k: pl.List(v) for k, v in lists.items()}})


def _order(frame: pl.DataFrame, col: str = "segment") -> pl.DataFrame:
    """Segments in id order, outliers (-1) last."""
    return frame.sort(pl.col(col) < 0, col)


def value_stats(features: pl.DataFrame, labels: np.ndarray) -> pl.DataFrame:
    """Size, share, value statistics with their lifts, timing shares and feature percentiles.

    Parameters
    ----------
    features : polars.DataFrame of shape (n_users, ...)
        ``user_id`` plus behaviour features (:func:`segmenter.features.behaviour`).
    labels : ndarray of shape (n_users,)
        Segment of each row of ``features`` (-1 = outlier).

    Returns
    -------
    polars.DataFrame
        One row per segment: ``segment, size, share``; for each of :data:`VALUE_STATS`
        ``median_*, mean_*, base_median_*, base_mean_*, lift_median_*, lift_mean_*`` (lift is
        null where the base value is 0); for :data:`TIMING` the mean share, its base and lift;
        ``pct_<feature>``: the segment's mean percentile (0-100; the base is 50) of every
        feature that varies, for the heatmap.
    """
    n = features.height
    frame = features.with_columns(pl.Series("segment", labels, dtype=pl.Int64))
    stats = [c for c in VALUE_STATS if c in features.columns]
    timing = [c for c in TIMING if c in features.columns]
    numeric = [c for c, t in features.schema.items() if c != "user_id" and t.is_numeric()]
    varying = [c for c in numeric if features[c].n_unique() > 1]
    ranks = [(pl.col(c).rank("average") / n * 100).alias(f"pct_{c}") for c in varying]
    aggs = [pl.len().cast(pl.Int64).alias("size")]
    for c in stats:
        aggs += [pl.col(c).median().alias(f"median_{c}"), pl.col(c).mean().alias(f"mean_{c}")]
    aggs += [pl.col(c).mean() for c in timing]
    aggs += [pl.col(f"pct_{c}").mean() for c in varying]
    out = frame.with_columns(ranks).group_by("segment").agg(aggs)
    lifts: list[pl.Expr] = [(pl.col("size") / n).alias("share")]
    for c in stats:
        for kind, value in (("median", features[c].median()), ("mean", features[c].mean())):
            base = float(value or 0.0)  # type: ignore[arg-type]
            lifts += [pl.lit(base).alias(f"base_{kind}_{c}"), _lift(f"{kind}_{c}", base)]
    for c in timing:
        base = float(features[c].mean() or 0.0)  # type: ignore[arg-type]
        lifts += [pl.lit(base).alias(f"base_{c}"), _lift(c, base)]
    return _order(out.with_columns(lifts))


def _lift(col: str, base: float) -> pl.Expr:
    expr = pl.col(col) / base if base else pl.lit(None, dtype=pl.Float64)
    return expr.cast(pl.Float64).alias(f"lift_{col}")


def distinctive(
    events: pl.DataFrame,
    members: pl.DataFrame,
    key: str,
    *,
    top: int = 5,
    min_customers: int = 3,
    min_customer_share: float = 0.05,
    min_lift: float = 1.2,
) -> pl.DataFrame:
    """The values of ``key`` (category or item) that a segment buys more than the base does.

    ``share`` is the value's share of the segment's purchase lines, ``lift`` that share over
    the value's share of all purchase lines. Values are ranked by lift, among those with
    support: bought by at least ``max(min_customers, min_customer_share * buyers in the
    segment)`` of its customers (so that a rare exclusive bought by one or two does not win),
    and ``lift >= min_lift``.

    Returns
    -------
    polars.DataFrame
        ``segment``, ``top`` (list of str), ``top_share``, ``top_lift`` (lists of float).
    """
    lines, buyers = purchase_lines(events, members, key)
    return rank_distinctive(
        lines, buyers, top=top, min_customers=min_customers,
        min_customer_share=min_customer_share, min_lift=min_lift,
    )  # fmt: skip


def purchase_lines(
    events: pl.DataFrame, members: pl.DataFrame, key: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """What :func:`distinctive` counts: purchase lines and their buyers per segment and value
    of ``key`` (``segment, value, n, customers``) and buyers per segment (``segment, buyers``).

    Sums over disjoint sets of customers add up to the counts of their union."""
    label = _item_label() if key == "item" else pl.col(key).str.strip_chars()
    bought = (
        events.filter(pl.col("event_type") == "purchase")
        .select("user_id", label.alias("value"))
        .filter(pl.col("value").is_not_null() & (pl.col("value") != ""))
        .join(members, on="user_id", how="inner")
    )
    customers = pl.col("user_id").n_unique().cast(pl.Int64)
    lines = bought.group_by("segment", "value").agg(
        pl.len().cast(pl.Int64).alias("n"), customers.alias("customers")
    )
    return lines, bought.group_by("segment").agg(customers.alias("buyers"))


def rank_distinctive(
    lines: pl.DataFrame,
    buyers: pl.DataFrame,
    *,
    top: int = 5,
    min_customers: int = 3,
    min_customer_share: float = 0.05,
    min_lift: float = 1.2,
) -> pl.DataFrame:
    """:func:`distinctive` from the counts of :func:`purchase_lines`."""
    schema = _schema(top=pl.String, top_share=pl.Float64, top_lift=pl.Float64)
    if lines.height == 0:
        return pl.DataFrame(schema=schema)
    base = lines.group_by("value").agg((pl.col("n").sum() / lines["n"].sum()).alias("base_share"))
    support = pl.max_horizontal(pl.lit(min_customers), pl.col("buyers") * min_customer_share)
    return (
        lines.join(base, on="value")
        .join(buyers, on="segment")
        .with_columns((pl.col("n") / pl.col("n").sum().over("segment")).alias("share"))
        .with_columns((pl.col("share") / pl.col("base_share")).alias("lift"))
        .filter((pl.col("customers") >= support) & (pl.col("lift") >= min_lift))
        .sort(["segment", "lift", "customers", "value"], descending=[False, True, True, False])
        .group_by("segment", maintain_order=True)
        .head(top)
        .group_by("segment", maintain_order=True)
        .agg(
            pl.col("value").alias("top"),
            pl.col("share").alias("top_share"),
            pl.col("lift").alias("top_lift"),
        )
        .cast(schema)
    )


def _item_label() -> pl.Expr:
    return (
        pl.coalesce(pl.col("item_name"), pl.col("item_id"))
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )


def channel_mix(events: pl.DataFrame, members: pl.DataFrame, *, top: int = 6) -> pl.DataFrame:
    """Each segment's share of events per channel, largest first, with the lift over the base.

    Returns
    -------
    polars.DataFrame
        ``segment``, ``channels`` (list of str), ``channel_shares``, ``channel_lifts``.
    """
    return rank_channels(channel_counts(events, members), top=top)


def channel_counts(events: pl.DataFrame, members: pl.DataFrame) -> pl.DataFrame:
    """Events per segment and channel (``segment, channel, n``): what :func:`channel_mix`
    counts."""
    ev = events.filter(pl.col("channel").is_not_null()).select("user_id", "channel")
    ev = ev.join(members, on="user_id", how="inner")
    return ev.group_by("segment", "channel").agg(pl.len().cast(pl.Int64).alias("n"))


def rank_channels(counts: pl.DataFrame, *, top: int = 6) -> pl.DataFrame:
    """:func:`channel_mix` from the counts of :func:`channel_counts`."""
    schema = _schema(channels=pl.String, channel_shares=pl.Float64, channel_lifts=pl.Float64)
    if counts.height == 0:
        return pl.DataFrame(schema=schema)
    total = counts["n"].sum()
    base = counts.group_by("channel").agg((pl.col("n").sum() / total).alias("base"))
    return (
        counts.with_columns((pl.col("n") / pl.col("n").sum().over("segment")).alias("s"))
        .join(base, on="channel")
        .sort(["segment", "s", "channel"], descending=[False, True, False])
        .group_by("segment", maintain_order=True)
        .head(top)
        .group_by("segment", maintain_order=True)
        .agg(
            pl.col("channel").alias("channels"),
            pl.col("s").alias("channel_shares"),
            (pl.col("s") / pl.col("base")).alias("channel_lifts"),
        )
        .cast(schema)
    )


def representatives(
    assignments: pl.DataFrame, documents: pl.DataFrame, *, n: int = 5
) -> pl.DataFrame:
    """The ``n`` customers closest to each segment's centre and their (masked) documents."""
    near = closest(assignments.select("user_id", "segment", "distance"), n).join(
        documents.select("user_id", "document"), on="user_id", how="left", maintain_order="left"
    )
    return representative_lists(near)


def closest(frame: pl.DataFrame, n: int) -> pl.DataFrame:
    """The ``n`` rows of each segment with the smallest ``distance`` (ties: ``user_id``)."""
    by = ["segment", "distance", "user_id"]
    return frame.sort(by).group_by("segment", maintain_order=True).head(n)


def representative_lists(near: pl.DataFrame) -> pl.DataFrame:
    """``segment, representative_ids, representative_documents`` of :func:`closest` rows with
    their ``document``."""
    return near.group_by("segment", maintain_order=True).agg(
        pl.col("user_id").alias("representative_ids"),
        pl.col("document").fill_null("").alias("representative_documents"),
    )


# -- names -------------------------------------------------------------------------------------
def name_segments(
    features: pl.DataFrame, labels: np.ndarray, events: pl.DataFrame | None = None
) -> dict[int, str]:
    """A short, unique name per segment (outliers, -1, are left out: they are "Outliers").

    The name joins a value word (from the segment's mean spend percentile; "Lapsed" when its
    customers have not bought for long), its most distinctive category (else item) and its
    strongest timing or channel habit, e.g. ``"High value · electronics · late-night app"``.
    Duplicates get their second category, then a number.
    """
    stats = value_stats(features, labels).filter(pl.col("segment") >= 0)
    members = _members(features["user_id"], labels)
    taste: dict[int, list[str]] = {}
    channels: dict[int, str] = {}
    if events is not None:
        has_cat = events["category"].drop_nulls().len() > 0
        found = distinctive(events, members, "category" if has_cat else "item", top=2)
        taste = {s: [_short(v) for v in top] for s, top in found.select("segment", "top").rows()}
        for seg, chans, shares, lifts in channel_mix(events, members).rows():
            best = max(zip(lifts, shares, chans, strict=True), default=(0.0, 0.0, ""))
            if best[0] >= 1.2 and best[1] >= 0.4:
                channels[seg] = best[2].lower()
    names: dict[int, list[str]] = {}
    for row in stats.iter_rows(named=True):
        seg = int(row["segment"])
        habit = " ".join(w for w in (_timing_word(row), channels.get(seg, "")) if w)
        names[seg] = [_value_word(row), *taste.get(seg, [])[:1], habit]
    return _unique({s: [p for p in parts if p] for s, parts in names.items()}, taste)


def _value_word(row: Mapping[str, float | None]) -> str:
    """The value word, from the data: no "value" tier for a segment of non-buyers, none when
    spend does not vary (its percentile is then unknown: "Mainstream"), no "High" or "Top"
    for a segment whose typical customer spent nothing or got money back."""
    median_spend = row.get("median_monetary") or 0.0
    frequency = row.get("median_frequency")
    if frequency is not None and frequency <= 0:
        return "Returns only" if median_spend < 0 else "No purchases"
    spend = row.get("pct_monetary")
    if spend is None:
        return "Mainstream"
    tier = (
        "Top value" if spend >= 75 else "High value" if spend >= 60
        else "Low value" if spend < 35 or median_spend <= 0 else "Mid value"
    )  # fmt: skip
    if (row.get("pct_recency_days") or 50.0) >= 70:
        return "Lapsed " + tier.lower()
    return tier


def _timing_word(row: Mapping[str, float | None]) -> str:
    best, word = 1.3, ""
    for col, w in _TIME_WORDS.items():
        lift, share = row.get(f"lift_{col}"), row.get(col) or 0.0
        if lift is not None and lift >= best and share >= 0.3:
            best, word = lift, w
    return word


def _short(value: str, chars: int = 28) -> str:
    """Lower-case label: last part of a category path, whole words up to ``chars``."""
    words = value.split(">")[-1].strip().lower().split()
    out = words[0][:chars] if words else ""
    for word in words[1:]:
        if len(out) + 1 + len(word) > chars:
            break
        out += " " + word
    return out


def _unique(parts: dict[int, list[str]], taste: dict[int, list[str]]) -> dict[int, str]:
    names = {s: " · ".join(p) or "Mainstream" for s, p in parts.items()}
    clash = [s for s, n in names.items() if list(names.values()).count(n) > 1]
    for seg in clash:
        if len(taste.get(seg, [])) > 1:
            p = parts[seg]
            names[seg] = " · ".join([p[0], " & ".join(taste[seg][:2]), *p[2:]])
    taken = list(names.values())
    counts: dict[str, int] = {}
    for seg in sorted(names):
        name = names[seg]
        if taken.count(name) > 1:
            counts[name] = counts.get(name, 0) + 1
            names[seg] = f"{name} ({counts[name]})"
    return names


# -- the profile table -------------------------------------------------------------------------
def profile_segments(
    features: pl.DataFrame,
    documents: pl.DataFrame,
    events: pl.DataFrame,
    assignments: pl.DataFrame,
    names: Mapping[int, str],
    *,
    n_representatives: int = 5,
    n_top: int = 5,
    n_terms: int = 10,
) -> pl.DataFrame:
    """The profile table: one row per segment (outliers last), everything the report shows.

    Parameters
    ----------
    features : polars.DataFrame of shape (n_users, ...)
        ``user_id`` plus behaviour features.
    documents : polars.DataFrame
        ``user_id, document`` (already masked).
    events : polars.DataFrame
        Canonical events.
    assignments : polars.DataFrame
        ``user_id, segment, distance`` (and more), one row per customer.
    names : mapping of int to str
        Segment names; segments missing here (outliers) are called "Outliers".

    Returns
    -------
    polars.DataFrame
        ``id, name, size, share``, the columns of :func:`value_stats`, ``top_categories``,
        ``top_items`` (+ ``_share``, ``_lift`` lists), ``top_terms``, ``top_term_scores``,
        ``channels``, ``channel_shares``, ``channel_lifts``, ``representative_ids``,
        ``representative_documents``.
    """
    labels = segment_labels(features, assignments)
    members = _members(features["user_id"], labels)
    out = value_stats(features, labels)
    parts = []
    for key, prefix in TASTE_KEYS:
        found = distinctive(events, members, key, top=n_top)
        parts.append(found.rename({c: c.replace("top", prefix) for c in found.columns[1:]}))
    extra = events["channel"].drop_nulls().unique().str.to_lowercase().to_list()
    texts = segment_texts(documents, events, members)
    parts.append(class_tfidf(texts, top=n_terms, stop=stop_words(tuple(extra))))
    parts.append(channel_mix(events, members))
    parts.append(representatives(assignments, documents, n=n_representatives))
    return assemble(out, parts, names)


def assemble(
    stats: pl.DataFrame, parts: list[pl.DataFrame], names: Mapping[int, str]
) -> pl.DataFrame:
    """The profile table from :func:`value_stats` (or its equivalent) and the per-segment
    tables of the other sections: joined on ``segment``, empty lists for a segment a section
    does not mention, names (outliers: "Outliers"), outliers last."""
    out = stats
    for part in parts:
        out = out.join(part, on="segment", how="left")
    lists = [c for c, t in out.schema.items() if isinstance(t, pl.List)]
    out = out.with_columns([pl.col(c).fill_null(pl.lit([], dtype=out.schema[c])) for c in lists])
    named = pl.DataFrame(
        {"segment": list(names), "name": list(names.values())},
        schema={"segment": pl.Int64, "name": pl.String},
    )
    out = out.join(named, on="segment", how="left").with_columns(pl.col("name").fill_null(OUTLIERS))
    front = ["segment", "name", "size", "share"]
    out = out.select(*front, pl.exclude(front)).rename({"segment": "id"})
    logger.info("profiled %d segments", out.height)
    return _order(out, "id")


def profile_table(model: Segmenter, data: EventData) -> pl.DataFrame:
    """:func:`profile_segments` of a fitted :class:`~segmenter.model.Segmenter`."""
    return profile_segments(
        model.features_,
        model.documents_,
        data.events,
        model.assignments_,
        model.segment_names_,
    )
