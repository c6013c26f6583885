"""End to end discovery with the real packaged encoder on planted synthetic data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import adjusted_rand_score

from segmenter.config import SegmenterConfig
from segmenter.data import EventData, load_events
from segmenter.embed import EmbeddingCache
from segmenter.errors import SegmenterError
from segmenter.model import Segmenter
from segmenter.synthetic import generate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def planted() -> dict[str, pl.DataFrame]:
    return generate(600, seed=11)


@pytest.fixture(scope="session")
def planted_data(planted: dict[str, pl.DataFrame]) -> EventData:
    return load_events(planted["events"], users=planted["users"])


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedding-cache")


@pytest.fixture(scope="session")
def fitted(planted_data: EventData, cache_dir: Path) -> Segmenter:
    model = Segmenter(SegmenterConfig(k=8, seed=0), cache=EmbeddingCache(cache_dir), progress=False)
    return model.fit(planted_data)


def _ari(model: Segmenter, labels: pl.DataFrame) -> float:
    truth = labels.join(model.assignments_.select("user_id"), on="user_id", how="right")
    return float(adjusted_rand_score(truth["segment"], model.assignments_["segment"]))


def test_recovers_planted_segments_at_true_k(fitted: Segmenter, planted: dict) -> None:
    assert fitted.k_ == 8
    assert _ari(fitted, planted["labels"]) >= 0.85
    out = fitted.assignments_
    assert out.columns == [
        "user_id", "segment", "segment_name", "confidence", "distance", "map_x", "map_y",
        "value_tier", "taste_group",
    ]  # fmt: skip
    assert set(out["value_tier"].unique()) == {0, 1, 2, 3}
    assert set(out["taste_group"].unique()) == set(range(8))
    # both axes in full: the taste groups alone recover the planted (taste-led) archetypes
    truth = planted["labels"].join(out.select("user_id"), on="user_id", how="right")
    assert adjusted_rand_score(truth["segment"], out["taste_group"]) >= 0.85
    assert fitted.balance_ is not None and fitted.balance_["chosen_by"] == "data"
    assert len(fitted.balance_["curve"]) == 8
    assert out["user_id"].n_unique() == out.height == 600
    assert set(out["segment"].unique()) == set(range(8))
    assert out["confidence"].is_between(0, 1).all()
    assert out["segment_name"].null_count() == 0
    assert fitted.quality_["silhouette"] > 0.3


def test_value_tiers_alone_are_worse_than_the_chosen_balance(
    planted_data: EventData, planted: dict, cache_dir: Path, fitted: Segmenter
) -> None:
    # the planted archetypes are told apart by what they buy: the data-driven rule must not
    # spend the segments on value tiers, and a user who forces them gets what they asked for
    value_only = Segmenter(
        SegmenterConfig(k=8, value_tiers=8), cache=EmbeddingCache(cache_dir), progress=False
    ).fit(planted_data)
    assert value_only.balance_ is not None and value_only.balance_["chosen_by"] == "user"
    assert value_only.balance_["curve"] == []
    assert _ari(value_only, planted["labels"]) < _ari(fitted, planted["labels"]) - 0.3
    assert (value_only.assignments_["segment"] == value_only.assignments_["value_tier"]).mean() < 1
    by_tier = value_only.assignments_.group_by("segment").agg(pl.col("value_tier").n_unique())
    assert by_tier["value_tier"].max() <= 2  # 8 value tiers nest inside the 4 of the column


def test_rerun_hits_cache_and_is_reproducible(
    fitted: Segmenter, planted_data: EventData, cache_dir: Path
) -> None:
    again = Segmenter(SegmenterConfig(k=8, seed=0), cache=EmbeddingCache(cache_dir), progress=False)
    again.fit(planted_data)
    assert again.embedding_stats_ == {"encoded": 0, "cached": 600}
    assert again.assignments_.equals(fitted.assignments_)


def test_changed_customer_encodes_only_that_one(
    fitted: Segmenter, planted: dict, cache_dir: Path
) -> None:
    events = planted["events"]
    first = events["user_id"][0]
    changed = events.with_columns(
        pl.when(pl.col("user_id") == first)
        .then(pl.lit("the parcel arrived broken, very disappointed"))
        .otherwise(pl.col("text"))
        .alias("text")
    )
    model = Segmenter(SegmenterConfig(k=8), cache=EmbeddingCache(cache_dir), progress=False)
    model.fit(load_events(changed, users=planted["users"]))
    assert model.embedding_stats_["encoded"] == 1


def test_save_load_reassigns_training_customers(
    fitted: Segmenter, planted_data: EventData, cache_dir: Path, tmp_path: Path
) -> None:
    fitted.save(tmp_path / "model")
    loaded = Segmenter.load(tmp_path / "model", cache=EmbeddingCache(cache_dir), progress=False)
    again = loaded.predict(planted_data)
    assert again["user_id"].equals(fitted.assignments_["user_id"])
    agreement = (again["segment"] == fitted.assignments_["segment"]).mean()
    assert agreement >= 0.99
    assert (again["segment_name"] == fitted.assignments_["segment_name"]).mean() >= 0.99


def test_one_customer_at_a_time_lands_where_the_batch_put_it(
    fitted: Segmenter, planted: dict
) -> None:
    """The latency path (one customer per call) agrees with placing the whole base at once."""
    users = fitted.assignments_["user_id"].head(16).to_list()
    alone = pl.concat(
        [
            fitted.predict(
                load_events(
                    planted["events"].filter(pl.col("user_id") == u),
                    users=planted["users"].filter(pl.col("user_id") == u),
                )
            )
            for u in users
        ]
    )
    batch = fitted.assignments_.head(16)
    assert alone["user_id"].to_list() == users
    assert (alone["segment"] == batch["segment"]).mean() >= 15 / 16
    assert alone["map_x"].is_finite().all()
    one = pl.col("user_id") == users[0]
    fast = fitted.predict(
        load_events(planted["events"].filter(one), users=planted["users"].filter(one)),
        map_coords=False,
    )
    assert fast["segment"].item() == alone["segment"][0]
    assert fast["map_x"].is_nan().all() and fast["map_y"].is_nan().all()


def _renamed(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns((pl.lit("N") + pl.col("user_id")).alias("user_id"))


def test_new_customers_land_in_their_archetype(fitted: Segmenter, planted: dict) -> None:
    fresh = generate(120, seed=99)  # same archetypes, customers never seen
    out = fitted.predict(load_events(_renamed(fresh["events"]), users=_renamed(fresh["users"])))
    assert out.height == 120 and out["segment"].is_between(0, 7).all()
    train = planted["labels"].join(
        fitted.assignments_.select("user_id", pl.col("segment").alias("pred")), on="user_id"
    )
    expected = train.group_by("segment").agg(pl.col("pred").mode().first().alias("expected"))
    got = out.select("user_id", pl.col("segment").alias("got"))
    joined = _renamed(fresh["labels"]).join(expected, on="segment").join(got, on="user_id")
    assert joined.height == 120
    assert (joined["expected"] == joined["got"]).mean() >= 0.8


def test_hdbscan_marks_or_assigns_outliers(planted_data: EventData, cache_dir: Path) -> None:
    cfg = SegmenterConfig(method="hdbscan", min_cluster_size=15)
    model = Segmenter(cfg, cache=EmbeddingCache(cache_dir), progress=False).fit(planted_data)
    seg = model.assignments_["segment"]
    assert model.k_ >= 4 and seg.min() >= -1
    assert model.quality_["n_outliers"] == int((seg == -1).sum())
    attached = Segmenter(
        cfg.replace(assign_outliers=True), cache=EmbeddingCache(cache_dir), progress=False
    ).fit(planted_data)
    assert attached.assignments_["segment"].min() >= 0
    inliers = seg != -1
    assert (attached.assignments_["segment"].filter(inliers) == seg.filter(inliers)).all()


def test_k_auto_finds_planted_k_and_records_curve(planted_data: EventData, cache_dir: Path) -> None:
    cfg = SegmenterConfig(k="auto", k_range=(4, 11))
    model = Segmenter(cfg, cache=EmbeddingCache(cache_dir), progress=False).fit(planted_data)
    assert [c["k"] for c in model.k_curve_] == list(range(4, 12))
    assert 7 <= model.k_ <= 9
    chosen = next(c for c in model.k_curve_ if c["k"] == model.k_)
    assert chosen["stability"] >= 0.8


def test_different_seed_gives_stable_segments(
    fitted: Segmenter, planted_data: EventData, cache_dir: Path
) -> None:
    other = Segmenter(SegmenterConfig(k=8, seed=5), cache=EmbeddingCache(cache_dir), progress=False)
    other.fit(planted_data)
    ari = adjusted_rand_score(other.assignments_["segment"], fitted.assignments_["segment"])
    assert ari >= 0.8


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"k": 1}, "--k: '1' should be an integer >= 2"),
        ({"method": "dbscan"}, "--method: 'dbscan' is not one of"),
        ({"feature_weight": -1.0}, "--feature-weight: -1.0 should be >= 0"),
        ({"k_range": (5, 3)}, "--k-range: 5:3"),
        ({"umap_neighbors": 1}, "--umap-neighbors: 1"),
        ({"max_tokens": 4}, "--max-tokens: 4"),
        ({"value_tiers": 0}, "--value-tiers: 0 should be an integer >= 1"),
        ({"value_tiers": 9}, r"--value-tiers: 9 should be <= --k=8 or 'auto'"),
    ],
)
def test_bad_config_is_refused_before_work(changes: dict, match: str) -> None:
    with pytest.raises(SegmenterError, match=match):
        SegmenterConfig(**changes).validate()


def test_more_segments_than_customers_is_refused(planted: dict) -> None:
    few = planted["events"].filter(
        pl.col("user_id").is_in(planted["labels"]["user_id"][:5].to_list())
    )
    with pytest.raises(SegmenterError, match=r"n_customers=5 should be >= --k=8"):
        Segmenter(SegmenterConfig(k=8), progress=False).fit(load_events(few))


def test_predict_before_fit_is_an_error(planted_data: EventData) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        Segmenter().predict(planted_data)


def test_load_rejects_a_folder_without_model(tmp_path: Path) -> None:
    with pytest.raises(SegmenterError, match="is not a segmenter model"):
        Segmenter.load(tmp_path)


def test_fused_space_is_finite(fitted: Segmenter) -> None:
    assert np.isfinite(fitted.reduced_).all()
    assert fitted.reduced_.shape == (600, 50)  # the taste space: PCA of the text
