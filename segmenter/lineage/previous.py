"""The previous run a new one is aligned to: its assignments, segments, history and ids."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from segmenter.errors import SegmenterError
from segmenter.io import is_table
from segmenter.persist import MODEL_FILE

#: what a run folder must hold to be aligned to
REQUIRED = ("assignments.parquet", "segments.parquet", "customers.parquet", "run.json")


@dataclass(frozen=True)
class PreviousRun:
    """A run folder, read for alignment.

    Attributes
    ----------
    path : Path
    assignments : polars.DataFrame
        ``user_id, segment, segment_name`` (+ ``segment_since`` when it was aligned itself).
    customers : polars.DataFrame
        ``user_id`` and the behaviour features.
    segments : polars.DataFrame
        The profile table (``id, name, size, share, ...``).
    history : polars.DataFrame or None
        Its ``history.parquet``.
    meta : dict
        Its ``run.json``.
    """

    path: Path
    assignments: pl.DataFrame
    customers: pl.DataFrame
    segments: pl.DataFrame
    history: pl.DataFrame | None
    meta: dict[str, Any]

    @property
    def period_end(self) -> str:
        """Date of the last event the run saw (YYYY-MM-DD)."""
        return period_end(self.meta.get("data", {}).get("last_event"))

    @property
    def next_id(self) -> int:
        """The first segment id never used by this run or any run before it."""
        used = [int(x) for x in self.segments["id"].to_list() if x is not None and x >= 0]
        used.append(int(self.meta.get("lineage", {}).get("next_id", 0)) - 1)
        if self.history is not None and self.history.height:
            used.append(int(self.history["segment"].max()))  # type: ignore[arg-type]
        return max(used, default=-1) + 1

    @property
    def model_dir(self) -> Path:
        return self.path / "model"


def period_end(last_event: Any) -> str:
    """``YYYY-MM-DD`` of a ``last_event`` string from ``run.json``; empty when unknown."""
    return str(last_event or "")[:10]


def load_previous(path: str | Path, *, option: str = "--previous") -> PreviousRun:
    """Read a run folder written by ``pipelines.discover``; every problem is a one-line error."""
    folder = Path(path)
    if not folder.is_dir():
        raise SegmenterError(f"{option}: '{folder}' is not a folder; expected a run folder")
    missing = [name for name in REQUIRED if not is_table(folder / name)]
    if missing:
        hint = (
            " (it is a model folder; pass the run folder above it)"
            if (folder / MODEL_FILE).is_file()
            else ""
        )
        raise SegmenterError(
            f"{option}: '{folder}' is not a run folder of pipelines.discover "
            f"(no {', '.join(missing)}){hint}"
        )
    try:
        assignments = pl.read_parquet(folder / "assignments.parquet")
        customers = pl.read_parquet(folder / "customers.parquet")
        segments = pl.read_parquet(folder / "segments.parquet")
        history_file = folder / "history.parquet"
        history = pl.read_parquet(history_file) if history_file.is_file() else None
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise SegmenterError(f"{option}: '{folder}' has a damaged table: {exc}") from None
    try:
        meta = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SegmenterError(
            f"{option}: '{folder / 'run.json'}' is not valid JSON: {exc}"
        ) from None
    for name, frame, cols in (
        ("assignments.parquet", assignments, ("user_id", "segment", "segment_name")),
        ("segments.parquet", segments, ("id", "name", "size")),
        ("customers.parquet", customers, ("user_id",)),
    ):
        lacking = [c for c in cols if c not in frame.columns]
        if lacking:
            raise SegmenterError(
                f"{option}: '{folder / name}' lacks column(s) {lacking}; not a segmenter run"
            )
    if not isinstance(meta, dict):
        raise SegmenterError(f"{option}: '{folder / 'run.json'}' is not a JSON object")
    return PreviousRun(folder, assignments, customers, segments, history, meta)
