"""Value tiers split by taste, and the rule that chooses how many tiers from the data."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata
from sklearn.metrics import adjusted_rand_score

from segmenter.balance import (
    ValueAxis,
    ValueCheck,
    activity,
    choose_tiers,
    heldout_hit_rate,
    purchase_pairs,
    sample_check,
    value_check,
)
from segmenter.cluster.tiered import TieredClusterer, assign_tiers, tier_edges
from segmenter.data import load_events
from segmenter.documents import DocumentRecipe
from segmenter.errors import SegmenterError
from segmenter.segment import past_documents, past_embedding, value_history

K = 8


def _blobs(rng: np.random.Generator, n: int, groups: int, spread: float) -> tuple:
    truth = rng.integers(0, groups, size=n)
    centres = rng.normal(scale=4.0, size=(groups, 16))
    return centres[truth] + rng.normal(scale=spread, size=(n, 16)), truth


def _pairs(rng: np.random.Generator, taste: np.ndarray, n_items: int = 400) -> np.ndarray:
    """Each customer buys 6 distinct items, mostly from its taste's block of the catalogue."""
    block = n_items // (taste.max() + 1)
    rows = []
    for user, t in enumerate(taste):
        own = rng.choice(block, size=5, replace=False) + t * block
        other = rng.integers(0, n_items, size=1)
        rows += [(user, int(i)) for i in {*own.tolist(), *other.tolist()}]
    return np.array(rows, dtype=np.int64)


def _check(rng: np.random.Generator, rows: np.ndarray, score: np.ndarray, future: np.ndarray):
    rfm = np.column_stack([score, rng.normal(size=(len(score), 3)) * 0.3])
    at, loading = datetime(2024, 1, 1), np.array([1.0, 0.0, 0.0, 0.0])
    return ValueCheck(
        rows=rows, score=score, rfm=rfm, future=rankdata(future), cutoff=at, loading=loading
    )


# -- the clusterer ------------------------------------------------------------------------------


def test_tier_edges_cut_equal_tiers_and_keep_ties_together() -> None:
    score = np.arange(100, dtype=float)
    tiers = assign_tiers(score, tier_edges(score, 4))
    assert np.bincount(tiers).tolist() == [25, 25, 25, 25]
    tied = np.r_[np.zeros(80), np.arange(20.0)]
    assert len(np.unique(assign_tiers(tied, tier_edges(tied, 4)))) == 2  # 80 ties are one tier
    assert tier_edges(score, 1).size == 0
    with pytest.raises(SegmenterError, match="n_tiers=0 should be >= 1"):
        tier_edges(score, 0)


@settings(max_examples=8, deadline=None)
@given(n_tiers=st.integers(1, K), seed=st.integers(0, 3))
def test_every_segment_lies_in_one_tier_and_predict_gives_back_the_fit(
    n_tiers: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    X, _ = _blobs(rng, 300, 4, 1.0)
    score = rng.normal(size=300)
    model = TieredClusterer(K, n_tiers=n_tiers, random_state=seed).fit(X, score)
    labels = model.labels_
    assert sorted(np.unique(labels).tolist()) == list(range(K))
    tiers = assign_tiers(score, model.edges_)
    for s in range(K):
        assert len(np.unique(tiers[labels == s])) == 1
        assert model.tier_of_[s] == tiers[labels == s][0]
    again, confidence, distance = model.predict(X, score)
    assert (again == labels).all()
    assert ((confidence >= 0) & (confidence <= 1)).all() and (distance >= 0).all()
    restored = TieredClusterer.from_state(*model.get_state())
    assert (restored.predict(X, score)[0] == labels).all()


def test_one_tier_finds_taste_and_k_tiers_are_value_alone() -> None:
    rng = np.random.default_rng(0)
    X, truth = _blobs(rng, 800, K, 0.5)
    score = rng.normal(size=800)
    taste = TieredClusterer(K, n_tiers=1).fit(X, score).labels_
    assert adjusted_rand_score(truth, taste) >= 0.95
    value = TieredClusterer(K, n_tiers=K).fit(X, score).labels_
    assert adjusted_rand_score(assign_tiers(score, tier_edges(score, K)), value) == 1.0


def test_taste_segments_go_to_the_tier_whose_tastes_differ() -> None:
    rng = np.random.default_rng(1)
    X, _ = _blobs(rng, 600, 6, 0.3)
    score = np.r_[np.zeros(300), np.ones(300)]
    X[:300] = rng.normal(scale=0.01, size=(300, 16))  # the low tier all buy the same
    model = TieredClusterer(K, n_tiers=2).fit(X, score)
    assert np.bincount(model.tier_of_).tolist() == [1, 7]


# -- the rule ------------------------------------------------------------------------------------


def test_rule_spends_segments_on_value_when_only_the_numbers_tell_customers_apart() -> None:
    rng = np.random.default_rng(2)
    n = 1200
    X = rng.normal(size=(n, 16))  # text is noise
    score = rng.normal(size=n)
    future = np.exp(score + 0.3 * rng.normal(size=n))  # value drives later spend
    pairs = _pairs(rng, rng.integers(0, 8, size=n))  # purchases unrelated to the text
    check = _check(rng, np.arange(n), score + 0.2 * rng.normal(size=n), future)
    n_tiers, curve = choose_tiers(X, score, np.ones(n), K, pairs=pairs, check=check)
    assert n_tiers >= K - 1
    assert all(r["taste"] is None or np.isnan(r["taste"]) for r in curve)
    assert curve[-1]["value"] >= 0.9


def test_rule_spends_segments_on_taste_when_only_the_text_tells_customers_apart() -> None:
    rng = np.random.default_rng(3)
    n = 1200
    X, truth = _blobs(rng, n, K, 0.5)
    score = rng.normal(size=n)
    future = rng.exponential(size=n)  # later spend unrelated to the history
    check = _check(rng, np.arange(n), score, future)
    n_tiers, curve = choose_tiers(X, score, np.ones(n), K, pairs=_pairs(rng, truth), check=check)
    assert n_tiers == 1  # later spend is unrelated to the history: no tier is worth a segment
    assert all(np.isnan(r["value"]) for r in curve)
    labels = TieredClusterer(K, n_tiers=n_tiers).fit(X, score).labels_
    assert adjusted_rand_score(truth, labels) >= 0.95


def test_rule_balances_when_both_axes_matter() -> None:
    rng = np.random.default_rng(4)
    n = 1600
    X, truth = _blobs(rng, n, 4, 0.5)
    score = rng.normal(size=n)
    future = np.exp(1.5 * score + 0.3 * rng.normal(size=n))
    check = _check(rng, np.arange(n), score, future)
    n_tiers, curve = choose_tiers(X, score, np.ones(n), K, pairs=_pairs(rng, truth), check=check)
    assert 1 < n_tiers < K
    chosen = curve[n_tiers - 1]
    assert chosen["balance"] == max(r["balance"] for r in curve)
    assert chosen["value"] >= 0.75 and chosen["taste"] >= 0.75


def test_rule_degrades_to_one_axis_when_the_other_is_missing() -> None:
    rng = np.random.default_rng(5)
    n = 500
    X, _ = _blobs(rng, n, K, 0.5)
    score = rng.normal(size=n)
    # text only: nothing bought, so no value check and no purchases
    no_pairs = np.empty((0, 2), dtype=np.int64)
    assert choose_tiers(X, score, np.ones(n), K, pairs=no_pairs, check=None)[0] == 1
    # numbers only: every document the same
    check = _check(rng, np.arange(n), score, np.exp(score))
    same = np.zeros((n, 16))
    assert choose_tiers(same, score, np.ones(n), K, pairs=no_pairs, check=check)[0] == K


def test_rule_scores_value_on_the_taste_customers_had_before_the_cut_off() -> None:
    # documents of the whole history leak later spend (one direction tells the big spenders
    # after the cut-off); the documents as of the cut-off do not
    rng = np.random.default_rng(7)
    n = 1200
    X, truth = _blobs(rng, n, 4, 0.5)
    score = rng.normal(size=n)
    future = np.exp(0.5 * score + rng.normal(size=n))
    check = _check(rng, np.arange(n), score, future)
    leak = (rankdata(future) / n - 0.5) * 40.0
    leaky = np.column_stack([X, leak])
    past = np.column_stack([X, np.zeros(n)])
    pairs = _pairs(rng, truth)
    kw = {"pairs": pairs, "check": check}
    _, fooled = choose_tiers(leaky, score, np.ones(n), K, **kw)
    n_tiers, honest = choose_tiers(leaky, score, np.ones(n), K, past_taste=past, **kw)
    assert fooled[0]["value"] >= 0.8  # taste segments of the leaky space "foretell" spend
    assert honest[0]["value"] <= 0.3  # as of the cut-off they do not
    assert n_tiers > 1


def test_past_documents_change_only_for_customers_who_bought_after_the_cut_off() -> None:
    events = _events(40)
    recipe = DocumentRecipe(max_tokens=64)
    features = recipe.fit_features(events)
    recipe.fit_documents(events, features)
    documents = recipe.documents(events, features)
    check = value_history(events, features)
    assert check is not None
    past = past_documents(recipe, events, documents, None, check, seed=0)
    assert len(past.check.rows) == len(check.rows)  # fewer than the sample: all of them
    after = set(events.filter(pl.col("timestamp") >= check.cutoff)["user_id"].to_list())
    users = documents["user_id"].gather(past.check.rows).to_list()
    bought_new = np.array([u in after for u in users])
    assert past.changed.any() and not past.changed[~bought_new].any()
    assert len(past.documents) == past.changed.sum()
    emb = np.random.default_rng(0).normal(size=(documents.height, 3))
    calls: list[int] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return np.full((len(texts), 3), 9.0)

    then = past_embedding(past, emb, embed)
    assert calls == [int(past.changed.sum())]  # only changed documents are encoded
    np.testing.assert_array_equal(then[~past.changed], emb[past.check.rows][~past.changed])
    assert (then[past.changed] == 9.0).all()
    small = sample_check(check, 10, seed=1)
    assert len(small.rows) == 10 and set(small.rows) <= set(check.rows)
    np.testing.assert_array_equal(small.loading, check.loading)


def test_heldout_hit_rate_scores_purchases_that_did_not_make_the_lists() -> None:
    # every customer bought items nobody else bought: no held-out purchase can be listed
    pairs = np.array([[u, u * 10 + i] for u in range(50) for i in range(4)])
    assert heldout_hit_rate(pairs, np.zeros(50, dtype=np.int64)) == 0.0
    # everybody buys from the same 5 items: every held-out purchase is listed
    pairs = np.array([[u, i] for u in range(50) for i in range(5)])
    assert heldout_hit_rate(pairs, np.zeros(50, dtype=np.int64)) == 1.0
    # two tastes, lists of one item: the segments' lists hit, the single global list half
    pairs = np.array([[u, u % 2] for u in range(200)] + [[u, 2 + u % 2] for u in range(200)])
    taste = np.arange(200) % 2
    assert heldout_hit_rate(pairs, taste, 2) == 1.0
    assert heldout_hit_rate(pairs, np.zeros(200, dtype=np.int64), 2) < 0.6


# -- from events -----------------------------------------------------------------------------------


def _events(n_users: int = 60) -> pl.DataFrame:
    return load_events(_rows(n_users)).events


def _rows(n_users: int) -> pl.DataFrame:
    rng = np.random.default_rng(6)
    rows = []
    t0 = datetime(2024, 1, 1)
    for u in range(n_users):
        rich = u % 2 == 0
        for d in range(0, 360, 20 if rich else 90):
            rows.append(
                (f"u{u:03d}", t0 + timedelta(days=d + int(rng.integers(0, 5))), "purchase",
                 f"item{int(rng.integers(0, 10)) + (10 if rich else 0)}",
                 float(rng.uniform(50, 80) if rich else rng.uniform(5, 10)))
            )  # fmt: skip
    return pl.DataFrame(
        rows, schema=["user_id", "timestamp", "event_type", "item_id", "amount"], orient="row"
    )


def test_value_axis_orders_spenders_and_the_check_reads_later_spend() -> None:
    events = _events()
    features = DocumentRecipe().fit_features(events)
    axis = ValueAxis(2).fit(features)
    score = axis.transform(features)
    rich = np.array([int(u[1:]) % 2 == 0 for u in features["user_id"]])
    assert score[rich].min() > score[~rich].max()
    assert abs(score.std() - 1) < 1e-6
    assert (axis.tiers(score) == rich).all()
    restored = ValueAxis.from_state(*axis.get_state())
    np.testing.assert_allclose(restored.transform(features), score)
    customers = features["user_id"].to_list()
    check = value_check(events, customers, lambda e, at: DocumentRecipe().fit_features(e, as_of=at))
    assert check is not None and len(check.rows) == len(customers)
    learned = ValueAxis(2).fit(features, check)  # weights that predicted later spend
    assert (learned.tiers(learned.transform(features)) == rich).all()
    assert check.loading[1] + check.loading[2] > 0  # more orders and spend before, more after
    assert check.future[rich].min() > check.future[~rich].max()  # the rich spend more later
    pairs = purchase_pairs(events, customers)
    assert set(pairs[:, 0].tolist()) == set(range(len(customers)))
    assert activity(features).min() >= 1


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_purchase_pairs_depend_on_the_events_alone(seed: int) -> None:
    """The held-out half and the tie-breaks of the taste check read the pairs by position and
    code: shuffled events, and strings the process met before, must give the same array."""
    events = _events(30)
    customers = sorted(set(events["user_id"]))
    expected = purchase_pairs(events, customers)
    # other strings first in this process's categorical cache, then the events in any order
    pl.Series([f"item{i}" for i in range(40, 0, -3)], dtype=pl.Categorical).to_physical()
    shuffled = events.sample(fraction=1.0, shuffle=True, seed=seed)
    np.testing.assert_array_equal(purchase_pairs(shuffled, customers), expected)
    assert (np.diff(expected[:, 0]) >= 0).all()  # by customer row, then item code
    items = sorted(set(events["item_id"]))
    assert expected[:, 1].max() == len(items) - 1


def test_value_check_says_nothing_without_history() -> None:
    events = _events().with_columns(pl.lit(datetime(2024, 1, 1)).alias("timestamp"))
    customers = sorted(set(events["user_id"]))
    assert value_check(events, customers, lambda e, at: DocumentRecipe().fit_features(e)) is None
