"""Segment lineage on hand-made tables: alignment, migrations, history, previous-run errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmenter.errors import SegmenterError
from segmenter.lineage import align, load_previous
from segmenter.lineage.align import contingency, profile_similarity
from segmenter.lineage.carry import SegmentIds
from segmenter.lineage.drift import psi
from segmenter.lineage.history import append, history_rows
from segmenter.lineage.migrations import NONE, migrations, moved_share


def test_identical_runs_keep_every_id() -> None:
    table = np.diag([50, 30, 20])
    out = align(table, [4, 7, 9], [0, 1, 2], next_id=10)
    assert out.ids == {0: 4, 1: 7, 2: 9}
    assert out.new == [] and out.retired == [] and out.splits == {} and out.merges == {}


@given(st.permutations(list(range(6))), st.lists(st.integers(5, 80), min_size=6, max_size=6))
@settings(max_examples=25, deadline=None)
def test_permuted_labels_are_undone(perm: list[int], sizes: list[int]) -> None:
    # new label perm[i] holds exactly the customers of previous id 10 + i
    table = np.zeros((6, 6), dtype=int)
    for i, j in enumerate(perm):
        table[i, j] = sizes[i]
    out = align(table, [10 + i for i in range(6)], list(range(6)), next_id=16)
    assert all(out.ids[j] == 10 + i for i, j in enumerate(perm))
    assert out.new == [] and out.retired == []


def test_a_split_keeps_one_id_and_gives_one_new() -> None:
    # previous 0 splits in new 0 (60) and new 2 (40); previous 1 stays as new 1
    table = np.array([[60, 0, 40], [0, 50, 0]])
    out = align(table, [0, 1], [0, 1, 2], next_id=5)
    assert out.ids == {0: 0, 1: 1, 2: 5}
    assert out.new == [5] and out.splits == {5: 0} and out.retired == []


def test_a_segment_of_mostly_new_customers_is_new_not_a_split() -> None:
    # new 2 holds 5 returning customers of previous 0, and 95 customers never seen before
    table = np.array([[60, 0, 5], [0, 50, 0]])
    out = align(table, [0, 1], [0, 1, 2], next_id=5, sizes=np.array([60, 50, 100]))
    assert out.new == [5] and out.splits == {}
    assert align(table, [0, 1], [0, 1, 2], next_id=5).splits == {5: 0}


def test_a_vanished_segment_is_retired_and_ids_are_never_reused() -> None:
    # previous 3 has no customers left; a new segment appears
    table = np.array([[40, 0, 0], [0, 30, 0], [0, 0, 0]])
    out = align(table, [1, 2, 3], [0, 1, 2], next_id=8)
    assert out.retired == [3] and out.new == [8] and out.ids[2] == 8
    assert 3 not in out.ids.values()


def test_a_merge_is_recorded() -> None:
    table = np.array([[40, 0], [30, 0], [0, 25]])
    out = align(table, [0, 1, 2], [0, 1], next_id=3)
    assert out.ids == {0: 0, 1: 2} and out.retired == [1] and out.merges == {1: 0}


def test_profiles_match_segments_when_no_customer_is_shared() -> None:
    rng = np.random.default_rng(0)
    prev = rng.normal(size=(4, 6))
    new = prev[[2, 0, 3, 1]] + rng.normal(scale=0.05, size=(4, 6))
    out = align(np.zeros((4, 4)), [0, 1, 2, 3], [0, 1, 2, 3], next_id=4,
                similarity=profile_similarity(prev, new))  # fmt: skip
    assert out.ids == {0: 2, 1: 0, 2: 3, 3: 1}


def test_align_rejects_a_table_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"table of shape \(2, 2\) does not match 3 previous"):
        align(np.eye(2), [0, 1, 2], [0, 1], next_id=3)


def test_contingency_counts_shared_customers() -> None:
    table = contingency(np.array([0, 0, 1, 5]), np.array([1, 1, 0, 0]), [0, 1], [0, 1])
    assert table.tolist() == [[0, 2], [1, 0]]


def test_segment_ids_map_labels_and_keep_outliers() -> None:
    ids = SegmentIds([4, 0, 9]).fit()
    assert ids.map(np.array([0, 2, -1, 1])).tolist() == [4, 9, -1, 0]
    with pytest.raises(ValueError, match="should be distinct integers >= 0"):
        SegmentIds([1, 1]).fit()


def _assign(pairs: dict[str, int]) -> pl.DataFrame:
    return pl.DataFrame(
        {"user_id": list(pairs), "segment": list(pairs.values()),
         "segment_name": [f"s{v}" for v in pairs.values()]},
        schema={"user_id": pl.String, "segment": pl.Int64, "segment_name": pl.String},
    )  # fmt: skip


@given(
    st.dictionaries(st.sampled_from([f"u{i}" for i in range(30)]), st.integers(0, 3)),
    st.dictionaries(st.sampled_from([f"u{i}" for i in range(15, 45)]), st.integers(0, 4)),
)
@settings(max_examples=25, deadline=None)
def test_migration_counts_sum_to_the_customers_of_both_runs(
    prev: dict[str, int], cur: dict[str, int]
) -> None:
    spend = pl.DataFrame({"user_id": list(cur), "spend": [1.5] * len(cur)},
                         schema={"user_id": pl.String, "spend": pl.Float64})  # fmt: skip
    table = migrations(_assign(prev), _assign(cur), spend)
    assert int(table["customers"].sum() or 0) == len(set(prev) | set(cur))
    assert int(table.filter(pl.col("from_segment") == NONE)["customers"].sum() or 0) == len(
        set(cur) - set(prev)
    )
    assert int(table.filter(pl.col("to_segment") == NONE)["customers"].sum() or 0) == len(
        set(prev) - set(cur)
    )
    assert float(table["spend"].sum() or 0.0) == pytest.approx(1.5 * len(cur))
    both = set(prev) & set(cur)
    moved = sum(prev[u] != cur[u] for u in both)
    assert moved_share(table) == pytest.approx(moved / len(both) if both else 0.0)


def test_history_appends_without_duplicating_a_run() -> None:
    features = pl.DataFrame({"user_id": ["a", "b", "c"], "monetary": [1.0, 2.0, 3.0]})
    assign = _assign({"a": 0, "b": 0, "c": 1})
    first = history_rows(assign, features, {0: "x", 1: "y"}, run="r1", period_end="2026-01-31")
    second = history_rows(assign, features, {0: "x", 1: "y"}, run="r2", period_end="2026-02-28")
    hist = append(append(None, first), second)
    assert hist.height == 4 and hist["run"].unique().sort().to_list() == ["r1", "r2"]
    again = append(hist, second)
    assert again.equals(hist)
    assert first.filter(pl.col("segment") == 0)["size"].item() == 2
    assert first["share"].sum() == pytest.approx(1.0)


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift() -> None:
    e = np.full(10, 0.1)
    shifted = np.r_[np.full(5, 0.15), np.full(5, 0.05)]
    assert psi(e, e) == 0.0 and psi(e, shifted) > 0.05


def test_previous_that_is_not_a_folder_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(SegmenterError, match=r"--previous: '.*nowhere' is not a folder"):
        load_previous(tmp_path / "nowhere")


def test_previous_that_is_a_model_folder_says_so(tmp_path: Path) -> None:
    (tmp_path / "segmenter.json").write_text("{}")
    with pytest.raises(
        SegmenterError, match=r"not a run folder .*no assignments.parquet.*model folder"
    ):
        load_previous(tmp_path)


def test_previous_with_foreign_tables_is_refused(tmp_path: Path) -> None:
    pl.DataFrame({"customer": ["a"], "cluster": [1]}).write_parquet(
        tmp_path / "assignments.parquet"
    )
    pl.DataFrame({"id": [1], "name": ["x"], "size": [1]}).write_parquet(
        tmp_path / "segments.parquet"
    )
    pl.DataFrame({"user_id": ["a"]}).write_parquet(tmp_path / "customers.parquet")
    (tmp_path / "run.json").write_text(json.dumps({"data": {}}))
    with pytest.raises(SegmenterError, match=r"assignments.parquet' lacks column\(s\) \['user_id'"):
        load_previous(tmp_path)
    (tmp_path / "run.json").write_text("{broken")
    with pytest.raises(SegmenterError, match=r"run.json' is not valid JSON"):
        load_previous(tmp_path)
