"""Profiles from mergeable parts (the Ray engine's profiles): the same table as the one-process
profile, exact where counts and sums are, within a grid cell for medians and percentiles, and
the same whatever blocks the customers were cut into."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from segmenter.data import EventData
from segmenter.documents import DocumentRecipe
from segmenter.profile import profile_segments
from segmenter.profile_parts import fit_grid, merge_parts, profile_from_parts, profile_part

K = 5
NAMES = {s: f"segment {s}" for s in range(K)}


@pytest.fixture(scope="module")
def frames(small_data: EventData) -> dict[str, pl.DataFrame]:
    """Features, documents and events of the small synthetic shop, with segments from its
    planted labels (outliers, -1, included) and seeded distances."""
    recipe = DocumentRecipe(max_tokens=128)
    features = recipe.fit_features(small_data.events)
    recipe.fit_documents(small_data.events, features, small_data.users)
    documents = recipe.documents(small_data.events, features, small_data.users)
    rng = np.random.default_rng(0)
    ids = features["user_id"]
    segment = (ids.hash(seed=1).to_numpy() % (K + 1)).astype(np.int64) - 1
    assignments = pl.DataFrame({"user_id": ids, "segment": segment,
                                "distance": rng.random(len(ids)).astype(np.float32)})  # fmt: skip
    return {"features": features, "documents": documents, "events": small_data.events,
            "assignments": assignments}  # fmt: skip


def _parts(frames: dict[str, pl.DataFrame], block: np.ndarray) -> list[dict[str, pl.DataFrame]]:
    grid = fit_grid(frames["features"])
    ids = frames["features"]["user_id"]
    out = []
    for b in np.unique(block):
        keep = ids.filter(pl.Series(block == b)).implode()
        pick = {k: v.filter(pl.col("user_id").is_in(keep)) for k, v in frames.items()}
        out.append(profile_part(pick["features"], pick["documents"], pick["events"],
                                pick["assignments"], grid))  # fmt: skip
    return out


def _profile(frames: dict[str, pl.DataFrame], block: np.ndarray) -> pl.DataFrame:
    merged = merge_parts(_parts(frames, block))
    return profile_from_parts(merged, NAMES, frames["features"].columns)


def test_parts_give_the_one_process_profile(frames: dict[str, pl.DataFrame]) -> None:
    exact = profile_segments(frames["features"], frames["documents"], frames["events"],
                             frames["assignments"], NAMES)  # fmt: skip
    n = frames["features"].height
    approx = _profile(frames, np.arange(n) % 3)
    assert approx.columns == exact.columns
    assert approx["id"].to_list() == exact["id"].to_list() == [0, 1, 2, 3, 4, -1]
    assert approx["name"].to_list() == [*NAMES.values(), "Outliers"]
    approx_pct = [c for c in exact.columns if c.startswith("pct_")]
    for col in exact.columns:
        want, got = exact[col], approx[col]
        if col in approx_pct:  # read from a grid of 1,000 quantiles of the same customers
            assert (want - got).abs().max() <= 0.25, col  # type: ignore[operator]
        elif want.dtype.is_float():  # medians too: here fewer customers than grid cells
            assert np.allclose(got.to_numpy(), want.to_numpy(), rtol=1e-9, equal_nan=True), col
        else:  # sizes, top categories/items/terms/channels, representatives: exact
            assert got.to_list() == want.to_list(), col
    assert approx["size"].sum() == n


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), blocks=st.integers(1, 7))
def test_any_cut_into_blocks_gives_the_same_profile(
    frames: dict[str, pl.DataFrame], seed: int, blocks: int
) -> None:
    n = frames["features"].height
    whole = _profile(frames, np.zeros(n, dtype=np.int64))
    cut = _profile(frames, np.random.default_rng(seed).integers(0, blocks, n))
    assert cut.columns == whole.columns
    for col in whole.columns:
        if whole[col].dtype.is_float():
            assert np.allclose(cut[col].to_numpy(), whole[col].to_numpy(), equal_nan=True), col
        else:
            assert cut[col].to_list() == whole[col].to_list(), col


def test_merging_is_associative(frames: dict[str, pl.DataFrame]) -> None:
    """A driver folds parts in as they arrive: ((a + b) + c) is (a + (b + c))."""
    a, b, c = _parts(frames, np.arange(frames["features"].height) % 3)
    left = merge_parts([merge_parts([a, b]), c])
    right = merge_parts([a, merge_parts([b, c])])
    for name in left:  # sums of floats in another order: equal to rounding
        assert_frame_equal(left[name], right[name], check_exact=False, rel_tol=1e-12)


def test_medians_are_exact_where_values_repeat(small_data: EventData) -> None:
    """An even count's median is the mean of its two middle values, as polars' is, also when
    they sit in two grid cells; a block with no events and no documents adds only numbers."""
    ids = [f"c{i}" for i in range(7)]
    features = pl.DataFrame({"user_id": ids, "monetary": [1.0, 1.0, 3.0, 3.0, 5.0, 9.0, 9.0],
                             "frequency": [1, 2, 2, 3, 3, 3, 4]})  # fmt: skip
    segment = np.array([0, 0, 0, 0, 1, 1, 1])
    assignments = pl.DataFrame({"user_id": ids, "segment": segment, "distance": np.arange(7.0)})
    documents = pl.DataFrame({"user_id": ids, "document": [""] * 7})
    grid = fit_grid(features)
    parts = [
        profile_part(
            features[rows], documents[rows], small_data.events.clear(), assignments[rows], grid
        )
        for rows in (slice(0, 3), slice(3, 7))
    ]
    out = profile_from_parts(merge_parts(parts), {0: "a", 1: "b"}, features.columns)
    exact = profile_segments(features, documents, small_data.events.clear(), assignments,
                             {0: "a", 1: "b"})  # fmt: skip
    assert out["median_monetary"].to_list() == exact["median_monetary"].to_list() == [2.0, 9.0]
    assert out["median_frequency"].to_list() == exact["median_frequency"].to_list() == [2.0, 3.0]
    assert out["base_median_monetary"][0] == exact["base_median_monetary"][0] == 3.0
    assert out["top_items"].to_list() == [[], []] and out["size"].to_list() == [4, 3]


def test_a_part_travels_as_arrow_ipc(frames: dict[str, pl.DataFrame]) -> None:
    """Placing actors send their parts to the driver as Arrow IPC bytes, not pickles."""
    from segmenter.profile_parts import part_from_ipc, part_to_ipc

    (part,) = _parts(frames, np.zeros(frames["features"].height, dtype=np.int64))
    back = part_from_ipc(part_to_ipc(part))
    assert back.keys() == part.keys()
    for name in part:
        assert back[name].equals(part[name]), name
