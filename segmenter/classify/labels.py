"""Customer labels: read them, take them from a discovery run, and check them against events.

Every function returns a frame of ``user_id`` (string) and ``label`` (string) or raises
:class:`~segmenter.errors.SegmenterError` with a one-line message; nothing is written.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from segmenter.data import normalize_id, read_table
from segmenter.errors import SegmenterError, preview
from segmenter.io import is_table

logger = logging.getLogger(__name__)

#: Segment id of HDBSCAN outliers in a discovery run's assignments.
OUTLIER = -1


@dataclass(frozen=True)
class LabelSet:
    """Labels of the customers present in the events.

    Attributes
    ----------
    frame : polars.DataFrame
        ``user_id``, ``label`` (both strings), one row per known labelled customer.
    n_unknown : int
        Labelled users that do not appear in the events (dropped, reported).
    example_unknown : str or None
        One such user id, for the log message.
    """

    frame: pl.DataFrame
    n_unknown: int = 0
    example_unknown: str | None = None


def read_labels(path: str | os.PathLike[str], *, label_column: str = "label") -> pl.DataFrame:
    """Read a labels table (parquet or CSV) with ``user_id`` and a label column.

    Parameters
    ----------
    path : path
        Parquet, CSV or CSV.gz file.
    label_column : str
        Name of the column holding the label.

    Returns
    -------
    polars.DataFrame
        ``user_id``, ``label`` as strings, one row per user.
    """
    frame = read_table(path, what="--labels")
    return clean_labels(frame, label_column=label_column, source=f"--labels '{path}'")


def labels_from_run(run_dir: str | os.PathLike[str]) -> pl.DataFrame:
    """Labels from a discovery run: its segments, outliers (segment -1) left out.

    Parameters
    ----------
    run_dir : path
        Folder written by ``python -m pipelines.discover`` holding ``assignments.parquet``.

    Returns
    -------
    polars.DataFrame
        ``user_id``, ``label``: the segment name when the run has one, else the segment id.
    """
    path = Path(run_dir) / "assignments.parquet"
    if not is_table(path):
        raise SegmenterError(
            f"--labels-from: '{run_dir}' holds no assignments.parquet; expected the --out "
            f"folder of a discovery run (python -m pipelines.discover)"
        )
    frame = read_table(path, what="--labels-from")
    source = f"--labels-from '{path}'"
    _require_columns(frame, ("user_id", "segment"), source)
    if not frame.schema["segment"].is_integer():
        raise SegmenterError(
            f"{source}: column 'segment' has type {frame.schema['segment']}; expected integers"
        )
    outliers = frame.filter(pl.col("segment") == OUTLIER).height
    if outliers:
        logger.info("--labels-from: left out %d outlier customers (segment -1)", outliers)
    frame = frame.filter(pl.col("segment") != OUTLIER)
    label = pl.col("segment").cast(pl.String)
    if "segment_name" in frame.columns:
        label = pl.coalesce(pl.col("segment_name").cast(pl.String), label)
    frame = frame.select("user_id", label.alias("label"))
    return clean_labels(frame, label_column="label", source=source)


def clean_labels(frame: pl.DataFrame, *, label_column: str, source: str) -> pl.DataFrame:
    """Validate and normalize a labels frame to ``user_id``, ``label`` strings.

    Identical duplicate rows are merged; a user with two different labels, a null or empty
    label or user id, and an empty table are errors.
    """
    if frame.height == 0:
        raise SegmenterError(f"{source} is empty: 0 rows; expected one row per labelled user")
    _require_columns(frame, ("user_id", label_column), source)
    out = frame.select(
        normalize_id(frame["user_id"]).alias("user_id"),
        frame[label_column].cast(pl.String).str.strip_chars().alias("label"),
    )
    for column in ("user_id", "label"):
        bad = out[column].is_null() | (out[column] == "")
        if bool(bad.any()):
            name = label_column if column == "label" else column
            raise SegmenterError(
                f"{source}: column '{name}' has {int(bad.sum())} null or empty values (first at "
                f"row {int(bad.arg_true()[0])}); every row needs a user id and a label"
            )
    out = out.unique(maintain_order=True)
    clash = out.filter(pl.col("user_id").is_duplicated())
    if clash.height:
        user = clash["user_id"][0]
        both = clash.filter(pl.col("user_id") == user)["label"].to_list()
        raise SegmenterError(
            f"{source}: user_id '{user}' has {len(both)} different labels {preview(both)}; "
            f"expected one label per user ({clash['user_id'].n_unique()} such users)"
        )
    return out


def _require_columns(frame: pl.DataFrame, columns: tuple[str, ...], source: str) -> None:
    for column in columns:
        if column not in frame.columns:
            raise SegmenterError(
                f"{source} is missing column '{column}'; columns present: "
                f"{preview(frame.columns, 20)}"
            )


def match_users(labels: pl.DataFrame, users: pl.Series, *, source: str = "--labels") -> LabelSet:
    """Keep the labels of users that appear in the events; count the others.

    Parameters
    ----------
    labels : polars.DataFrame
        ``user_id``, ``label`` as returned by :func:`read_labels`.
    users : polars.Series
        The customer ids present in the events.
    source : str
        How the labels were given, for messages.

    Returns
    -------
    LabelSet
    """
    known = labels.filter(pl.col("user_id").is_in(users.implode()))
    n_unknown = labels.height - known.height
    example = None
    if n_unknown:
        example = str(labels.filter(~pl.col("user_id").is_in(users.implode()))["user_id"][0])
        if known.height == 0:
            raise SegmenterError(
                f"{source}: none of the {labels.height} labelled users appear in the events "
                f"(e.g. user_id '{example}'); expected user ids such as "
                f"{preview(users.head(3).to_list())}"
            )
        logger.warning(
            "%s: %d of %d labelled users do not appear in the events (e.g. '%s'); training "
            "on the other %d",
            source,
            n_unknown,
            labels.height,
            example,
            known.height,
        )
    return LabelSet(known, n_unknown, example)


def check_classes(
    counts: Mapping[str, int], *, source: str = "labels", min_per_class: int = 2
) -> None:
    """Require at least two classes and at least ``min_per_class`` examples of each.

    Parameters
    ----------
    counts : mapping of str to int
        Examples per class.
    source : str
        How the labels were given, for messages.
    min_per_class : int
        Fewest examples a class may have (two: one to train on and one to test on).
    """
    if len(counts) < 2:
        only = ", ".join(f"'{c}' ({n} customers)" for c, n in counts.items()) or "none"
        raise SegmenterError(
            f"{source}: found one class only, {only}; expected at least two different labels"
        )
    small = sorted((n, c) for c, n in counts.items() if n < min_per_class)
    if small:
        n, name = small[0]
        raise SegmenterError(
            f"{source}: class '{name}' has {n} labelled customer{'' if n == 1 else 's'}; "
            f"every class needs at least {min_per_class} ({len(small)} such classes; drop "
            f"them or label more customers)"
        )
