"""The synthetic shops, the baselines and the balance section of the benchmark."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from benchmarks.balance import (
    BalanceSizes,
    balanced,
    run_balance,
    score_axes,
    targets,
)
from benchmarks.balance_cases import Case, shop_case
from benchmarks.baselines import item_key, plain_texts, rfm_matrix
from benchmarks.ceiling import supervised_ceiling
from benchmarks.context import SIZES, BenchCache, BenchContext, machine
from benchmarks.markdown import render
from benchmarks.metrics import taste_lift
from benchmarks.recovery import BANKING_FILE
from benchmarks.retail import temporal_split
from benchmarks.shop_shapes import SHAPES
from benchmarks.shops import ShopData, generate_shop
from pipelines import benchmark
from pipelines._cli import run_cli
from segmenter.data import load_events
from segmenter.errors import SegmenterError

FAKE = "benchmarks.fake:HashingEncoder"


def shop(name: str, n: int, seed: int = 0) -> ShopData:
    return generate_shop(SHAPES[name].build(seed), n, seed=seed)


def orders_before_cutoff(data: ShopData) -> pl.Series:
    key = "order_id" if "order_id" in data.events.columns else "timestamp"
    before = data.events.filter(
        (pl.col("timestamp") < data.cutoff) & (pl.col("event_type") == "purchase")
    )
    return before.group_by("user_id").agg(pl.col(key).n_unique())[key]


# -- the generator ---------------------------------------------------------------------------
def test_generator_is_deterministic_for_a_seed() -> None:
    a, b = shop("retail", 150, seed=4), shop("retail", 150, seed=4)
    assert a.events.equals(b.events) and a.labels.equals(b.labels)
    assert not shop("retail", 150, seed=5).events.equals(a.events)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_customer_orders_before_the_cutoff_and_the_future_exists(name: str) -> None:
    data = shop(name, 300)
    assert orders_before_cutoff(data).len() == 300
    future = data.events.filter(
        (pl.col("timestamp") >= data.cutoff) & (pl.col("event_type") == "purchase")
    )
    assert 0.1 * 300 < future["user_id"].n_unique() < 300
    assert data.labels["segment"].n_unique() == 8
    load_events(data.events)  # the canonical contract accepts it


def test_shape_c_has_only_amounts_quantities_dates() -> None:
    no_ids, ids = shop("amounts_only", 100).events, shop("amounts_ids", 100).events
    assert set(no_ids.columns) == {"user_id", "timestamp", "event_type", "quantity", "amount"}
    assert set(ids.columns) == set(no_ids.columns) | {"item_id"}


def test_sparse_shop_has_mostly_one_to_three_orders_and_many_one_time_buyers() -> None:
    orders = orders_before_cutoff(shop("sparse", 1000))
    assert orders.min() >= 1 and (orders <= 3).mean() >= 0.9
    assert (orders == 1).mean() >= 0.5


def test_grocery_has_hundreds_of_lines_per_household_and_thousands_of_products() -> None:
    data = shop("grocery", 60)
    before = data.events.filter(pl.col("timestamp") < data.cutoff)
    assert before.height / 60 >= 100
    assert SHAPES["grocery"].build(0).catalog.height >= 2000
    # value and taste are crossed: every (value, taste) pair is planted
    assert data.labels.select("value", "taste").unique().height == 8


def test_noise_returns_zero_amounts_and_wholesalers() -> None:
    data = shop("retail", 1000)
    ev = data.events
    returns = ev.filter(pl.col("event_type") == "return")
    assert returns.height > 0 and (returns["quantity"] < 0).all() and (returns["amount"] <= 0).all()
    assert (ev.filter(pl.col("event_type") == "purchase")["amount"] == 0).sum() > 0
    whale = data.labels.filter(pl.col("wholesale"))["user_id"]
    assert 1 <= whale.len() <= 10
    qty = (
        ev.filter(pl.col("event_type") == "purchase")
        .group_by("user_id")
        .agg(pl.col("quantity").mean())
    )
    big = qty.filter(pl.col("user_id").is_in(whale.implode()))["quantity"].min()
    assert big > 10 * qty["quantity"].median()


def test_the_future_follows_the_planted_propensities() -> None:
    data = shop("amounts_only", 2000)
    split = temporal_split(load_events(data.events), data.cutoff)
    labels = pl.DataFrame({"user_id": split.customers}).join(data.labels, on="user_id")
    lapsing = labels["value"].str.contains("lapsing").to_numpy()
    high = labels["value"].str.starts_with("high").to_numpy()
    # a lapsing customer mostly buys nothing after the cut-off; an active one mostly does
    assert split.bought_again[lapsing].mean() < 0.35 < 0.6 < split.bought_again[~lapsing].mean()
    spend = split.future_spend
    assert np.median(spend[high & ~lapsing]) > 2 * np.median(spend[~high & ~lapsing])


def test_planted_taste_predicts_future_items() -> None:
    data = shop("grocery", 200)
    split = temporal_split(load_events(data.events), data.cutoff)
    taste = pl.DataFrame({"user_id": split.customers}).join(data.labels, on="user_id")["taste"]
    groups = np.unique(taste.to_numpy(), return_inverse=True)[1].ravel()
    assert taste_lift(split.past, split.future, groups)["lift"] > 1.3


def test_generator_rejects_no_customers() -> None:
    with pytest.raises(SegmenterError, match="n_customers: 0 should be >= 1"):
        shop("retail", 0)


# -- the baselines ---------------------------------------------------------------------------
EVENTS = pl.DataFrame(
    {
        "user_id": ["a", "a", "a", "b", "b", "c"],
        "timestamp": [datetime(2025, 1, d) for d in (1, 1, 11, 5, 6, 2)],
        "event_type": ["purchase", "purchase", "purchase", "purchase", "return", "purchase"],
        "order_id": ["o1", "o1", "o2", "o3", "r3", "o4"],
        "item_name": ["tea", "mug", "tea", "pen", "pen", None],
        "amount": [2.0, 5.0, 2.0, 3.0, -3.0, 1.0],
    }
)


def test_rfm_matrix_by_hand() -> None:
    X = rfm_matrix(EVENTS, ["a", "b", "c"], datetime(2025, 1, 21))
    raw = np.array(
        [
            [10.0, np.log1p(2), np.log1p(9.0), 10.0],
            [16.0, np.log1p(1), np.log1p(0.0), 0.0],
            [19.0, np.log1p(1), np.log1p(1.0), 0.0],
        ]
    )
    expected = (raw - raw.mean(axis=0)) / raw.std(axis=0)
    np.testing.assert_allclose(X, expected, atol=1e-9)


def test_plain_texts_most_bought_first_and_key_fallback() -> None:
    assert item_key(EVENTS) == "item_name"
    assert plain_texts(EVENTS, ["a", "b", "c", "z"], "item_name") == ["tea, mug", "pen", "", ""]
    assert item_key(EVENTS.drop("item_name")) is None


def test_balanced_score_needs_both_axes() -> None:
    rfm, plain = {"value": 0.4}, {"taste": 2.0}
    assert balanced({"value": 0.2, "taste": 1.8}, rfm, plain) == pytest.approx(0.5)
    assert balanced({"value": 0.4, "taste": 1.0}, rfm, plain) == pytest.approx(0.5)
    assert np.isnan(balanced({"value": 0.4, "taste": float("nan")}, rfm, plain))
    assert np.isnan(balanced({"value": 0.4}, rfm, {}))


def test_targets_by_kind() -> None:
    result = {
        "kind": "items",
        "systems": {"ours": {"B": 0.92, "seed_ari": 0.97, "ari": 0.5}},
        "fusion": {"best": {"B": 0.95}},
        "axes": {"value_tier": {"share": 0.99}},
    }
    out = {name: check["met"] for name, check in targets(result).items()}
    assert out == {
        "B >= 0.90": True,
        "B >= best simple fusion": False,
        "seed ARI >= 0.95": True,
        "planted ARI >= 0.95": False,
        "value_tier >= 95% of its specialist": True,
    }
    systems = {
        "ours": {"acc": 0.7, "nmi": 0.8, "seed_ari": 0.9},
        "plain": {"acc": 0.72, "nmi": 0.9},
    }
    text = {"kind": "text", "axes": {}, "systems": systems}
    checks = targets(text)
    assert (
        checks["ACC >= 95% of plain text"]["met"] and not checks["NMI >= 95% of plain text"]["met"]
    )
    assert "planted ARI >= 0.95" not in checks


def test_value_tier_and_taste_group_are_scored_against_their_specialists() -> None:
    case = shop_case("grocery", 60, k=8, seed=0)
    truth = case.truth
    assert truth is not None
    tiers, groups = truth // 4, truth % 4  # the planted value and taste of each household
    emb = np.eye(4)[groups] + 0.01 * np.random.default_rng(0).normal(size=(60, 4))
    axes = score_axes(
        case, {"value_tier": [tiers, tiers], "taste_group": [groups, groups]}, emb, (0, 1)
    )
    assert axes["value_tier"]["groups"] == 2 and axes["taste_group"]["groups"] == 4
    assert axes["taste_group"]["share"] == pytest.approx(1.0)  # k-means finds the same groups
    assert axes["value_tier"]["seed_ari"] == 1.0


# -- the section, end to end on tiny sizes ---------------------------------------------------
TINY = BalanceSizes(
    {"retail": 40, "grocery": 16, "amounts_only": 40, "sparse": 40},
    banking_sample=60,
    banking_8=60,
    retail_customers=None,
    weights=(0.1, 0.5),
    online_retail=False,
)


@pytest.mark.slow
def test_balance_section_smoke(tmp_path: Path) -> None:
    ctx = BenchContext("smoke", SIZES["smoke"], encoder_spec=FAKE, cache=BenchCache(tmp_path))
    section = run_balance(ctx, sizes=TINY)
    cases = section["cases"]
    # the text cases read Banking77 from ../shared/data; without it they are left out
    text = {"banking77", "banking77_8_intents"} if ctx.data_file(BANKING_FILE) else set()
    assert set(cases) == {"retail", "grocery", "amounts_only", "sparse", *text}
    for name in ("retail", "grocery", "sparse"):
        c = cases[name]
        # the ceiling needs two customers of every planted group (not so in the tiny grocery)
        assert set(c["systems"]) - {"ceiling"} == {"ours", "rfm", "plain", "truth"}
        assert not c["notes"]
        # the planted segments scored as a segmentation: B against the same baselines
        truth = c["systems"]["truth"]
        assert truth["B"] == pytest.approx(
            balanced(truth, c["systems"]["rfm"], c["systems"]["plain"])
        )
        assert c["targets"]["B >= 0.90"]["truth"] == truth["B"]
        if name != "grocery":
            assert -1 <= c["systems"]["ceiling"]["ari"] <= 1
            planted = c["targets"]["planted ARI >= 0.95"]
            assert planted["ceiling"] == c["systems"]["ceiling"]["ari"]
        assert 0 <= c["systems"]["ours"]["value"] <= 1 and c["systems"]["plain"]["taste"] > 0
        assert [r["weight"] for r in c["fusion"]["rows"]] == [0.1, 0.5]
        assert c["fusion"]["best"]["B"] == max(r["B"] for r in c["fusion"]["rows"])
        assert {"B >= 0.90", "seed ARI >= 0.95", "planted ARI >= 0.95"} <= set(c["targets"])
    # no items: taste cannot be scored, so the truth has no B to give
    assert set(cases["amounts_only"]["systems"]) == {"ours", "rfm", "ceiling", "truth"}
    assert "value >= 95% of RFM" in cases["amounts_only"]["targets"]
    if text:
        eight = cases["banking77_8_intents"]
        assert eight["k"] == 8 and 0 < eight["systems"]["plain"]["acc"] <= 1
    result = {
        "suite": "smoke",
        "only": ["balance"],
        "seed": 0,
        "started": "2026-01-01T00:00:00",
        "command": "test",
        "machine": machine(),
        "sections": {"balance": section},
    }
    text = render(json.loads(json.dumps(result, default=str)))
    assert "benchmark:smoke-balance" in text and "Online Retail" not in text
    assert "| grocery (behaviour + items) | best simple fusion" in text
    # the tier-count rule against a constant chosen on the other cases
    loo = section["leave_one_out"]["cases"]
    assert {"retail", "grocery", "sparse"} <= set(loo)
    for row in loo.values():
        assert row["best_B"] >= max(row["rule_B"], row["constant_B"]) - 1e-9
    assert "constant from the other cases" in text
    assert "| ceiling: a classifier told the truth |" in text and "the ceiling is" in text
    assert "| the planted segments themselves |" in text
    assert "the planted segments themselves score" in text


@pytest.mark.parametrize(("signal", "low", "high"), [(5.0, 0.9, 1.0), (0.0, -0.1, 0.1)])
def test_ceiling_is_what_the_inputs_hold(signal: float, low: float, high: float) -> None:
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(4), 50)
    emb = np.eye(4)[truth] * signal + rng.normal(size=(200, 4))
    case = Case("t", "text", 4, None, [str(i) for i in range(200)], None, truth, None, None, "")  # type: ignore[arg-type]
    found = supervised_ceiling(case, emb, seed=0)
    assert found is not None and low <= found["ari"] <= high
    assert supervised_ceiling(replace(case, truth=None), emb, seed=0) is None


def test_cli_rejects_an_unknown_section(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--suite", "smoke", "--section", "nope", "--quiet"]
    assert run_cli(benchmark.build_parser(), benchmark.main, argv) == 2
    err = capsys.readouterr().err
    assert (
        "--section: 'nope' is not one of ['balance'," in err and len(err.strip().splitlines()) == 1
    )
