"""Read a run folder for the report: run.json, the profile table, a map sample and tier counts.

Only the files of the run folder are read (never the input events), so that
``python -m pipelines.report RUN_DIR`` can rebuild the report anywhere.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from segmenter.errors import SegmenterError
from segmenter.io import is_table

logger = logging.getLogger(__name__)

REQUIRED = ("assignments.parquet", "segments.parquet", "run.json")
MAP_COLUMNS = ("user_id", "segment", "map_x", "map_y")
#: The two axes a tiered run writes next to the segment (absent in older runs and hdbscan's).
AXIS_COLUMNS = ("value_tier", "taste_group")


@dataclass(frozen=True)
class RunFolder:
    """What the report shows of one run folder.

    Attributes
    ----------
    path : Path
    meta : dict
        run.json.
    segments : polars.DataFrame
        The profile table (segments.parquet), one row per segment, outliers last.
    n_customers : int
        Rows of assignments.parquet.
    points : polars.DataFrame
        The map sample: ``user_id, segment, x, y`` with x and y scaled to [0, 1].
    axes : polars.DataFrame
        :func:`axis_counts`: customers per ``segment, value_tier, taste_group`` (empty when
        the run has no such columns).
    """

    path: Path
    meta: dict[str, Any]
    segments: pl.DataFrame
    n_customers: int
    points: pl.DataFrame
    axes: pl.DataFrame = field(default_factory=lambda: axis_counts(pl.LazyFrame()))


def load_run(run_dir: str | Path, *, max_points: int = 20_000, seed: int = 0) -> RunFolder:
    """Read and check a run folder.

    Raises
    ------
    SegmenterError
        When ``run_dir`` is not a run folder or one of its files cannot be read.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise SegmenterError(f"RUN_DIR '{run}' is not a folder; expected a run folder")
    missing = [name for name in REQUIRED if not is_table(run / name)]
    if missing:
        raise SegmenterError(
            f"RUN_DIR '{run}' is not a run folder: missing {', '.join(missing)}; expected "
            f"the output of python -m pipelines.discover"
        )
    try:
        meta = json.loads((run / "run.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SegmenterError(f"'{run / 'run.json'}' is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise SegmenterError(f"'{run / 'run.json'}' should hold a JSON object")
    segments = _read(run / "segments.parquet", ("id", "name", "size"))
    assignments = _scan(run / "assignments.parquet")
    n_customers = int(assignments.select(pl.len()).collect().item())
    points = map_sample(assignments, max_points=max_points, seed=seed)
    logger.info("map: %d of %d customers", points.height, n_customers)
    axes = axis_counts(assignments)
    return RunFolder(run, meta, _ordered(segments), n_customers, points, axes)


def _read(path: Path, columns: tuple[str, ...]) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # polars raises several types for a bad file
        raise SegmenterError(f"'{path}' could not be read as parquet: {exc}") from exc
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SegmenterError(f"'{path}' is missing column '{missing[0]}'; expected {columns}")
    return frame


def _scan(path: Path) -> pl.LazyFrame:
    try:
        lazy = pl.scan_parquet(path)
        names = lazy.collect_schema().names()
    except Exception as exc:
        raise SegmenterError(f"'{path}' could not be read as parquet: {exc}") from exc
    if "segment" not in names or "user_id" not in names:
        raise SegmenterError(f"'{path}' is missing column 'segment' or 'user_id'")
    return lazy.select([c for c in (*MAP_COLUMNS, *AXIS_COLUMNS) if c in names])


def _ordered(segments: pl.DataFrame) -> pl.DataFrame:
    return segments.sort(pl.col("id") < 0, "id")


def axis_counts(assignments: pl.LazyFrame) -> pl.DataFrame:
    """Customers per segment, value tier and taste group.

    Returns
    -------
    polars.DataFrame
        ``segment, value_tier, taste_group, n`` (Int64), one row per combination that has
        customers; empty when ``assignments`` lacks one of :data:`AXIS_COLUMNS`.
    """
    keys = ("segment", *AXIS_COLUMNS)
    schema = dict.fromkeys((*keys, "n"), pl.Int64)
    if not set(keys) <= set(assignments.collect_schema().names()):
        return pl.DataFrame(schema=schema)
    return (
        assignments.select(pl.col(c).cast(pl.Int64) for c in keys)
        .drop_nulls()
        .group_by(keys)
        .agg(pl.len().cast(pl.Int64).alias("n"))
        .sort(keys)
        .collect()
    )


def quotas(sizes: dict[int, int], max_points: int) -> dict[int, int]:
    """Points per segment: at most ``max_points`` in all, every segment represented.

    Each segment first gets up to ``max_points / (4 * n_segments)`` points (all of a small
    one); the rest of the budget is shared in proportion to what is left of each segment.
    """
    total = sum(sizes.values())
    if total <= max_points:
        return dict(sizes)
    floor = max(1, max_points // (4 * max(len(sizes), 1)))
    base = {s: min(n, floor) for s, n in sizes.items()}
    budget = max_points - sum(base.values())
    left = total - sum(base.values())
    return {
        s: base[s] + int(budget * (sizes[s] - base[s]) / left) if left else base[s] for s in sizes
    }


def map_sample(
    assignments: pl.LazyFrame, *, max_points: int = 20_000, seed: int = 0
) -> pl.DataFrame:
    """A seeded stratified sample of the customer map, coordinates scaled to [0, 1].

    Returns
    -------
    polars.DataFrame
        ``user_id`` (str), ``segment`` (int), ``x``, ``y`` (float, 4 decimals), in a shuffled
        order (outliers first) so that no segment is painted entirely over another. Empty when
        the run has no map coordinates.
    """
    names = assignments.collect_schema().names()
    empty = pl.DataFrame(
        schema={"user_id": pl.String, "segment": pl.Int64, "x": pl.Float64, "y": pl.Float64}
    )
    if "map_x" not in names or "map_y" not in names:
        return empty
    sizes = dict(assignments.group_by("segment").agg(pl.len()).collect().iter_rows())
    take = pl.DataFrame(
        {"segment": list(sizes), "quota": list(quotas(sizes, max_points).values())},
        schema={"segment": pl.Int64, "quota": pl.Int64},
    )
    sample = (
        assignments.with_columns(pl.col("segment").cast(pl.Int64))
        .with_columns(pl.int_range(pl.len()).shuffle(seed=seed).over("segment").alias("_r"))
        .join(take.lazy(), on="segment")
        .filter(pl.col("_r") < pl.col("quota"))
        .select(pl.col("user_id").cast(pl.String), "segment", "map_x", "map_y")
        .collect()
    )
    if sample.height == 0:
        return empty
    rng = np.random.default_rng(seed)
    # shuffled, so that no segment hides another; outliers first, under everything else
    sample = sample[rng.permutation(sample.height)].sort(
        pl.col("segment") >= 0, maintain_order=True
    )
    out = {}
    for src, dst in (("map_x", "x"), ("map_y", "y")):
        raw = sample[src].cast(pl.Float64)
        v = raw.zip_with(raw.is_finite().fill_null(False), pl.Series([0.0] * raw.len()))
        lo, hi = v.min(), v.max()
        span = (float(hi) - float(lo)) or 1.0  # type: ignore[arg-type]
        out[dst] = ((v - lo) / span).round(4)
    return sample.select("user_id", "segment").with_columns(**out)
