"""Segment profiles: statistics and lifts, distinctive categories/items/terms, names."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from segmenter.data import EventData, load_events
from segmenter.documents import serialize
from segmenter.profile import (
    OUTLIERS,
    channel_mix,
    distinctive,
    name_segments,
    profile_segments,
    representatives,
    value_stats,
)
from segmenter.terms import class_tfidf, tokenize


def _events(rows: list[tuple[str, str, str, str | None, float]]) -> pl.DataFrame:
    """Canonical purchase events from (user, category, item, channel, amount)."""
    t0 = datetime(2024, 1, 1, 10)
    frame = pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "timestamp": [t0 + timedelta(hours=i) for i in range(len(rows))],
            "category": [r[1] for r in rows],
            "item_name": [r[2] for r in rows],
            "channel": [r[3] for r in rows],
            "amount": [r[4] for r in rows],
        }
    )
    return load_events(frame).events


def _members(mapping: dict[str, int]) -> pl.DataFrame:
    return pl.DataFrame(
        {"user_id": list(mapping), "segment": list(mapping.values())},
        schema={"user_id": pl.String, "segment": pl.Int64},
    )


# -- tokenizer and c-TF-IDF ---------------------------------------------------------------------
def test_tokenize_rules() -> None:
    tokens = tokenize("Great VALUE, 2 items for 1250 4k USB-C! café")
    assert tokens == ["great", "value", "items", "for", "4k", "usb", "café"]


def test_tokenize_cjk_overlapping_bigrams_without_seams() -> None:
    tokens = tokenize("正品非常高档 ok")
    assert tokens[0] == "ok"
    assert set(tokens[1:]) == {"正品", "品非", "非常", "常高", "高档"}
    # a bigram holding a function character (的, 很, ...) is mostly a seam between words
    assert "很喜" not in tokenize("很喜欢")
    assert "喜欢" in tokenize("很喜欢")


def test_class_tfidf_prefers_terms_specific_to_a_segment() -> None:
    texts = pl.DataFrame(
        {
            "segment": [0, 0, 0, 1, 1, 1, 1],
            "text": [
                "great coffee beans",
                "coffee beans arrived great",
                "good coffee",
                "great toner cartridge",
                "toner for the office printer",
                "printer toner great",
                "性价比很高",
            ],
        }
    )
    out = class_tfidf(texts, top=3, stop=frozenset({"the", "for"}))
    terms = dict(zip(out["segment"].to_list(), out["top_terms"].to_list(), strict=True))
    assert terms[0][0] == "coffee"
    assert terms[1][0] == "toner"
    # "great" is everywhere: it never beats the segment's own words
    assert "great" not in terms[0][:2] and "great" not in terms[1][:2]
    everything = class_tfidf(texts, top=50, stop=frozenset())
    assert "性价" in everything.filter(pl.col("segment") == 1)["top_terms"][0].to_list()
    scores = everything["top_term_scores"].to_list()
    assert all(s == sorted(s, reverse=True) for s in scores)


# -- distinctive categories and items -------------------------------------------------------------
def test_distinctive_ranks_by_lift_with_support() -> None:
    rows = []
    # segment 0: five customers who mostly buy Garden; one of them also buys a rare exclusive
    for u in "abcde":
        rows += [(u, "Garden", "hose", "web", 10.0)] * 3 + [(u, "Books", "novel", "web", 5.0)]
    rows += [("a", "Jewelry", "tiara", "web", 900.0)]
    # segment 1: five customers who mostly buy Books
    for u in "fghij":
        rows += [(u, "Books", "novel", "app", 5.0)] * 3 + [(u, "Garden", "hose", "app", 10.0)]
    events = _events(rows)
    members = _members({u: 0 for u in "abcde"} | {u: 1 for u in "fghij"})
    out = distinctive(events, members, "category", min_customers=3)
    top = {s: t for s, t in zip(out["segment"], out["top"].to_list(), strict=True)}
    assert top[0] == ["Garden"]  # Jewelry has the highest lift but a single buyer
    assert top[1] == ["Books"]
    garden = out.filter(pl.col("segment") == 0)
    # Garden: 15 of segment 0's 21 lines; 20 of all 41 lines
    assert garden["top_share"][0][0] == pytest.approx(15 / 21)
    assert garden["top_lift"][0][0] == pytest.approx((15 / 21) / (20 / 41))
    loose = distinctive(events, members, "category", min_customers=1, min_customer_share=0)
    assert "Jewelry" in loose.filter(pl.col("segment") == 0)["top"][0].to_list()
    items = distinctive(events, members, "item", min_customers=3)
    assert items.filter(pl.col("segment") == 0)["top"][0].to_list() == ["hose"]


def test_channel_mix_shares_and_lifts() -> None:
    rows = [("a", "X", "x", "web", 1.0)] * 3 + [("a", "X", "x", "app", 1.0)]
    rows += [("b", "X", "x", "app", 1.0)] * 4
    out = channel_mix(_events(rows), _members({"a": 0, "b": 1}))
    first = out.filter(pl.col("segment") == 0).row(0, named=True)
    assert first["channels"] == ["web", "app"]
    assert first["channel_shares"] == pytest.approx([0.75, 0.25])
    assert first["channel_lifts"] == pytest.approx([0.75 / (3 / 8), 0.25 / (5 / 8)])


# -- statistics, representatives ------------------------------------------------------------------
def test_value_stats_sizes_lifts_and_percentiles(small_features: pl.DataFrame) -> None:
    n = small_features.height
    labels = np.arange(n) % 3
    labels[:10] = -1
    stats = value_stats(small_features, labels)
    assert stats["segment"].to_list() == [0, 1, 2, -1]
    assert stats["size"].sum() == n
    assert stats["share"].sum() == pytest.approx(1.0)
    seg0 = small_features.filter(pl.Series(labels == 0))
    row = stats.row(0, named=True)
    assert row["median_monetary"] == pytest.approx(seg0["monetary"].median())
    base = small_features["monetary"].median()
    assert row["base_median_monetary"] == pytest.approx(base)
    assert row["lift_median_monetary"] == pytest.approx(seg0["monetary"].median() / base)
    assert row["lift_mean_frequency"] == pytest.approx(
        seg0["frequency"].mean() / small_features["frequency"].mean()
    )
    # the base sits at the 50th percentile: the size-weighted mean percentile is 50
    weighted = (stats["pct_monetary"] * stats["size"]).sum() / n
    assert weighted == pytest.approx(50.0, abs=0.2)


def test_value_stats_lift_is_null_where_the_base_is_zero() -> None:
    features = pl.DataFrame(
        {"user_id": ["a", "b", "c"], "monetary": [1.0, 2.0, 3.0], "return_rate": [0.0] * 3}
    )
    stats = value_stats(features, np.array([0, 0, 1]))
    assert stats["lift_median_return_rate"].null_count() == 2
    assert "pct_return_rate" not in stats.columns  # constant features tell nothing


def test_representatives_are_closest_to_the_centre() -> None:
    assignments = pl.DataFrame(
        {
            "user_id": ["a", "b", "c", "d", "e"],
            "segment": [0, 0, 0, 1, 1],
            "distance": [0.9, 0.1, 0.5, 0.3, 0.2],
        }
    )
    documents = pl.DataFrame({"user_id": list("abcde"), "document": ["A", "B", "C", "D", "E"]})
    out = representatives(assignments, documents, n=2)
    assert out["representative_ids"].to_list() == [["b", "c"], ["e", "d"]]
    assert out["representative_documents"].to_list() == [["B", "C"], ["E", "D"]]


# -- names and the full table ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def planted(
    small_data: EventData, small_features: pl.DataFrame, small_tables: dict[str, pl.DataFrame]
) -> tuple[np.ndarray, dict[int, str]]:
    """Planted archetype of every customer (features' row order) and their names."""
    labels = small_features.select("user_id").join(small_tables["labels"], on="user_id", how="left")
    archetypes = dict(small_tables["labels"].select("segment", "archetype").unique().rows())
    return labels["segment"].to_numpy(), archetypes


def test_names_describe_the_planted_archetypes(
    small_data: EventData,
    small_features: pl.DataFrame,
    planted: tuple[np.ndarray, dict[int, str]],
) -> None:
    labels, archetypes = planted
    names = name_segments(small_features, labels, small_data.events)
    by_archetype = {archetypes[s]: n for s, n in names.items()}
    assert len(set(names.values())) == len(names)
    assert "electronics" in by_archetype["Tech enthusiast"]
    assert "office" in by_archetype["Office bulk buyer"]
    assert by_archetype["Office bulk buyer"].startswith(("Top value", "High value"))
    assert by_archetype["Lapsed one-timer"].startswith("Lapsed")
    assert "jewelry" in by_archetype["Chinese luxury"]
    assert "app" in by_archetype["Chinese luxury"]
    for name in names.values():
        parts = name.split(" · ")
        assert 1 <= len(parts) <= 3 and len(name) <= 60


def test_names_are_unique_even_for_identical_segments() -> None:
    features = pl.DataFrame({"user_id": list("abcd"), "monetary": [1.0, 1.0, 1.0, 1.0]})
    names = name_segments(features, np.array([0, 0, 1, 1]))
    # spend does not vary: no value tier is claimed
    assert names == {0: "Mainstream (1)", 1: "Mainstream (2)"}


def test_profile_table_is_complete(
    small_data: EventData,
    small_features: pl.DataFrame,
    planted: tuple[np.ndarray, dict[int, str]],
) -> None:
    labels, archetypes = planted
    segment_of = {a: s for s, a in archetypes.items()}
    labels = labels.copy()
    labels[:7] = -1  # a few HDBSCAN outliers
    rng = np.random.default_rng(0)
    assignments = small_features.select("user_id").with_columns(
        pl.Series("segment", labels, dtype=pl.Int64),
        pl.Series("distance", rng.random(len(labels)), dtype=pl.Float32),
    )
    documents = serialize(small_data.events, small_features, small_data.users)
    names = name_segments(small_features, labels, small_data.events)
    table = profile_segments(small_features, documents, small_data.events, assignments, names)
    assert table["id"].to_list() == [*range(8), -1]
    assert table["name"].to_list() == [*(names[i] for i in range(8)), OUTLIERS]
    assert table["size"].sum() == small_features.height
    schema = table.schema
    for col in ("top_categories", "top_items", "top_terms", "channels", "representative_ids"):
        assert schema[col] == pl.List(pl.String), col
    for col in ("top_categories_lift", "top_items_share", "channel_shares", "top_term_scores"):
        assert schema[col] == pl.List(pl.Float64), col
    for stat in ("monetary", "frequency", "recency_days", "tenure_days", "return_rate"):
        assert {f"median_{stat}", f"lift_mean_{stat}", f"base_median_{stat}"} <= set(table.columns)
    assert {"share_night", "lift_share_weekend", "pct_monetary"} <= set(table.columns)
    tech = table.filter(pl.col("id") == segment_of["Tech enthusiast"]).row(0, named=True)
    assert tech["top_categories"][0] == "Electronics"
    assert all(lift > 1 for lift in tech["top_categories_lift"])
    assert {"gaming", "electronics"} & set(tech["top_terms"])
    for row in table.iter_rows(named=True):
        assert 1 <= len(row["representative_ids"]) <= 5
        assert len(row["representative_documents"]) == len(row["representative_ids"])
    # Chinese reviews of the luxury archetype surface as CJK bigrams
    luxury = table.filter(pl.col("id") == segment_of["Chinese luxury"]).row(0, named=True)
    assert any("\u4e00" <= ch <= "\u9fff" for term in luxury["top_terms"] for ch in term)
