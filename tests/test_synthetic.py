"""Synthetic events with planted archetypes, and the committed sample_data/."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipelines import make_sample_data
from segmenter.data import CANONICAL, load_events
from segmenter.synthetic import ARCHETYPES, generate

TABLES = ("events", "users", "items", "labels")


def test_same_seed_gives_identical_tables() -> None:
    first, second = generate(150, seed=11), generate(150, seed=11)
    for name in TABLES:
        assert_frame_equal(first[name], second[name])
    other = generate(150, seed=12)
    assert not first["events"].equals(other["events"])


def test_labels_cover_every_user(small_tables: dict[str, pl.DataFrame]) -> None:
    labels, events, users = small_tables["labels"], small_tables["events"], small_tables["users"]
    assert labels.height == users.height == 400
    assert labels["user_id"].is_unique().all()
    assert set(labels["user_id"]) == set(events["user_id"]) == set(users["user_id"])
    names = [a.name for a in ARCHETYPES]
    for segment, archetype in labels.select("segment", "archetype").unique().rows():
        assert names[segment] == archetype


def test_at_least_six_archetypes_present(small_tables: dict[str, pl.DataFrame]) -> None:
    counts = small_tables["labels"]["archetype"].value_counts()
    assert counts.height >= 6
    assert counts["count"].min() >= 10


def test_events_satisfy_the_contract(small_tables: dict[str, pl.DataFrame]) -> None:
    events = small_tables["events"]
    assert events.columns == list(CANONICAL)
    data = load_events(events, users=small_tables["users"], items=small_tables["items"])
    assert data.dropped == {}
    assert data.n_users == 400
    assert set(events["event_type"].unique()) <= {"purchase", "return", "review", "search"}
    purchases = events.filter(pl.col("event_type") == "purchase")
    assert purchases.select(pl.col("item_id", "category", "amount").null_count()).row(0) == (0,) * 3
    returns = events.filter(pl.col("event_type") == "return")
    assert (returns["quantity"] < 0).all() and (returns["amount"] < 0).all()
    # a little personal data is planted in reviews, for the masking to find
    reviews = events.filter(pl.col("event_type") == "review")["text"]
    assert reviews.str.contains("@example.com").any()


def test_archetypes_are_planted(small_tables: dict[str, pl.DataFrame]) -> None:
    """Each archetype's customers buy mostly from its own categories."""
    events = small_tables["events"].join(small_tables["labels"], on="user_id")
    bought = events.filter(pl.col("event_type") == "purchase")
    for archetype in ARCHETYPES:
        if len(archetype.categories) == 16:  # the lapsed one-timer buys everything
            continue
        mine = bought.filter(pl.col("archetype") == archetype.name)
        share = mine["category"].is_in(list(archetype.categories)).mean()
        assert share is not None and share > 0.6, archetype.name


def test_committed_sample_data_equals_the_generator(repo_root: Path, tmp_path: Path) -> None:
    committed = repo_root / "sample_data"
    if not (committed / "events.parquet").is_file():
        pytest.fail(f"{committed / 'events.parquet'} is missing from the repository")
    parser = make_sample_data.build_parser()
    args = parser.parse_args(["--out", str(tmp_path), "--quiet"])  # default seed and size
    assert (args.seed, args.customers) == (7, 3000)
    assert make_sample_data.main(args) == 0
    for name in TABLES:
        fresh = pl.read_parquet(tmp_path / f"{name}.parquet")
        assert_frame_equal(pl.read_parquet(committed / f"{name}.parquet"), fresh)
