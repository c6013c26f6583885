"""Behaviour features against values computed by hand on a tiny frame."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from segmenter.data import EventData, load_events
from segmenter.features import (
    BASE_FEATURES,
    RFM,
    SKEWED,
    behaviour,
    channel_column,
    repeat_gap,
    top_channels,
)

AS_OF = datetime(2024, 1, 31)  # 2024-01-01 was a Monday
HOUR = 1 / 24


@pytest.fixture(scope="module")
def tiny() -> pl.DataFrame:
    # January 2024: the 6th, 13th and 20th are Saturdays, the 14th a Sunday, the 10th a
    # Wednesday, the 12th a Friday, the 25th a Thursday and the 29th a Monday
    # fmt: off
    rows = [
        # user, timestamp, event_type, order, item, category, qty, amount, rating, channel
        ("a", datetime(2024, 1, 6, 9), "purchase", "o1", "i1", "Mugs", 2, 20.0, None, "web"),
        ("a", datetime(2024, 1, 6, 9), "purchase", "o1", "i2", "Lamps", 1, 10.0, None, "web"),
        ("a", datetime(2024, 1, 10, 14), "purchase", "o2", "i1", "Mugs", 1, 10.0, None, "app"),
        ("a", datetime(2024, 1, 12, 20), "return", "r1", "i1", "Mugs", -1, -10.0, None, "web"),
        ("a", datetime(2024, 1, 13, 23), "review", None, "i1", None, None, None, 4.0, None),
        ("a", datetime(2024, 1, 14, 3), "search", None, None, None, None, None, None, None),
        # b: two purchases without order id on the same day are one order
        ("b", datetime(2024, 1, 20, 10), "purchase", None, "i3", "Tea", 1, 5.0, None, None),
        ("b", datetime(2024, 1, 20, 18), "purchase", None, "i3", "Tea", 1, 7.0, None, None),
        ("b", datetime(2024, 1, 25, 12), "view", None, "i2", "Lamps", None, None, None, None),
        # c: only looked; d: bought something without an item id
        ("c", datetime(2024, 1, 30, 12), "view", None, "i1", "Mugs", None, None, None, "app"),
        ("d", datetime(2024, 1, 29, 0), "purchase", "o9", None, None, 3, 9.0, None, "web"),
    ]
    # fmt: on
    columns = [
        "user_id",
        "timestamp",
        "event_type",
        "order_id",
        "item_id",
        "category",
        "quantity",
        "amount",
        "rating",
        "channel",
    ]  # fmt: skip
    frame = pl.DataFrame(rows, schema=columns, orient="row")
    return load_events(frame).events


@pytest.fixture(scope="module")
def features(tiny: pl.DataFrame) -> pl.DataFrame:
    return behaviour(tiny, as_of=AS_OF, channels=["web", "app"])


def _row(features: pl.DataFrame, user: str) -> dict[str, float]:
    return features.filter(pl.col("user_id") == user).row(0, named=True)


def test_one_row_per_user_all_columns_no_nulls(features: pl.DataFrame) -> None:
    assert features["user_id"].to_list() == ["a", "b", "c", "d"]
    expected = ["user_id", *BASE_FEATURES, "share_channel_web", "share_channel_app"]
    assert features.columns == expected
    assert features.null_count().sum_horizontal().item() == 0
    assert all(features[c].is_nan().sum() == 0 for c in expected[1:])
    assert set(RFM) <= set(BASE_FEATURES) and set(SKEWED) <= set(BASE_FEATURES)


def test_customer_with_orders_returns_review_and_search(features: pl.DataFrame) -> None:
    a = _row(features, "a")
    expected = {
        "frequency": 2.0,  # o1 (two lines) and o2; the return is not an order
        "monetary": 20 + 10 + 10 - 10.0,  # net of the return
        "avg_order_value": 40 / 2,  # gross purchases per order
        "basket_size": 4 / 2,  # units per order
        "return_rate": 1 / 4,  # one unit returned of four bought
        "recency_days": 20 + 10 * HOUR,  # last purchase 2024-01-10 14:00
        "tenure_days": 24 + 15 * HOUR,  # first event 2024-01-06 09:00
        "interpurchase_days": 4 + 5 * HOUR,  # o1 -> o2
        "n_distinct_items": 2.0,
        "n_distinct_categories": 2.0,
        "share_morning": 2 / 6,  # 9h, 9h
        "share_afternoon": 1 / 6,  # 14h
        "share_evening": 1 / 6,  # 20h
        "share_night": 2 / 6,  # 23h, 3h
        "share_weekend": 4 / 6,  # Sat, Sat, Sat, Sun
        "n_reviews": 1.0,
        "mean_rating": 4.0,
        "n_searches": 1.0,
        "n_views": 0.0,
        "n_events": 6.0,
        "share_channel_web": 3 / 6,
        "share_channel_app": 1 / 6,
    }
    for name, value in expected.items():
        assert a[name] == pytest.approx(value), name


def test_orders_without_id_group_by_day(features: pl.DataFrame) -> None:
    b = _row(features, "b")
    expected = {
        "frequency": 1.0,
        "monetary": 12.0,
        "avg_order_value": 12.0,
        "basket_size": 2.0,
        "return_rate": 0.0,
        "recency_days": 10 + 6 * HOUR,  # last purchase, not the later view
        "tenure_days": 10 + 14 * HOUR,
        # one order: no gap yet, so as long as they have been around (>= the median gap)
        "interpurchase_days": 10 + 14 * HOUR,
        "n_distinct_items": 1.0,
        "n_distinct_categories": 1.0,
        "share_morning": 1 / 3,
        "share_afternoon": 1 / 3,
        "share_evening": 1 / 3,
        "share_night": 0.0,
        "share_weekend": 2 / 3,
        "mean_rating": 0.0,  # no reviews: 0, not null
        "n_views": 1.0,
        "n_events": 3.0,
        "share_channel_web": 0.0,
    }
    for name, value in expected.items():
        assert b[name] == pytest.approx(value), name


def test_browser_and_buyer_without_item_id(features: pl.DataFrame) -> None:
    c = _row(features, "c")
    assert c["frequency"] == 0.0 and c["monetary"] == 0.0 and c["avg_order_value"] == 0.0
    assert c["recency_days"] == pytest.approx(12 * HOUR)  # no purchase: last event
    assert c["n_distinct_items"] == 0.0  # viewed items are not bought items
    assert c["share_channel_app"] == 1.0
    # interpurchase of a one-order customer is at least the median gap (only a has a gap)
    assert c["interpurchase_days"] == pytest.approx(4 + 5 * HOUR)
    d = _row(features, "d")
    assert d["frequency"] == 1.0 and d["monetary"] == 9.0 and d["basket_size"] == 3.0
    assert d["n_distinct_items"] == 0.0  # a null item id is not an item
    assert d["share_night"] == 1.0  # midnight
    assert d["share_weekend"] == 0.0  # Monday


def test_return_amounts_count_against_spend_whatever_their_sign(tiny: pl.DataFrame) -> None:
    positive = tiny.with_columns(
        pl.when(pl.col("event_type") == "return")
        .then(pl.col("amount").abs())
        .otherwise(pl.col("amount"))
        .alias("amount")
    )
    assert _row(behaviour(positive, as_of=AS_OF), "a")["monetary"] == pytest.approx(30.0)


def test_return_rate_is_capped_when_returns_exceed_purchases() -> None:
    frame = pl.DataFrame(
        {
            "user_id": ["x", "x"],
            "timestamp": [datetime(2024, 1, 1), datetime(2024, 1, 2)],
            "event_type": ["purchase", "return"],
            "quantity": [1.0, -5.0],  # returns of purchases from before the data starts
            "amount": [10.0, -50.0],
        }
    )
    row = behaviour(load_events(frame).events).row(0, named=True)
    assert row["return_rate"] == 1.0
    assert row["monetary"] == -40.0


def test_default_reference_date_is_the_last_event(tiny: pl.DataFrame) -> None:
    f = behaviour(tiny)  # last event: c's view on 2024-01-30 12:00
    assert _row(f, "c")["recency_days"] == 0.0
    assert _row(f, "a")["recency_days"] == pytest.approx(19 + 22 * HOUR)
    # an as_of before the events never gives negative days
    early = behaviour(tiny, as_of=datetime(2024, 1, 1))
    assert early["recency_days"].min() == 0.0 and early["tenure_days"].min() == 0.0


def test_top_channels_and_column_names(tiny: pl.DataFrame) -> None:
    assert top_channels(tiny) == ["web", "app"]  # web 5, app 2
    assert top_channels(tiny, limit=1) == ["web"]
    assert channel_column("In-Store App") == "share_channel_in_store_app"


def test_synthetic_customers(small_tables: dict[str, pl.DataFrame], small_features) -> None:  # type: ignore[no-untyped-def]
    events = small_tables["events"]
    assert small_features.height == events["user_id"].n_unique() == 400
    assert small_features["user_id"].is_unique().all()
    assert small_features.null_count().sum_horizontal().item() == 0
    shares = small_features.select(
        pl.sum_horizontal("share_morning", "share_afternoon", "share_evening", "share_night")
    ).to_series()
    assert shares.to_numpy() == pytest.approx(1.0)
    assert small_features["return_rate"].is_between(0, 1).all()
    # frequency counts distinct purchase orders, recomputed here from the events directly
    orders = (
        events.filter(pl.col("event_type") == "purchase")
        .group_by("user_id")
        .agg(pl.col("order_id").n_unique().cast(pl.Float64).alias("expected"))
    )
    joined = small_features.join(orders, on="user_id")
    assert (joined["frequency"] == joined["expected"]).all()


def test_one_customer_alone_gets_the_same_features_as_in_the_whole_base(
    small_data: EventData, small_features: pl.DataFrame
) -> None:
    """Placing one new customer must not depend on who else is in the frame."""
    events = small_data.events
    as_of = events["timestamp"].max()
    gap = repeat_gap(small_features)
    assert gap > 0
    one_time = pl.col("frequency") <= 1
    # one-time buyers newer than the usual gap: the gap is their floor, so it must be the base's
    short = small_features.filter(one_time & (pl.col("tenure_days") < gap))["user_id"]
    long = small_features.filter(one_time & (pl.col("tenure_days") > gap))["user_id"]
    repeaters = small_features.filter(~one_time)["user_id"]
    assert short.len() and long.len() and repeaters.len()
    for user in [*short.head(3), *long.head(2), *repeaters.head(2)]:
        alone = behaviour(events.filter(pl.col("user_id") == user), as_of=as_of, median_gap=gap)
        expected = small_features.filter(pl.col("user_id") == user)
        assert_frame_equal(alone, expected, rel_tol=1e-12)
    user = short[0]
    with_gap = behaviour(events.filter(pl.col("user_id") == user), as_of=as_of, median_gap=gap)
    assert with_gap["interpurchase_days"].item() == pytest.approx(gap)
    # without the base's gap the customer's own (absent) gap is used: the floor is its tenure
    alone = behaviour(events.filter(pl.col("user_id") == user), as_of=as_of)
    tenure = alone["tenure_days"].item()
    assert tenure < gap
    assert alone["interpurchase_days"].item() == pytest.approx(tenure)
