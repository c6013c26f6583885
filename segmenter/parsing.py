"""Parsing the events' CSV delimiter, timestamps and numbers; errors name the user's row."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from segmenter.errors import SegmenterError

logger = logging.getLogger(__name__)

TIMESTAMP_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d",
)


def row_of(position: int, rows: pl.Series | None) -> int:
    """The input row of a position in a (possibly filtered) column."""
    return int(rows[position]) if rows is not None else position


def parse_timestamp(series: pl.Series, *, rows: pl.Series | None = None) -> pl.Series:
    name = "timestamp"
    if series.dtype == pl.Datetime or isinstance(series.dtype, pl.Datetime):
        parsed = series.dt.replace_time_zone(None) if series.dtype.time_zone else series  # type: ignore[attr-defined]
        parsed = parsed.cast(pl.Datetime("us"))
    elif series.dtype == pl.Date:
        parsed = series.cast(pl.Datetime("us"))
    elif series.dtype == pl.String:
        parsed = parse_timestamp_strings(series.str.strip_chars())
    else:
        raise SegmenterError(
            f"column 'timestamp' has type {series.dtype}; expected a datetime or an ISO-8601 "
            f"string such as 2011-01-31 08:26:00"
        )
    bad = parsed.is_null() & series.is_not_null()
    if series.null_count():
        row = row_of(int(series.is_null().arg_true()[0]), rows)
        raise SegmenterError(
            f"column 'timestamp': {series.null_count()} rows have no timestamp (first at row "
            f"{row}); expected an ISO-8601 datetime on every event"
        )
    if bool(bad.any()):
        position = int(bad.arg_true()[0])
        raise SegmenterError(
            f"column 'timestamp': cannot parse '{series[position]}' (row "
            f"{row_of(position, rows)}) as a datetime; "
            f"expected ISO-8601 such as 2011-01-31 08:26:00"
        )
    return parsed.alias(name)


def parse_timestamp_strings(text: pl.Series) -> pl.Series:
    """Each value in the first of the known formats that parses it, then polars' inference.

    Values that nothing parses stay null (the caller reports the first of them).
    """
    parsed = pl.Series("timestamp", [None] * text.len(), dtype=pl.Datetime("us"))
    for fmt in TIMESTAMP_FORMATS:
        todo = parsed.is_null() & text.is_not_null()
        if not bool(todo.any()):
            return parsed
        attempt = text.str.to_datetime(fmt, strict=False, time_unit="us")
        parsed = pl.select(pl.coalesce(pl.lit(parsed), pl.lit(attempt))).to_series()
    todo = parsed.is_null() & text.is_not_null()
    if not bool(todo.any()):
        return parsed
    rest = pl.select(pl.when(pl.lit(todo)).then(pl.lit(text))).to_series()
    try:
        # time-zone offsets (2011-01-31T08:26:00+01:00, ...Z): UTC, then naive
        attempt = rest.str.to_datetime(strict=False, time_unit="us")
        if isinstance(attempt.dtype, pl.Datetime) and attempt.dtype.time_zone is not None:
            attempt = attempt.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        attempt = attempt.cast(pl.Datetime("us"))
    except pl.exceptions.PolarsError:
        # no format could be inferred from the first value: leave these unparsed
        return parsed
    return pl.select(pl.coalesce(pl.lit(parsed), pl.lit(attempt))).to_series()


#: Largest magnitude a value may have; beyond it (or NaN, +-inf) it is a data error, a unit or
#: parsing slip, not a purchase: an event of over a billion, a million units, a rating over 100.
LIMITS = {"amount": 1e9, "quantity": 1e6, "rating": 100.0}


def out_of_range(series: pl.Series, column: str) -> pl.Series:
    """True where a present value is NaN, infinite or beyond ``LIMITS[column]``."""
    values = series.cast(pl.Float64)
    return (values.is_not_null() & ~(values.abs() <= LIMITS[column])).fill_null(False)


def check_range(
    frame: pl.DataFrame, column: str, rows: str, *, drop_invalid: bool, dropped: dict[str, int]
) -> pl.DataFrame:
    """Fail on (or drop and count) NaN, infinite and absurdly large values of ``column``."""
    bad = out_of_range(frame[column], column)
    n_bad = int(bad.sum())
    if not n_bad:
        return frame
    if not drop_invalid:
        first = int(bad.arg_true()[0])
        raise SegmenterError(
            f"column '{column}': {frame[column][first]} (row {int(frame[rows][first])}) is not "
            f"a finite number within +-{LIMITS[column]:g} ({n_bad} such rows); fix them or pass "
            f"--drop-invalid to drop them"
        )
    reason = f"'{column}' NaN, infinite or beyond +-{LIMITS[column]:g}"
    dropped[reason] = dropped.get(reason, 0) + n_bad
    frame = frame.filter(~bad)
    if frame.height == 0:
        raise SegmenterError(f"input has no rows left after dropping rows with invalid {column}")
    return frame


def parse_number(series: pl.Series, column: str, *, rows: pl.Series | None = None) -> pl.Series:
    if series.dtype.is_numeric():
        return series.cast(pl.Float64).alias(column)
    if series.dtype == pl.Boolean:
        raise SegmenterError(f"column '{column}' is boolean; expected numbers")
    text = as_string(series).str.strip_chars()
    text = pl.Series(column, text).replace("", None)
    parsed = text.cast(pl.Float64, strict=False)
    bad = parsed.is_null() & text.is_not_null()
    if bool(bad.any()):
        position = int(bad.arg_true()[0])
        raise SegmenterError(
            f"column '{column}': '{text[position]}' (row {row_of(position, rows)}) is not a "
            f"number; expected numeric "
            f"values such as 12.5 ({int(bad.sum())} bad rows)"
        )
    return parsed.alias(column)


def as_string(series: pl.Series) -> pl.Series:
    """The series as strings; whole floats (17850.0, from CSV/pandas round trips) lose .0."""
    if series.dtype.is_nested() or series.dtype == pl.Object:
        raise SegmenterError(
            f"column '{series.name}' holds {series.dtype} values; expected one text or number "
            f"per row"
        )
    if series.dtype == pl.String:
        return series
    if series.dtype.is_float():
        # 17850.0 -> "17850": float ids come from CSV/pandas round trips
        as_int = series.cast(pl.Int64, strict=False)
        if bool((as_int.cast(pl.Float64) == series).fill_null(True).all()):
            return as_int.cast(pl.String)
    return series.cast(pl.String)


def is_csv(name: str) -> bool:
    return name.lower().endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz"))


#: Delimiters a ``.csv`` file may use; the header line decides (comma unless it has none).
DELIMITERS = (",", ";", "\t", "|")


def sniff_delimiter(path: Path, what: str) -> str:
    """The delimiter of a CSV file's header line: "," unless the header has no comma but
    another of :data:`DELIMITERS` (logged, since a ";" file read with "," is one column)."""
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        head = fh.readline(1 << 16).decode("utf-8", errors="replace")
    counts = {d: head.count(d) for d in DELIMITERS}
    if counts[","]:
        return ","
    best = max(DELIMITERS, key=lambda d: counts[d])
    if counts[best]:
        logger.info("%s '%s': reading columns separated by %r (no comma in the header)",
                    what, path, best)  # fmt: skip
        return best
    return ","
