"""Facts -> documents: the plain-Python facts of a few customers equal the polars plan's, field
for field, so that the one renderer writes the same documents byte for byte."""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from segmenter import documents as documents_module
from segmenter import facts_python, textops
from segmenter.data import EventData, load_events
from segmenter.documents import SMALL_BATCH, DocumentRecipe
from segmenter.facts import FEATURES, facts_frame
from segmenter.facts_python import PolarsOnly, python_facts
from segmenter.features import behaviour
from segmenter.privacy import mask as polars_mask
from segmenter.privacy import mask_python
from segmenter.render import SECTIONS
from segmenter.vocabulary import DAYPARTS

#: no document is cut: the comparison sees every character that was built
UNCUT = 100_000


@pytest.fixture(scope="module")
def builders(small_data: EventData, small_features: pl.DataFrame) -> list[DocumentRecipe]:
    fitted = []
    for params in (
        {"max_tokens": UNCUT, "sections": SECTIONS},
        {
            "max_tokens": UNCUT,
            "n_items": 2,
            "n_categories": 5,
            "n_texts": 4,
            "text_chars": 12,
            "sections": SECTIONS,
            "weighting": "tfidf",
        },
        {"max_tokens": UNCUT, "n_items": 0, "n_categories": 0, "n_texts": 0, "sections": SECTIONS},
        {},  # the defaults (what the customer buys and writes) and a budget of 128 tokens
    ):
        builder = DocumentRecipe(**params)  # type: ignore[arg-type]
        builder.fit_features(small_data.events)
        fitted.append(builder.fit_documents(small_data.events, small_features, small_data.users))
    return fitted


def _frame(builder: DocumentRecipe, facts: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            pl.Series("user_id", [f["user_id"] for f in facts], dtype=pl.String),
            pl.Series("document", builder.render(facts), dtype=pl.String),
        ]
    )


def polars_docs(
    builder: DocumentRecipe,
    events: pl.DataFrame,
    features: pl.DataFrame,
    users: pl.DataFrame | None,
) -> pl.DataFrame:
    """The documents rendered from the polars plan's facts."""
    return _frame(
        builder, list(facts_frame(builder, events, features, users).iter_rows(named=True))
    )


def python_documents(
    builder: DocumentRecipe,
    events: pl.DataFrame,
    features: pl.DataFrame,
    users: pl.DataFrame | None,
) -> pl.DataFrame:
    """The documents rendered from the plain-Python facts, which equal the polars facts."""
    facts = python_facts(builder, events, features, users)
    if features.height and facts:
        expected = facts_frame(builder, events, features, users).rows(named=True)
        assert facts == expected
    return _frame(builder, facts)


def assert_same(got: pl.DataFrame, expected: pl.DataFrame) -> None:
    assert got.schema == pl.Schema({"user_id": pl.String, "document": pl.String})
    assert got["user_id"].to_list() == expected["user_id"].to_list()
    for uid, a, b in zip(got["user_id"], got["document"], expected["document"], strict=True):
        assert a == b, f"customer {uid}:\n python {a!r}\n polars {b!r}"
    assert got.equals(expected)


# -- the synthetic customers, one at a time and in threes -------------------------------------


@pytest.mark.parametrize("which", [0, 1, 2, 3])
def test_each_customer_alone_gets_its_batch_document(
    builders: list[DocumentRecipe],
    small_data: EventData,
    small_features: pl.DataFrame,
    which: int,
) -> None:
    builder = builders[which]
    batch = polars_docs(builder, small_data.events, small_features, small_data.users)
    expected = dict(batch.iter_rows())
    assert len(set(expected.values())) > 300  # the documents tell customers apart
    events = small_data.events.partition_by("user_id", as_dict=True)
    users = small_data.users
    assert users is not None
    for uid in small_features["user_id"]:
        row = small_features.filter(pl.col("user_id") == uid)
        got = python_documents(builder, events[(uid,)], row, users)
        assert got["document"].to_list() == [expected[uid]], uid


def test_customers_in_threes_keep_the_features_order(
    builders: list[DocumentRecipe],
    small_data: EventData,
    small_features: pl.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the whole events and users tables, narrowed by polars first
    monkeypatch.setattr(facts_python, "NARROW_ROWS", 0)
    builder = builders[1]
    shuffled = small_features.sample(fraction=1.0, shuffle=True, seed=5)
    for start in range(0, shuffled.height, 3):
        rows = shuffled.slice(start, 3)
        expected = polars_docs(builder, small_data.events, rows, small_data.users)
        got = python_documents(builder, small_data.events, rows, small_data.users)
        assert_same(got, expected)


def test_transform_takes_the_python_path_for_small_batches(
    builders: list[DocumentRecipe],
    small_data: EventData,
    small_features: pl.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    builder = builders[3]
    few = small_features.head(SMALL_BATCH)
    expected = polars_docs(builder, small_data.events, few, small_data.users)
    nothing = polars_docs(builder, small_data.events, few.head(0), small_data.users)

    def no_polars(*args: object) -> pl.DataFrame:
        raise AssertionError("the polars plan ran for a small batch")

    monkeypatch.setattr(documents_module, "facts_frame", no_polars)
    assert_same(builder.documents(small_data.events, few, small_data.users), expected)
    assert_same(builder.documents(small_data.events, few.head(0), small_data.users), nothing)
    monkeypatch.undo()

    def no_python(*args: object) -> pl.DataFrame:
        raise AssertionError("the python path ran for a large batch")

    monkeypatch.setattr(documents_module, "python_facts", no_python)
    more = small_features.head(SMALL_BATCH + 1)
    assert builder.documents(small_data.events, more, small_data.users).height == SMALL_BATCH + 1


# -- adversarial customers ----------------------------------------------------------------------

TEXTS = [
    "mail me at jane.doe@example.com or call +44 20 7946 0958",
    "请拨打13812345678联系我",
    "性价比很高，家里人都喜欢",
    "card 4111111111111111 exp 2021-05-03 12:30",
    "order 12345 on 03.05.2021, size 42",
    '  she said "great"   quality\t\t ',
    "",
    "   ",
    "\u3000\u3000全角空格\u3000",
    "line one\nline two\n",
    "tail digits 123456789\n",
    "a\x1cb\x1d",
    "x\x85y\xa0z",
    "Contact: JOHN_99@shop-online.de (555) 123-4567",
    "١٢٣٤٥٦٧٨٩٠ arabic digits",
    "\ue000marked\ue000 2021-05-03\ue000",
    "İstanbul straße ÉCHARPE",
    "ＡＢＣ１２３４５",
]
LABELS = [
    "Tea",
    "tea",
    "  Green\t Tea  ",
    "茶叶",
    "毛巾 大号",
    "ÉCHARPE EN LAINE",
    "İstanbul",
    "Straße",
    "x" * 60,
    "y " * 30,
    "a\x1cb",
    "",
    "   ",
    "Home > Kitchen",
    "Electronics",
    "Books",
]
CHARS = list("abcXYZ019 \t\n@.-+()/\"'_\x1c\u3000\xa0中文é١\ue000")
text = st.one_of(
    st.none(),
    st.sampled_from(TEXTS),
    st.sampled_from(["again", "again", " again", "Again"]),  # repeats
    st.text(alphabet=st.sampled_from(CHARS), max_size=90),
    st.builds(lambda a, b: a + " " + b, st.sampled_from(TEXTS), st.sampled_from(TEXTS)),
)
label = st.one_of(st.none(), st.sampled_from(LABELS), st.text(st.sampled_from(CHARS), max_size=8))
T0 = datetime(2026, 6, 1)
event = st.tuples(
    st.integers(0, 3),  # customer 3 has events but no feature row
    st.one_of(st.none(), st.integers(0, 4).map(lambda h: T0 + timedelta(hours=h))),
    st.sampled_from(["purchase", "purchase", "return", "search", "view", "review", None]),
    label,
    label,
    st.one_of(st.none(), st.sampled_from(LABELS[:6] + LABELS[-3:])),
    text,
    st.sampled_from(["web", "Web", "app", "STORE", "Kiosk", None]),
)
EVENT_SCHEMA = {
    "user_id": pl.String,
    "timestamp": pl.Datetime("us"),
    "event_type": pl.String,
    "item_id": pl.String,
    "item_name": pl.String,
    "category": pl.String,
    "text": pl.String,
    "channel": pl.String,
}
ratings = st.one_of(
    st.sampled_from([4.25, 4.35, 2.05, 0.05, 4.45, 1.25, 3.75, 5.0, 0.0]),
    st.floats(0.0, 5.0),
)


@st.composite
def feature_rows(draw: st.DrawFn, builder: DocumentRecipe) -> dict[str, float]:
    row: dict[str, float] = {}
    for column, edges in builder.edges_.items():
        row[column] = draw(st.one_of(st.sampled_from([0.0, 1.0, *edges]), st.floats(0.0, 3000.0)))
    for column in DAYPARTS:
        row[column] = draw(st.sampled_from([0.0, 0.25, 0.5, 0.7, 1.0]))
    row["share_weekend"] = draw(st.sampled_from([0.0, 0.15, 0.3, 0.5, 0.9]))
    row["n_reviews"] = draw(st.sampled_from([0.0, 1.0, 3.0]))
    row["mean_rating"] = draw(ratings)
    return row


@st.composite
def customers(
    draw: st.DrawFn, builders: list[DocumentRecipe]
) -> tuple[DocumentRecipe, pl.DataFrame, pl.DataFrame, pl.DataFrame | None]:
    builder = draw(st.sampled_from(builders))
    rows = draw(st.lists(event, max_size=40))
    if rows:  # the same event twice (a text, an item or a channel repeated)
        rows += draw(st.lists(st.sampled_from(rows), max_size=8))
    events = pl.DataFrame([(f"u{r[0]}", *r[1:]) for r in rows], schema=EVENT_SCHEMA, orient="row")
    ids = draw(st.permutations(["u0", "u1", "u2"]))[: draw(st.integers(1, 3))]
    values = [draw(feature_rows(builder)) for _ in ids]
    features = pl.DataFrame(
        {"user_id": ids} | {c: [v[c] for v in values] for c in FEATURES},
        schema={"user_id": pl.String} | dict.fromkeys(FEATURES, pl.Float64),
    )
    users = None
    if draw(st.booleans()):
        who = draw(st.lists(st.sampled_from(["u0", "u1", "u2", "u9"]), unique=True))
        users = pl.DataFrame(
            {
                "user_id": who,
                "country": [draw(text) for _ in who],
                "age_band": [draw(st.sampled_from(["18-24", None, "a@b.co"])) for _ in who],
            },
            schema={"user_id": pl.String, "country": pl.String, "age_band": pl.String},
        )
    return builder, events, features, users


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_adversarial_customers(data: st.DataObject, builders: list[DocumentRecipe]) -> None:
    builder, events, features, users = data.draw(customers(builders))
    expected = polars_docs(builder, events, features, users)
    assert_same(python_documents(builder, events, features, users), expected)


@pytest.mark.parametrize(
    "kinds",
    [["search"] * 3, ["view"] * 4, [], ["return"] * 2, [None, None], ["view", "search", None]],
)
def test_customers_with_few_kinds_of_events(
    builders: list[DocumentRecipe], small_features: pl.DataFrame, kinds: list[str | None]
) -> None:
    rows = [
        ("u0", T0 + timedelta(minutes=i), kind, f"i{i}", None, "Books", TEXTS[i], "web")
        for i, kind in enumerate(kinds)
    ]
    events = pl.DataFrame(rows, schema=EVENT_SCHEMA, orient="row")
    features = small_features.head(1).with_columns(pl.lit("u0").alias("user_id"))
    for builder in builders:
        expected = polars_docs(builder, events, features, None)
        assert_same(python_documents(builder, events, features, None), expected)


@pytest.mark.parametrize(
    "texts",
    [
        [("same", 3), ("same", 2), ("other", 1)],  # a text repeated is quoted once
        [("b", 0), ("a", 0), ("c", 0)],  # ties in time: by text
        [("z", None), ("y", 5), ("x", None)],  # no timestamp counts as the newest
        [(" same ", 2), ("same", 1), ("same\t", 3), ("SAME", 0)],  # distinct until cleaned
    ],
)
@pytest.mark.parametrize("kind", ["search", "review"])
def test_texts_newest_first_each_once(
    builders: list[DocumentRecipe],
    small_features: pl.DataFrame,
    texts: list[tuple[str, int | None]],
    kind: str,
) -> None:
    rows = [
        ("u0", None if h is None else T0 + timedelta(hours=h), kind, None, None, None, text, None)
        for text, h in texts
    ]
    events = pl.DataFrame(rows, schema=EVENT_SCHEMA, orient="row")
    features = small_features.head(1).with_columns(pl.lit("u0").alias("user_id"))
    for builder in builders:
        expected = polars_docs(builder, events, features, None)
        assert_same(python_documents(builder, events, features, None), expected)


def _share_events(counts: dict[str, int]) -> pl.DataFrame:
    rows = [
        ("u0", T0, "purchase", f"i{i}", None, category, None, "web")
        for category, n in counts.items()
        for i in range(n)
    ]
    return pl.DataFrame(rows, schema=EVENT_SCHEMA, orient="row")


@pytest.mark.parametrize(
    "counts",
    [
        {"Tea": 1, "Books": 3, "Baby": 4},  # 12.5%, 37.5%, 50%
        {"a": 1, "b": 1, "c": 1, "d": 1, "e": 4},  # 12.5% ties, broken by the name
        {"a": 5, "b": 3, "Grocery": 32},  # 12.5%, 7.5%, 80%
        {"x": 1, "y": 199},  # 0.5%
    ],
)
def test_category_shares_round_half_to_even(
    builders: list[DocumentRecipe], small_features: pl.DataFrame, counts: dict[str, int]
) -> None:
    builder = builders[1]
    features = small_features.head(1).with_columns(pl.lit("u0").alias("user_id"))
    events = _share_events(counts)
    expected = polars_docs(builder, events, features, None)
    assert_same(python_documents(builder, events, features, None), expected)
    assert re.search(r"\(\d+%\)", expected["document"][0])


# -- the string helpers against polars ---------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.sampled_from(TEXTS), st.text(st.sampled_from(CHARS), max_size=60)))
@example(text="2021-05-03 12:30 then 2021/5/3 and 03.05.2021\n")
@example(text="123456789\n")
def test_mask_equals_polars_mask(text: str) -> None:
    assert mask_python(text) == polars_mask(text)


@settings(max_examples=300, deadline=None)
@given(mean=st.one_of(ratings, st.floats(-1e14, 1e14), st.floats(-1e-3, 1e-3)))
@example(mean=4.35)
@example(mean=-0.04)
@example(mean=999999999999.95)
def test_rating_equals_polars_round_and_cast(mean: float) -> None:
    polars = pl.Series([mean]).round(1).cast(pl.String).item()
    assert textops.round_rating(mean) == polars


def test_character_classes_equal_polars_on_every_code_point() -> None:
    """Whitespace, digits and lower case of all of Unicode, as polars has them."""
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    s = pl.Series(chars, dtype=pl.String)
    whitespace = {c for c, w in zip(chars, s.str.contains(r"^\s$"), strict=True) if w}
    assert whitespace == set(textops.WHITESPACE)
    stripped = {c for c, e in zip(chars, s.str.strip_chars() == "", strict=True) if e}
    assert stripped == set(textops.WHITESPACE)
    known = [unicodedata.category(c) != "Cn" for c in chars]
    digit = re.compile(r"\d")
    polars_digits = s.str.contains(r"^\d$").to_list()
    lowered = s.str.to_lowercase().to_list()
    for c, ok, d, low in zip(chars, known, polars_digits, lowered, strict=True):
        if ok:
            assert bool(digit.fullmatch(c)) == d, hex(ord(c))
            assert c.lower() == low, hex(ord(c))
        elif low != c:  # polars knows better: the python path must refuse it
            with pytest.raises(PolarsOnly):
                textops.lower(c)
        elif d:
            with pytest.raises(PolarsOnly):
                mask_python(c)


# -- corners left to polars --------------------------------------------------------------------


def _corner_cases(
    events: pl.DataFrame, features: pl.DataFrame, users: pl.DataFrame
) -> dict[str, tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]]:
    uid = features["user_id"][0]
    mine = pl.col("user_id") == uid
    return {
        "capital sigma": (
            events.with_columns(
                pl.when(mine).then(pl.lit("ΟΔΟΣ")).otherwise(pl.col("category")).alias("category")
            ),
            features,
            users,
        ),
        "unknown character": (
            events.with_columns(
                pl.when(mine).then(pl.lit("call " + "\U00016130" * 6)).alias("text")
            ),
            features,
            users,
        ),
        "NaN feature": (
            events,
            features.with_columns(pl.lit(float("nan")).alias("monetary")),
            users,
        ),
        "null feature": (
            events,
            features.with_columns(pl.lit(None, pl.Float64).alias("basket_size")),
            users,
        ),
        "integer feature": (
            events,
            features.with_columns(pl.col("n_reviews").cast(pl.Int64)),
            users,
        ),
        "duplicate customer": (events, pl.concat([features, features]), users),
        "duplicate user row": (events, features, pl.concat([users, users])),
        "categorical channel": (
            events.with_columns(pl.col("channel").cast(pl.Categorical)),
            features,
            users,
        ),
        "missing column": (events.drop("channel"), features, users),
        "huge rating": (
            events,
            features.with_columns(
                pl.lit(1.0).alias("n_reviews"), pl.lit(1e300).alias("mean_rating")
            ),
            users,
        ),
    }


@pytest.mark.parametrize(
    "corner",
    [
        "capital sigma",
        "unknown character",
        "NaN feature",
        "null feature",
        "integer feature",
        "duplicate customer",
        "duplicate user row",
        "categorical channel",
        "missing column",
        "huge rating",
    ],
)
def test_corners_take_the_polars_plan(
    builders: list[DocumentRecipe],
    small_data: EventData,
    small_features: pl.DataFrame,
    corner: str,
) -> None:
    assert small_data.users is not None
    features = small_features.filter(pl.col("n_reviews") > 0).head(2)
    events, features, users = _corner_cases(small_data.events, features, small_data.users)[corner]
    builder = builders[0]
    with pytest.raises(PolarsOnly):
        python_documents(builder, events, features, users)
    try:
        expected = polars_docs(builder, events, features, users)
    except Exception as error:  # the same error as the polars plan
        with pytest.raises(type(error)):
            builder.documents(events, features, users)
        return
    assert builder.documents(events, features, users).equals(expected)


# -- real data ---------------------------------------------------------------------------------


def test_online_retail_customers_alone_get_their_batch_documents(
    require_shared: Callable[[str], Path],
) -> None:
    path = require_shared("online_retail/online_retail.csv.gz")
    data = load_events(path, preset="online-retail", drop_invalid=True)
    features = behaviour(data.events)
    builder = DocumentRecipe(max_tokens=UNCUT)
    builder.fit_features(data.events)
    builder.fit_documents(data.events, features, data.users)
    picked = random.Random(0).sample(features["user_id"].to_list(), 200)
    some = features.filter(pl.col("user_id").is_in(picked))
    expected = dict(polars_docs(builder, data.events, some, data.users).iter_rows())
    events = data.events.filter(pl.col("user_id").is_in(picked)).partition_by(
        "user_id", as_dict=True
    )
    for uid in picked:
        row = some.filter(pl.col("user_id") == uid)
        got = python_documents(builder, events[(uid,)], row, data.users)
        assert got["document"].to_list() == [expected[uid]], uid
