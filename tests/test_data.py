"""The events contract: loading, mapping, validation, joins, and the online-retail preset."""

from __future__ import annotations

import gzip
import os
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from segmenter.data import CANONICAL, load_events, parse_columns
from segmenter.documents import TokenBudget, serialize
from segmenter.errors import SegmenterError
from segmenter.features import behaviour

T0 = datetime(2021, 3, 1, 9, 30)


def _events(**extra: list[object]) -> pl.DataFrame:
    """Three valid events of two users; ``extra`` adds or replaces columns."""
    columns: dict[str, list[object]] = {
        "user_id": ["u1", "u1", "u2"],
        "timestamp": ["2021-03-01 09:30:00", "2021-03-02 10:00:00", "2021-03-03 11:15:00"],
    }
    columns.update(extra)
    return pl.DataFrame(columns)


@pytest.fixture()
def canonical_frame() -> pl.DataFrame:
    """Events with every canonical column, as a user would write them to parquet."""
    return pl.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u3", "u3", "u3"],
            "timestamp": [datetime(2021, 3, d, 8 + d) for d in (1, 2, 2, 3, 4, 5)],
            "event_type": ["purchase", "review", "purchase", "view", "purchase", "return"],
            "order_id": ["o1", None, "o2", None, "o3", "r3"],
            "item_id": ["i1", "i1", "i2", "i3", "i3", "i3"],
            "item_name": ["red mug", "red mug", "blue lamp", "tea", "tea", "tea"],
            "category": ["Home > Kitchen", None, "Home", "Grocery", "Grocery", "Grocery"],
            "quantity": [2.0, None, 1.0, None, 3.0, -1.0],
            "amount": [12.5, None, 40.0, None, 9.0, -3.0],
            "text": [None, "lovely mug, 质量很好", None, None, None, None],
            "rating": [None, 5.0, None, None, None, None],
            "channel": ["web", "web", "app", "app", "store", "store"],
        }
    )


# -- formats -----------------------------------------------------------------------------------


def test_parquet_csv_csvgz_and_shards_load_to_the_same_frame(
    tmp_path: Path, canonical_frame: pl.DataFrame
) -> None:
    canonical_frame.write_parquet(tmp_path / "events.parquet")
    canonical_frame.write_csv(tmp_path / "events.csv")
    (tmp_path / "events.csv.gz").write_bytes(gzip.compress((tmp_path / "events.csv").read_bytes()))
    shards = tmp_path / "shards"
    shards.mkdir()
    for i, start in enumerate((0, 2, 4)):
        canonical_frame.slice(start, 2).write_parquet(shards / f"part-{i:03d}.parquet")

    reference = load_events(canonical_frame).events
    assert reference.columns == list(CANONICAL)
    assert reference.height == canonical_frame.height
    for source in ("events.parquet", "events.csv", "events.csv.gz", "shards"):
        loaded = load_events(tmp_path / source)
        assert_frame_equal(loaded.events, reference)
        assert loaded.n_users == 3
        assert loaded.dropped == {}
        assert len(loaded.fingerprint) == 64
    # the text survives CSV round trips, Chinese included
    assert "质量很好" in reference["text"].drop_nulls()[0]


def test_paths_and_frames_load_alike(small_events_path: Path, small_data) -> None:  # type: ignore[no-untyped-def]
    data = load_events(
        small_events_path / "events.parquet",
        users=small_events_path / "users.parquet",
        items=small_events_path / "items.parquet",
    )
    assert_frame_equal(data.events, small_data.events)
    assert data.users is not None and small_data.users is not None
    assert_frame_equal(data.users, small_data.users)
    assert data.source.endswith("events.parquet")
    assert data.summary()["customers"] == 400


def test_input_file_is_never_modified(tmp_path: Path, canonical_frame: pl.DataFrame) -> None:
    files = [tmp_path / "events.parquet", tmp_path / "events.csv"]
    canonical_frame.write_parquet(files[0])
    canonical_frame.write_csv(files[1])
    old = 1_600_000_000
    for f in files:
        os.utime(f, (old, old))
    before = {f: (f.read_bytes(), f.stat().st_mtime_ns) for f in files}
    for f in files:
        load_events(f, users=_users_frame(), columns={"user_id": "user_id"})
    after = {f: (f.read_bytes(), f.stat().st_mtime_ns) for f in files}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.csv", "events.parquet"]


def test_fingerprint_follows_the_bytes(tmp_path: Path, canonical_frame: pl.DataFrame) -> None:
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    canonical_frame.write_parquet(a)
    canonical_frame.head(5).write_parquet(b)
    assert load_events(a).fingerprint == load_events(a).fingerprint
    assert load_events(a).fingerprint != load_events(b).fingerprint


def test_extra_unknown_columns_are_ignored() -> None:
    frame = _events(coupon=["x", None, "y"], score=[1, 2, 3])
    events = load_events(frame).events
    assert events.columns == list(CANONICAL)
    assert "coupon" not in events.columns


def test_defaults_for_absent_optional_columns() -> None:
    events = load_events(_events()).events
    assert events["event_type"].to_list() == ["purchase"] * 3
    assert events["quantity"].to_list() == [1.0] * 3
    assert events["amount"].null_count() == 3
    assert events.schema["timestamp"] == pl.Datetime("us")
    assert events["timestamp"][0] == T0


def test_event_types_are_normalized_and_negative_quantities_are_returns() -> None:
    frame = _events(event_type=[" Purchase", None, ""], quantity=["2", "-1", None])
    events = load_events(frame).events
    assert events["event_type"].to_list() == ["purchase", "return", "purchase"]
    assert events["quantity"].to_list() == [2.0, -1.0, 1.0]


def test_user_ids_are_strings_and_float_round_trips_are_undone() -> None:
    frame = pl.DataFrame(
        {"user_id": [17850.0, 12.0, 17850.0], "timestamp": [T0, T0, T0]},
    )
    assert load_events(frame).events["user_id"].to_list() == ["12", "17850", "17850"]
    as_text = _events(user_id=[" 17850.0", "17850", "12.0"])
    assert sorted(load_events(as_text).events["user_id"].unique()) == ["12", "17850"]
    ints = _events(user_id=[3, 1, 2])
    assert load_events(ints).events["user_id"].to_list() == ["1", "2", "3"]


def test_timestamps_in_several_iso_forms() -> None:
    frame = pl.DataFrame(
        {
            "user_id": ["a", "b", "c", "d", "e"],  # one each: the loader sorts by user and time
            "timestamp": [
                "2021-03-01",
                "2021-03-01 09:30",
                "2021-03-01T09:30:00",
                "2021-03-01 09:30:00.250",
                "2021-03-01T10:30:00+01:00",
            ],
        }
    )
    got = load_events(frame).events["timestamp"].to_list()
    assert got == [
        datetime(2021, 3, 1),
        T0,
        T0,
        datetime(2021, 3, 1, 9, 30, 0, 250_000),
        T0,  # offsets are converted to UTC
    ]


def test_columns_mapping_and_parse_columns() -> None:
    frame = pl.DataFrame(
        {
            "Customer": ["a", "b"],
            "When": ["2021-03-01 09:30:00", "2021-03-02 09:30:00"],
            "Spend": ["1.5", "2"],
        }
    )
    mapping = parse_columns(" user_id=Customer, timestamp=When,amount=Spend,")
    assert mapping == {"user_id": "Customer", "timestamp": "When", "amount": "Spend"}
    events = load_events(frame, columns=mapping).events
    assert events["user_id"].to_list() == ["a", "b"]
    assert events["amount"].to_list() == [1.5, 2.0]
    assert parse_columns(None) == {}


def test_mapping_replaces_a_column_of_the_same_canonical_name() -> None:
    # their table has a `user_id` (say, a login) but the customer key is `customer`
    frame = _events(customer=["c9", "c9", "c7"])
    events = load_events(frame, columns={"user_id": "customer"}).events
    assert events["user_id"].to_list() == ["c7", "c9", "c9"]


def test_one_column_may_feed_two_canonical_ones() -> None:
    frame = pl.DataFrame({"id": ["a", "b"], "timestamp": [T0, T0]})
    events = load_events(frame, columns={"user_id": "id", "order_id": "id"}).events
    assert events["order_id"].to_list() == ["a", "b"]


def test_country_mapping_becomes_a_users_attribute() -> None:
    frame = _events(Land=["France", "France", None])
    data = load_events(frame, columns={"country": "Land"})
    assert data.users is not None
    assert data.users.sort("user_id").rows() == [("u1", "France"), ("u2", None)]


# -- joins -------------------------------------------------------------------------------------


def _users_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {"user_id": ["u1", "u2", "u2"], "country": ["France", "Spain", "Italy"], "age": [30, 41, 0]}
    )


def test_users_and_items_tables_join() -> None:
    events = _events(
        item_id=["i1", "i2", "i1"],
        event_type=["purchase", "purchase", "review"],
        quantity=["3", None, "1"],
        amount=[None, "99", None],
        item_name=[None, "own title", None],
    )
    items = pl.DataFrame(
        {
            "item_id": ["i1", "i2", "i1"],
            "item_name": ["Red mug", "Blue lamp", "duplicate row is ignored"],
            "category": ["Kitchen", "Home", "Kitchen"],
            "brand": ["ACME", "ACME", "ACME"],
            "price": ["2.5", "40", "7"],
        }
    )
    data = load_events(events, users=_users_frame(), items=items)
    ev = data.events
    assert ev.columns == list(CANONICAL)
    assert ev["item_name"].to_list() == ["Red mug", "own title", "Red mug"]
    assert ev["category"].to_list() == ["Kitchen", "Home", "Kitchen"]
    # amount from price x quantity where a purchase has none; the event's own amount wins;
    # a review of the item spent nothing
    assert ev["amount"].to_list() == [7.5, 99.0, None]
    unknown = load_events(events.with_columns(item_id=pl.lit("i9")), items=items).events
    assert unknown["item_name"].to_list() == [None, "own title", None]
    assert unknown["amount"].to_list() == [None, 99.0, None]
    assert data.users is not None
    assert data.users.rows() == [("u1", "France", 30), ("u2", "Spain", 41)]


def test_items_join_keeps_the_event_order() -> None:
    n = 500
    events = pl.DataFrame(
        {
            "user_id": ["u"] * n,
            "timestamp": [T0] * n,  # all tied: only the input order tells them apart
            "item_id": [f"i{i % 7}" for i in range(n)],
            "order_id": [f"o{i:04d}" for i in range(n)],
        }
    )
    items = pl.DataFrame({"item_id": [f"i{i}" for i in range(7)], "price": [1.0] * 7})
    got = load_events(events, items=items).events
    assert got["order_id"].to_list() == events["order_id"].to_list()


# -- errors ------------------------------------------------------------------------------------


def test_missing_required_column_lists_present_columns() -> None:
    frame = pl.DataFrame({"user_id": ["a"], "when": ["2021-01-01"], "spend": [1.0]})
    with pytest.raises(
        SegmenterError,
        match=r"missing required column 'timestamp'; columns present: \[user_id, when, spend\]",
    ):
        load_events(frame)
    with pytest.raises(SegmenterError, match=r"missing required column 'user_id'"):
        load_events(pl.DataFrame({"timestamp": [T0]}))


def test_unparseable_timestamp_names_value_and_row() -> None:
    frame = _events(timestamp=["2021-03-01 09:30:00", "yesterday", "also bad"])
    with pytest.raises(SegmenterError, match=r"cannot parse 'yesterday' \(row 1\) as a datetime"):
        load_events(frame)
    # nothing a format can be inferred from
    with pytest.raises(SegmenterError, match=r"cannot parse 'hello' \(row 0\)"):
        load_events(_events(timestamp=["hello", "x", "y"]))
    with pytest.raises(SegmenterError, match=r"cannot parse '' \(row 2\)"):
        load_events(_events(timestamp=["2021-03-01", "2021-03-01", ""]))


def test_null_timestamp_and_wrong_type() -> None:
    with pytest.raises(SegmenterError, match=r"1 rows have no timestamp \(first at row 1\)"):
        load_events(_events(timestamp=["2021-03-01", None, "2021-03-01"]))
    with pytest.raises(SegmenterError, match=r"'timestamp' has type Int64; expected a datetime"):
        load_events(_events(timestamp=[1, 2, 3]))


@pytest.mark.parametrize("bad", [None, "", "   "])
def test_null_or_empty_user_id(bad: str | None) -> None:
    frame = _events(user_id=["u1", bad, bad])
    with pytest.raises(
        SegmenterError,
        match=r"'user_id': 2 rows have a null or empty user id \(first at row 1\).*--drop-invalid",
    ):
        load_events(frame)
    data = load_events(frame, drop_invalid=True)
    assert data.events["user_id"].to_list() == ["u1"]
    assert data.dropped == {"null or empty user_id": 2}
    assert data.summary()["dropped_rows"] == {"null or empty user_id": 2}


def test_rows_in_errors_are_input_rows_even_after_drops() -> None:
    frame = _events(
        user_id=[None, "u1", "u2", "u3"],
        timestamp=["2021-03-01", "2021-03-01", "31/02/2021", "2021-03-01"],
        amount=["1", "2", "3", "n/a"],
    )
    with pytest.raises(SegmenterError, match=r"cannot parse '31/02/2021' \(row 2\)"):
        load_events(frame, drop_invalid=True)
    fixed = frame.with_columns(pl.lit("2021-03-01").alias("timestamp"))
    with pytest.raises(SegmenterError, match=r"'amount': 'n/a' \(row 3\) is not a number"):
        load_events(fixed, drop_invalid=True)


def test_drop_invalid_with_nothing_left() -> None:
    with pytest.raises(SegmenterError, match=r"no rows left after dropping rows without user_id"):
        load_events(_events(user_id=[None, "", None]), drop_invalid=True)


@pytest.mark.parametrize("column", ["amount", "quantity", "rating"])
def test_non_numeric_values(column: str) -> None:
    frame = _events(**{column: ["1.5", "12,50 EUR", "2"]})
    with pytest.raises(
        SegmenterError,
        match=rf"column '{column}': '12,50 EUR' \(row 1\) is not a number.*\(1 bad rows\)",
    ):
        load_events(frame)
    with pytest.raises(SegmenterError, match=rf"column '{column}' is boolean; expected numbers"):
        load_events(_events(**{column: [True, False, True]}))


def test_empty_input(tmp_path: Path) -> None:
    empty = pl.DataFrame(schema={"user_id": pl.String, "timestamp": pl.String})
    with pytest.raises(SegmenterError, match=r"is empty: 0 rows; expected one row per event"):
        load_events(empty)
    header_only = tmp_path / "events.csv"
    header_only.write_text("user_id,timestamp,amount\n")
    with pytest.raises(SegmenterError, match=r"events.csv' is empty: 0 rows"):
        load_events(header_only)
    gz = tmp_path / "events.csv.gz"
    gz.write_bytes(gzip.compress(b"user_id,timestamp\n"))
    with pytest.raises(SegmenterError, match=r"events.csv.gz' is empty: 0 rows"):
        load_events(gz)
    zero = tmp_path / "zero.parquet"
    zero.write_bytes(b"")
    with pytest.raises(SegmenterError, match=r"zero.parquet' is empty: 0 bytes"):
        load_events(zero)


def test_missing_path_and_unknown_file_type(tmp_path: Path) -> None:
    with pytest.raises(SegmenterError, match=r"input '.*nope.parquet' does not exist"):
        load_events(tmp_path / "nope.parquet")
    json_file = tmp_path / "events.json"
    json_file.write_text('[{"user_id": "a"}]')
    with pytest.raises(SegmenterError, match=r"unknown file type; expected .parquet, .csv"):
        load_events(json_file)
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(SegmenterError, match=r"folder '.*empty_folder' holds no .parquet files"):
        load_events(tmp_path / "empty_folder")


@pytest.mark.parametrize(
    ("name", "kind"),
    [("events.parquet", "parquet"), ("events.pq", "parquet"), ("events.csv", "CSV")],
)
def test_file_that_is_not_what_its_name_says(tmp_path: Path, name: str, kind: str) -> None:
    path = tmp_path / name
    path.write_bytes(bytes(range(256)) * 8)  # not parquet, not UTF-8 text
    with pytest.raises(SegmenterError, match=rf"could not be read as {kind}: "):
        load_events(path)
    gz = tmp_path / "events.csv.gz"
    gz.write_bytes(b"\x1f\x8b\x08" + bytes(range(256)))  # a gzip header, then garbage
    with pytest.raises(SegmenterError, match=r"could not be read as CSV"):
        load_events(gz)


def test_unknown_preset_and_mapping_errors() -> None:
    frame = _events()
    with pytest.raises(
        SegmenterError, match=r"unknown preset 'shopify'; allowed: \['online-retail'\]"
    ):
        load_events(frame, preset="shopify")
    with pytest.raises(
        SegmenterError,
        match=r"'user_id' is mapped to 'NoSuchColumn', which is not a column of '<frame>'; "
        r"columns present: \[user_id, timestamp\]",
    ):
        load_events(frame, columns={"user_id": "NoSuchColumn"})
    with pytest.raises(SegmenterError, match=r"unknown canonical name 'customer'; allowed: "):
        load_events(frame, columns={"customer": "user_id"})
    with pytest.raises(SegmenterError, match=r"'user_id' is not of the form canonical=theirs"):
        parse_columns("timestamp=When,user_id")


def test_bad_users_and_items_tables() -> None:
    with pytest.raises(SegmenterError, match=r"users table is missing column 'user_id'"):
        load_events(_events(), users=pl.DataFrame({"id": ["u1"]}))
    with pytest.raises(SegmenterError, match=r"items table is missing column 'item_id'"):
        load_events(_events(item_id=["a", "b", "c"]), items=pl.DataFrame({"sku": ["a"]}))
    with pytest.raises(SegmenterError, match=r"items table is empty: 0 rows"):
        load_events(_events(), items=pl.DataFrame(schema={"item_id": pl.String}))
    with pytest.raises(SegmenterError, match=r"column 'price': 'free' \(row 0\) is not a number"):
        load_events(
            _events(item_id=["a", "b", "c"]),
            items=pl.DataFrame({"item_id": ["a"], "price": ["free"]}),
        )


# -- the online-retail preset ------------------------------------------------------------------

UCI_EXCERPT = """\
InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom
536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom
536370,22728,ALARM CLOCK BAKELIKE PINK,24,2010-12-01 08:45:00,3.75,12583.0,France
536414,22139,,56,2010-12-01 11:52:00,0.0,,United Kingdom
C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527.0,United Kingdom
536544,21773,DECORATIVE ROSE BATHROOM BOTTLE,1,2010-12-01 14:32:00,2.51,,United Kingdom
C536383,35004C,SET OF 3 COLOURED  FLYING DUCKS,-1,2010-12-01 09:49:00,4.65,17850.0,United Kingdom
"""


def test_online_retail_preset_on_an_excerpt(tmp_path: Path) -> None:
    path = tmp_path / "online_retail.csv"
    path.write_text(UCI_EXCERPT)
    data = load_events(path, preset="online-retail")
    ev = data.events.sort("user_id", "timestamp")
    assert data.dropped == {"online-retail: no CustomerID": 2}
    assert ev.height == 5
    assert ev["user_id"].to_list() == ["12583", "14527", "17850", "17850", "17850"]
    assert ev["order_id"].to_list() == ["536370", "C536379", "536365", "536365", "C536383"]
    assert ev["event_type"].to_list() == ["purchase", "return", "purchase", "purchase", "return"]
    assert ev["quantity"].to_list() == [24.0, -1.0, 6.0, 6.0, -1.0]
    expected_amount = [24 * 3.75, -1 * 27.5, 6 * 2.55, 6 * 3.39, -1 * 4.65]
    assert ev["amount"].to_list() == pytest.approx(expected_amount)
    assert ev["item_id"][0] == "22728"
    assert ev["item_name"][0] == "ALARM CLOCK BAKELIKE PINK"
    assert data.users is not None
    assert data.users.sort("user_id").rows() == [
        ("12583", "France"),
        ("14527", "United Kingdom"),
        ("17850", "United Kingdom"),
    ]
    # the features see the cancellation as a return
    f = behaviour(data.events).filter(pl.col("user_id") == "17850")
    assert f["frequency"].item() == 1.0
    assert f["monetary"].item() == pytest.approx(6 * 2.55 + 6 * 3.39 - 4.65)


def test_online_retail_errors_name_the_line_of_the_file(tmp_path: Path) -> None:
    lines = UCI_EXCERPT.splitlines()
    bad = lines[7].replace(",-1,", ",minus one,")  # data row 6, after two rows without customer
    assert bad != lines[7]
    path = tmp_path / "retail.csv"
    path.write_text("\n".join([*lines[:7], bad]) + "\n")
    with pytest.raises(SegmenterError, match=r"'Quantity': 'minus one' \(row 6\) is not a number"):
        load_events(path, preset="online-retail")


def test_online_retail_preset_needs_the_uci_columns(tmp_path: Path) -> None:
    path = tmp_path / "retail.csv"
    path.write_text("InvoiceNo,CustomerID,InvoiceDate,Quantity\n1,2,2010-12-01 08:26:00,3\n")
    with pytest.raises(
        SegmenterError, match=r"--preset online-retail: input is missing column 'UnitPrice'"
    ):
        load_events(path, preset="online-retail")


@pytest.mark.shared_data
def test_online_retail_real_file(require_shared) -> None:  # type: ignore[no-untyped-def]
    path = require_shared("online_retail/online_retail.csv.gz")
    data = load_events(path, preset="online-retail")
    assert data.n_users == 4372
    assert data.dropped == {"online-retail: no CustomerID": 135_080}
    assert data.events.height == 541_909 - 135_080
    assert data.users is not None and data.users.height == 4372
    assert data.users["country"].n_unique() == 37  # of 38: one only on rows without CustomerID
    features = behaviour(data.events)
    assert features.height == 4372
    assert features.null_count().sum_horizontal().item() == 0
    docs = serialize(data.events, features, data.users, max_tokens=128)
    assert docs.height == 4372
    assert docs["user_id"].to_list() == features["user_id"].to_list()
    assert docs["document"].null_count() == 0
    assert docs["document"].str.len_chars().min() > 5
    counts = TokenBudget(None, 128).count(docs["document"].to_list())
    assert counts.max() <= 128
