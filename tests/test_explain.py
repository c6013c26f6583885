"""Explanations: exact value contributions, occlusion evidence, counterfactuals, surrogates, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.explain import cli
from segmenter.config import SegmenterConfig
from segmenter.data import EventData
from segmenter.embed import EmbeddingCache
from segmenter.explain import Explainer, explain_all
from segmenter.explain import evidence as ev
from segmenter.explain.counterfactual import counterfactual
from segmenter.explain.decision import decide, value_contributions
from segmenter.explain.run import load_explainer, segment_definitions
from segmenter.explain.surrogate import fit_surrogates
from segmenter.model import Segmenter
from segmenter.runfolder import write_run


@pytest.fixture(scope="module")
def run(small_data: EventData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of the real packaged encoder with two value tiers (so behaviour decides too)."""
    cache = EmbeddingCache(tmp_path_factory.mktemp("explain-cache"))
    config = SegmenterConfig(k=4, value_tiers=2, seed=0)
    model = Segmenter(config, cache=cache, progress=False).fit(small_data)
    out = tmp_path_factory.mktemp("explain-run") / "run"
    write_run(model, small_data, out, report=False)
    return out


@pytest.fixture(scope="module")
def explainer(run: Path) -> Explainer:
    return load_explainer(run, progress=False)


@pytest.fixture(scope="module")
def table(explainer: Explainer) -> pl.DataFrame:
    # a seeded fifth of the customers: each one re-embeds every part of its document
    ids = explainer.customers_["user_id"].sample(fraction=0.2, seed=0).to_list()
    return explain_all(explainer, batch_size=128, user_ids=ids)


def test_value_contributions_sum_to_the_margin(explainer: Explainer) -> None:
    model, customers = explainer.model, explainer.customers_
    score = model.value_axis_.transform(customers)
    edge = np.full(len(score), float(model.clusterer_.edges_[0]))
    contrib = value_contributions(model, customers, edge)
    np.testing.assert_allclose(contrib.sum(axis=1), score - edge, atol=1e-9)
    # against a segment of the other tier, the explanation's contributions add up to its margin
    tier_of = model.clusterer_.tier_of_
    user = customers["user_id"][0]
    own = explainer.explain(user).segment
    other = int(np.flatnonzero(tier_of != tier_of[own])[0])
    x = explainer.explain(user, against=other)
    assert x.margin_kind == "value" and x.margin > 0
    assert sum(x.contributions.values()) == pytest.approx(x.margin, abs=1e-3)


def test_explanations_agree_with_the_model(run: Path, table: pl.DataFrame) -> None:
    assigned = pl.read_parquet(run / "assignments.parquet").select("user_id", "segment")
    joined = assigned.join(table, on="user_id", suffix="_explained")
    assert len(joined) == len(table) >= 50
    assert (joined["segment"] == joined["segment_explained"]).all()
    assert (table["margin"] >= 0).all()
    assert np.mean(table["evidence"].list.len().to_numpy() > 0) > 0.9


def test_counterfactuals_land_where_they_say(table: pl.DataFrame) -> None:
    made = table.filter(pl.col("counterfactual").is_not_null())
    assert len(made) > 0.5 * len(table)
    assert np.mean(made["counterfactual_valid"].to_numpy()) >= 0.95


def test_counterfactual_never_changes_tenure(explainer: Explainer) -> None:
    model, customers = explainer.model, explainer.customers_
    taste = model.text_reducer_.transform(model.embed(customers["document"].head(40).to_list()))
    for i in range(40):
        c = counterfactual(model, customers[i], taste[i : i + 1])
        if c is not None:
            assert "tenure_days" not in c["change"]
            assert c["change"].get("frequency", np.inf) >= c["before"].get("frequency", 0)


def test_occlusion_picks_the_planted_item() -> None:
    doc = "Categories: home (60%), garden (40%). Items: lamp, golden widget, rug, vase."

    def embed(texts: list[str]) -> np.ndarray:
        return np.array([[float("golden widget" in t), float(len(t))] for t in texts])

    def margin(emb: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return emb[:, 0]

    split, effects = ev.occlusion([doc], margin, embed)
    best = split[0][int(np.argmax(effects[0]))]
    assert best.text == "golden widget" and best.block == "items"
    assert ev.masked(doc, [best]) == doc.replace("golden widget", ev.MASK)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text("abcdef xyz", min_size=1, max_size=8).map(str.strip).filter(bool),
                min_size=1, max_size=6, unique=True))  # fmt: skip
def test_leaving_a_part_out_renders_the_others(items: list[str]) -> None:
    doc = "Items: " + ", ".join(items) + ". Searches: cheap tea; green mug."
    split = [p for p in ev.parts(doc) if p.block == "items"]
    assert [p.text for p in split] == items
    for j, p in enumerate(split):
        rest = [x for k, x in enumerate(items) if k != j]
        expected = (
            "Items: " + ", ".join(rest) + ". " if rest else ""
        ) + "Searches: cheap tea; green mug."
        assert ev.without(doc, [p]) == expected


def test_surrogate_tree_recovers_a_planted_rule() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(2000, 5))
    y = np.where(X[:, 1] > 0.6, 2, np.where(X[:, 3] <= 0.3, 1, 0))
    s = fit_surrogates(X, y, ["a", "spend", "c", "recency", "e"], seed=0, boosted=False)
    assert s.tree_fidelity >= 0.97
    used = {c.split(" ")[0] for r in s.rules for c in r["conditions"]}
    assert used <= {"spend", "recency"}
    assert any("spend > 0.6" in c for r in s.segment_rules[2]["rules"] for c in r["conditions"])


def test_segment_definitions_on_the_run(explainer: Explainer) -> None:
    s = segment_definitions(explainer, seed=0)
    assert s.ruleset_fidelity >= 0.75 and s.tree_fidelity >= 0.6
    assert s.boosted_fidelity is not None and s.boosted_fidelity >= 0.85
    assert s.importance and all(v >= 0 for v in s.importance.values())
    assert set(s.segment_rules) == set(range(4))


def test_cli_explains_one_customer(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    user = pl.read_parquet(run / "assignments.parquet")["user_id"][3]
    assert cli([str(run), "--customer", user, "--quiet", "--no-cache"]) == 0
    assert f"{user} is in" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--customer", "no-such-id"], "--customer: 'no-such-id' is not a customer"),
        (["--all", "--against", "1"], "--against: applies to --customer only"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(
    run: Path, argv: list[str], match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli([str(run), *argv, "--quiet", "--no-cache"]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and "\n" not in err and "Traceback" not in err


def test_cli_against_a_missing_segment(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    user = pl.read_parquet(run / "assignments.parquet")["user_id"][0]
    assert cli([str(run), "--customer", user, "--against", "9", "--quiet", "--no-cache"]) == 2
    assert "--against: segment 9 does not exist; allowed 0..3" in capsys.readouterr().err


def test_cli_not_a_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli([str(tmp_path), "--customer", "x", "--quiet"]) == 2
    assert "has no model" in capsys.readouterr().err


def test_decide_matches_the_clusterer(explainer: Explainer) -> None:
    model, customers = explainer.model, explainer.customers_
    taste = model.text_reducer_.transform(model.embed(customers["document"].to_list()))
    score = model.value_axis_.transform(customers)
    labels, _, _ = model.clusterer_.predict(taste, score)
    np.testing.assert_array_equal(decide(model, taste, score).segment, labels)


def test_an_aligned_run_is_explained_with_its_stable_ids(run: Path) -> None:
    from segmenter.errors import SegmenterError
    from segmenter.lineage.carry import SegmentIds

    plain = load_explainer(run, progress=False)
    aligned = load_explainer(run, progress=False)
    ids = np.array([7, 5, 9, 6])  # as a run aligned to a previous one shows its segments
    aligned.model.segment_ids_ = SegmentIds(ids).fit()
    user = plain.customers_["user_id"][0]
    x, y = plain.explain(user), aligned.explain(user)
    assert x.against >= 0 and (y.segment, y.against) == (ids[x.segment], ids[x.against])
    other = next(s for s in range(4) if s != x.segment)
    assert aligned.explain(user, against=int(ids[other])).against == ids[other]
    with pytest.raises(SegmenterError, match=r"--against: segment 0 does not exist"):
        aligned.explain(user, against=0)
