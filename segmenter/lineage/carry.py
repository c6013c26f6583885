"""Carry a previous run's segment ids, names and customers' histories into a new fit.

:func:`carry_forward` aligns a fitted :class:`~segmenter.model.Segmenter` to a previous run
(:mod:`segmenter.lineage.align`), relabels it with stable ids (kept in the model as the
``segment_ids`` stage, so that ``predict`` places new customers under the same ids), and
builds the tables the run folder gains: ``migrations.parquet`` and ``history.parquet``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from segmenter.lineage import history as hist
from segmenter.lineage.align import Alignment, align, contingency, profile_similarity
from segmenter.lineage.migrations import migrations, moved_share, period_spend
from segmenter.lineage.previous import PreviousRun, period_end

if TYPE_CHECKING:
    from segmenter.data import EventData
    from segmenter.model import Segmenter

logger = logging.getLogger(__name__)


class SegmentIds:
    """Stable id of each fitted segment label: ``ids_[label]`` (outliers, -1, stay -1).

    Parameters
    ----------
    ids : sequence of int
        Stable id of labels 0, 1, ...
    """

    def __init__(self, ids: Any) -> None:
        self.ids = ids

    def fit(self) -> SegmentIds:
        ids = np.asarray(self.ids, dtype=np.int64)
        if ids.ndim != 1 or len(set(ids.tolist())) != len(ids) or (ids < 0).any():
            raise ValueError(f"segment ids {ids.tolist()} should be distinct integers >= 0")
        self.ids_ = ids
        return self

    def map(self, labels: np.ndarray) -> np.ndarray:
        """Stable ids of fitted labels, shape of ``labels``."""
        labels = np.asarray(labels, dtype=np.int64)
        return np.where(labels >= 0, self.ids_[np.clip(labels, 0, None)], labels)

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {"ids": self.ids_}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> SegmentIds:
        return cls(arrays["ids"]).fit()


@dataclass(frozen=True)
class Lineage:
    """What a run gains from its previous run.

    Attributes
    ----------
    alignment : Alignment or None
        None on a first run.
    migrations : polars.DataFrame or None
        ``migrations.parquet`` (None on a first run).
    history : polars.DataFrame
        ``history.parquet``: the previous history plus this run.
    summary : dict
        ``run.json``'s ``lineage`` entry.
    """

    alignment: Alignment | None
    migrations: pl.DataFrame | None
    history: pl.DataFrame
    summary: dict[str, Any]

    def tables(self) -> dict[str, pl.DataFrame]:
        out = {"history.parquet": self.history}
        if self.migrations is not None:
            out["migrations.parquet"] = self.migrations
        return out


def run_id(data: EventData) -> str:
    """A run's key in the history: its period end and input fingerprint."""
    summary = data.summary()
    return f"{period_end(summary['last_event'])}:{str(summary['fingerprint'])[:12]}"


def segment_profiles(
    customers: pl.DataFrame, assignments: pl.DataFrame, columns: list[str], ids: list[int]
) -> np.ndarray:
    """Mean of ``columns`` per segment id, shape (len(ids), len(columns))."""
    frame = customers.select("user_id", *columns).join(
        assignments.select("user_id", "segment"), on="user_id", how="inner"
    )
    means = frame.group_by("segment").agg(pl.col(columns).cast(pl.Float64).mean())
    rows = {int(r[0]): r[1:] for r in means.iter_rows()}
    return np.array([rows.get(i, (np.nan,) * len(columns)) for i in ids], dtype=np.float64)


def carry_forward(model: Segmenter, data: EventData, previous: PreviousRun | None) -> Lineage:
    """Align ``model`` (fitted on ``data``) to ``previous`` and relabel it with stable ids.

    Without ``previous`` (a first run) the labels are the ids and the history starts.
    """
    rid, end = run_id(data), period_end(data.summary()["last_event"])
    labels = sorted(int(s) for s in model.segment_names_)
    if previous is None:
        model.segment_ids_ = SegmentIds(list(range(max(labels, default=-1) + 1))).fit()
        first: dict[str, Any] = {"previous": None, "next_id": max(labels, default=-1) + 1}
        return Lineage(None, None, _history(model, None, rid, end), first)
    prev_assign, new_assign = previous.assignments, model.assignments_
    shared = prev_assign.select("user_id", pl.col("segment").alias("_p")).join(
        new_assign.select("user_id", pl.col("segment").alias("_n")), on="user_id", how="inner"
    )
    prev_ids = [int(i) for i in previous.segments["id"].to_list() if i >= 0]
    table = contingency(shared["_p"].to_numpy(), shared["_n"].to_numpy(), prev_ids, labels)
    columns = [
        c for c, t in model.features_.schema.items()
        if c in previous.customers.columns and c != "user_id" and t.is_numeric()
    ]  # fmt: skip
    similarity = None
    if columns:
        similarity = profile_similarity(
            segment_profiles(previous.customers, prev_assign, columns, prev_ids),
            segment_profiles(model.features_, new_assign, columns, labels),
        )
    counts = dict(new_assign["segment"].value_counts().iter_rows())
    sizes = np.array([counts.get(label, 0) for label in labels])
    alignment = align(
        table, prev_ids, labels, next_id=previous.next_id, similarity=similarity, sizes=sizes
    )
    _relabel(model, alignment, previous)
    _carry_history_columns(model, previous, end)
    moves = migrations(
        prev_assign, model.assignments_, period_spend(data.events, previous.period_end)
    )
    summary: dict[str, Any] = {
        "previous": str(previous.path),
        "previous_period_end": previous.period_end,
        **alignment.summary(),
        "next_id": max([previous.next_id - 1, *alignment.ids.values()]) + 1,
        "moved_share": round(moved_share(moves), 4),
        "shared_customers": shared.height,
    }
    logger.info(
        "aligned to %s: %d kept, %d new, %d retired; %.1f%% of shared customers moved",
        previous.path, len(alignment.matched), len(alignment.new), len(alignment.retired),
        100 * summary["moved_share"],
    )  # fmt: skip
    return Lineage(alignment, moves, _history(model, previous.history, rid, end), summary)


def _relabel(model: Segmenter, alignment: Alignment, previous: PreviousRun) -> None:
    """Stable ids and kept names into the model and its assignments."""
    labels = sorted(alignment.ids)
    model.segment_ids_ = SegmentIds([alignment.ids[i] for i in labels]).fit()
    prev_names = dict(
        zip(previous.segments["id"].to_list(), previous.segments["name"].to_list(), strict=True)
    )
    names = {alignment.ids[i]: model.segment_names_[i] for i in labels}
    for label, prev_id in alignment.matched.items():
        names[alignment.ids[label]] = prev_names.get(prev_id, names[alignment.ids[label]])
    kept = {names[alignment.ids[lab]] for lab in alignment.matched}
    for sid in alignment.new:
        if names[sid] in kept:
            names[sid] = f"{names[sid]} (new)"
    model.segment_names_ = names
    if getattr(model, "reference_", None) is not None:
        model.reference_.segments_ = model.segment_ids_.map(model.reference_.segments_)
    seg = model.segment_ids_.map(model.assignments_["segment"].to_numpy())
    model.assignments_ = model.assignments_.with_columns(
        pl.Series("segment", seg, dtype=pl.Int64),
        pl.Series("segment_name", [names.get(int(s), "Outliers") for s in seg], dtype=pl.String),
    )


def _carry_history_columns(model: Segmenter, previous: PreviousRun, end: str) -> None:
    """``previous_segment`` and ``segment_since`` (the period end at which the customer's
    segment last changed) on the model's assignments."""
    prev = previous.assignments
    since = prev["segment_since"] if "segment_since" in prev.columns else None
    prev = prev.select(
        "user_id",
        pl.col("segment").alias("previous_segment"),
        (since if since is not None else pl.lit(previous.period_end))
        .cast(pl.String)
        .alias("_since"),
    )
    out = model.assignments_.join(prev, on="user_id", how="left").with_columns(
        pl.when(pl.col("previous_segment") == pl.col("segment"))
        .then(pl.col("_since"))
        .otherwise(pl.lit(end))
        .alias("segment_since")
    )
    model.assignments_ = out.drop("_since")


def _history(model: Segmenter, history: pl.DataFrame | None, rid: str, end: str) -> pl.DataFrame:
    rows = hist.history_rows(
        model.assignments_, model.features_, model.segment_names_, run=rid, period_end=end
    )
    return hist.append(history, rows)


def as_previous(model: Segmenter, data: EventData, lineage: Lineage) -> PreviousRun:
    """A fitted and carried model as the previous run of the next one, without a run folder
    (chains of refits in memory: benchmarks, notebooks)."""
    from pathlib import Path

    sizes = model.assignments_.group_by("segment", "segment_name").agg(pl.len().alias("size"))
    segments = sizes.select(
        pl.col("segment").alias("id"), pl.col("segment_name").alias("name"), "size"
    ).sort("id")
    meta = {"data": data.summary(), "lineage": lineage.summary}
    return PreviousRun(Path("<memory>"), model.assignments_, model.features_, segments,
                       lineage.history, meta)  # fmt: skip
