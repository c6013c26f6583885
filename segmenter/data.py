"""The events contract: load, map, validate and join customer events.

Every function here either returns a frame in canonical form or raises
:class:`~segmenter.errors.SegmenterError` with a one-line message; nothing is written.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from segmenter.errors import SegmenterError, preview
from segmenter.parsing import (
    as_string,
    check_range,
    is_csv,
    parse_number,
    parse_timestamp,
    sniff_delimiter,
)
from segmenter.privacy import mask_frame

logger = logging.getLogger(__name__)

REQUIRED = ("user_id", "timestamp")
OPTIONAL = (
    "event_type",
    "order_id",
    "item_id",
    "item_name",
    "category",
    "quantity",
    "amount",
    "text",
    "rating",
    "channel",
)
CANONICAL = REQUIRED + OPTIONAL
NUMERIC = ("quantity", "amount", "rating")
STRINGS = (
    "user_id",
    "event_type",
    "order_id",
    "item_id",
    "item_name",
    "category",
    "text",
    "channel",
)
ITEM_COLUMNS = ("item_name", "category", "price")
#: Free text masked on load (:mod:`segmenter.privacy`), as is every text attribute of users;
#: ``text`` is masked where it is read (facts, terms), after its newest distinct values are
#: chosen, by the same rules.
FREE_TEXT = ("item_name", "category", "channel")
#: Row number in the input as read, carried through drops so errors name the user's row.
_ROW = "__segmenter_row__"

PRESETS: dict[str, dict[str, str]] = {
    "online-retail": {
        "user_id": "CustomerID",
        "timestamp": "InvoiceDate",
        "order_id": "InvoiceNo",
        "item_id": "StockCode",
        "item_name": "Description",
        "quantity": "Quantity",
    },
}


@dataclass
class EventData:
    """Canonical events plus the optional users and items tables.

    Attributes
    ----------
    events : polars.DataFrame
        One row per event with the canonical columns (optional ones filled or null).
    users : polars.DataFrame or None
        ``user_id`` plus attribute columns, one row per user.
    dropped : dict of str to int
        Rows removed, keyed by reason; reported in logs and run.json.
    fingerprint : str
        sha256 over the input files' bytes (or the frame when given in memory).
    """

    events: pl.DataFrame
    users: pl.DataFrame | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    fingerprint: str = ""
    source: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def n_users(self) -> int:
        return int(self.events["user_id"].n_unique())

    def summary(self) -> dict[str, object]:
        ts = self.events["timestamp"]
        return {
            "source": self.source,
            "rows": self.events.height,
            "customers": self.n_users,
            "first_event": str(ts.min()),
            "last_event": str(ts.max()),
            "dropped_rows": dict(self.dropped),
            "fingerprint": self.fingerprint,
            "warnings": list(self.warnings),
        }


def parse_columns(spec: str | None) -> dict[str, str]:
    """Parse ``canonical=theirs,...`` as given to ``--columns``."""
    if not spec:
        return {}
    mapping: dict[str, str] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise SegmenterError(
                f"--columns: '{part}' is not of the form canonical=theirs "
                f"(e.g. user_id=CustomerID,timestamp=InvoiceDate)"
            )
        key, value = (s.strip() for s in part.split("=", 1))
        mapping[key] = value
    return mapping


def read_table(path: str | os.PathLike[str], *, what: str = "input") -> pl.DataFrame:
    """Read parquet, CSV, CSV.gz, or a folder of parquet shards, as given."""
    p = Path(path)
    if not p.exists():
        raise SegmenterError(f"{what} '{p}' does not exist")
    try:
        if p.is_dir():
            shards = sorted(p.glob("*.parquet"))
            other = sorted(f.name for f in p.iterdir() if is_csv(f.name))
            if other:
                raise SegmenterError(
                    f"{what} folder '{p}' holds CSV files ({other[0]}, ...); a folder is read as "
                    f"parquet shards only: pass the CSV file itself, or convert it to parquet"
                )
            if not shards:
                raise SegmenterError(f"{what} folder '{p}' holds no .parquet files")
            return pl.concat([pl.read_parquet(s) for s in shards], how="diagonal_relaxed")
        if p.stat().st_size == 0:
            raise SegmenterError(f"{what} '{p}' is empty: 0 bytes")
        name = p.name.lower()
        if name.endswith(".parquet") or name.endswith(".pq"):
            return pl.read_parquet(p)
        if is_csv(name):
            sep = "\t" if ".tsv" in name else sniff_delimiter(p, what)
            return pl.read_csv(p, infer_schema=False, separator=sep, quote_char='"')
    except SegmenterError:
        raise
    except Exception as exc:
        raise SegmenterError(
            f"{what} '{p}' could not be read as {_kind(p)}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    raise SegmenterError(
        f"{what} '{p}' has an unknown file type; expected .parquet, .csv, .csv.gz, .tsv "
        f"or a folder of .parquet shards"
    )


def _kind(p: Path) -> str:
    name = p.name.lower()
    return "parquet" if name.endswith((".parquet", ".pq")) or p.is_dir() else "CSV"


def fingerprint_paths(*paths: str | os.PathLike[str] | None) -> str:
    """sha256 over the bytes of the given files (folders: their parquet shards in order)."""
    digest = hashlib.sha256()
    for path in paths:
        if path is None:
            continue
        p = Path(path)
        files = sorted(p.glob("*.parquet")) if p.is_dir() else [p]
        for f in files:
            digest.update(f.name.encode())
            with open(f, "rb") as fh:
                while block := fh.read(1 << 20):
                    digest.update(block)
    return digest.hexdigest()


def load_events(
    path: str | os.PathLike[str] | pl.DataFrame,
    *,
    users: str | os.PathLike[str] | pl.DataFrame | None = None,
    items: str | os.PathLike[str] | pl.DataFrame | None = None,
    columns: Mapping[str, str] | None = None,
    preset: str | None = None,
    drop_invalid: bool = False,
) -> EventData:
    """Load and validate events, joining the optional users and items tables.

    Parameters
    ----------
    path : path or polars.DataFrame
        Events as parquet, CSV(.gz), a folder of parquet shards, or an in-memory frame.
    users, items : path or polars.DataFrame, optional
        Tables keyed by ``user_id`` and ``item_id``.
    columns : mapping, optional
        ``{canonical: their_name}`` renames applied on top of the preset.
    preset : {"online-retail"}, optional
        A named column layout with its own cleaning rules.
    drop_invalid : bool
        Drop rows with a null or empty user id (counted in ``dropped``) instead of failing.

    Returns
    -------
    EventData
    """
    if preset is not None and preset not in PRESETS:
        raise SegmenterError(f"--preset: unknown preset '{preset}'; allowed: {sorted(PRESETS)}")
    mapping = dict(PRESETS.get(preset or "", {}))
    mapping.update(columns or {})
    unknown = sorted(set(mapping) - set(CANONICAL) - {"country"})
    if unknown:
        raise SegmenterError(
            f"--columns: unknown canonical name '{unknown[0]}'; allowed: {[*CANONICAL, 'country']}"
        )
    if isinstance(path, pl.DataFrame):
        raw, source = path, "<frame>"
        fingerprint = hashlib.sha256(raw.hash_rows(seed=0).to_numpy().tobytes()).hexdigest()
    else:
        raw, source = read_table(path, what="input"), str(path)
        fingerprint = fingerprint_paths(
            path, *(p for p in (users, items) if not isinstance(p, pl.DataFrame))
        )
    if raw.height == 0:
        raise SegmenterError(f"input '{source}' is empty: 0 rows; expected one row per event")
    raw = raw.drop(_ROW, strict=False).with_row_index(_ROW)
    dropped: dict[str, int] = {}
    users_frame: pl.DataFrame | None = None
    if preset == "online-retail":
        raw, users_frame, dropped = _online_retail(raw, mapping)
    frame = _rename(raw, mapping, source)
    if "country" in frame.columns:
        # --columns country=THEIRS: a per-user attribute, like the preset's Country
        country = _country_table(frame)
        users_frame = country if users_frame is None else _merge_users(users_frame, country)
    frame = _canonicalize(frame, drop_invalid=drop_invalid, dropped=dropped)
    if items is not None:
        frame = _join_items(frame, _as_frame(items, "items"))
    if users is not None:
        extra = _users_table(_as_frame(users, "users"))
        users_frame = extra if users_frame is None else _merge_users(users_frame, extra)
    for reason, count in dropped.items():
        logger.warning("dropped %d rows: %s", count, reason)
    frame = mask_frame(frame, FREE_TEXT).sort(["user_id", "timestamp"], maintain_order=True)
    if users_frame is not None:
        users_frame = mask_frame(users_frame, [c for c in users_frame.columns if c != "user_id"])
    return EventData(frame, users_frame, dropped, fingerprint, source)


def _as_frame(obj: str | os.PathLike[str] | pl.DataFrame, what: str) -> pl.DataFrame:
    frame = obj if isinstance(obj, pl.DataFrame) else read_table(obj, what=what)
    if frame.height == 0:
        raise SegmenterError(f"{what} table is empty: 0 rows")
    return frame


def _rename(raw: pl.DataFrame, mapping: Mapping[str, str], source: str) -> pl.DataFrame:
    present = [c for c in raw.columns if c != _ROW]
    for canonical, theirs in mapping.items():
        if theirs not in present:
            raise SegmenterError(
                f"--columns: '{canonical}' is mapped to '{theirs}', which is not a column of "
                f"'{source}'; columns present: {preview(present, 20)}"
            )
    # select, not rename: a canonical name that also exists in their table is replaced by the
    # mapped column, and one of their columns may feed two canonical ones
    renamed = raw.select(
        *[pl.col(theirs).alias(canonical) for canonical, theirs in mapping.items()],
        *[c for c in raw.columns if c not in mapping],
    )
    for column in REQUIRED:
        if column not in renamed.columns:
            raise SegmenterError(
                f"input is missing required column '{column}'; columns present: "
                f"{preview(present, 20)}; map yours with --columns {column}=NAME or use --preset"
            )
    return renamed


def _canonicalize(
    frame: pl.DataFrame, *, drop_invalid: bool, dropped: dict[str, int]
) -> pl.DataFrame:
    keep = [c for c in CANONICAL if c in frame.columns]
    frame = frame.select(*keep, _ROW)
    frame = frame.with_columns(normalize_id(frame["user_id"]).alias("user_id"))
    bad = frame["user_id"].is_null() | (frame["user_id"] == "")
    n_bad = int(bad.sum())
    if n_bad:
        if not drop_invalid:
            row = int(frame[_ROW][int(bad.arg_true()[0])])
            raise SegmenterError(
                f"column 'user_id': {n_bad} rows have a null or empty user id (first at row "
                f"{row}); every event needs a customer key, or pass --drop-invalid to drop them"
            )
        frame = frame.filter(~bad)
        dropped["null or empty user_id"] = dropped.get("null or empty user_id", 0) + n_bad
        if frame.height == 0:
            raise SegmenterError("input has no rows left after dropping rows without user_id")
    frame = frame.with_columns(parse_timestamp(frame["timestamp"], rows=frame[_ROW]))
    for column in NUMERIC:
        if column in frame.columns:
            frame = frame.with_columns(parse_number(frame[column], column, rows=frame[_ROW]))
            frame = check_range(frame, column, _ROW, drop_invalid=drop_invalid, dropped=dropped)
    for column in STRINGS[1:]:
        if column in frame.columns:
            frame = frame.with_columns(as_string(frame[column]).alias(column))
    defaults = {
        "event_type": pl.lit("purchase"),
        "quantity": pl.lit(1.0),
    }
    missing = [c for c in CANONICAL if c not in frame.columns]
    frame = frame.with_columns(
        [defaults.get(c, pl.lit(None)).cast(_dtype(c)).alias(c) for c in missing]
    )
    event = pl.col("event_type").str.to_lowercase().str.strip_chars()
    frame = frame.with_columns(
        pl.when(event.is_null() | (event == ""))
        .then(pl.lit("purchase"))
        .otherwise(event)
        .alias("event_type"),
        pl.col("quantity").fill_null(1.0),
    )
    # the contract: a negative quantity means returned
    frame = frame.with_columns(
        pl.when((pl.col("event_type") == "purchase") & (pl.col("quantity") < 0))
        .then(pl.lit("return"))
        .otherwise(pl.col("event_type"))
        .alias("event_type")
    )
    return frame.select(CANONICAL)


def _dtype(column: str) -> type[pl.DataType]:
    if column in NUMERIC:
        return pl.Float64
    if column == "timestamp":
        return pl.Datetime
    return pl.String


def normalize_id(series: pl.Series) -> pl.Series:
    """Customer keys as strings, stripped; a whole number written as a float loses its ".0".

    The rule looks at each key alone: "7", "7.0" and "7.00" are customer "7" whatever the
    other keys of the file are; "7.5", "A.0" and "007" stay as written.
    """
    text = as_string(series).str.strip_chars()
    return text.str.replace(r"^(-?\d+)\.0+$", "${1}")


def _online_retail(
    raw: pl.DataFrame, mapping: dict[str, str]
) -> tuple[pl.DataFrame, pl.DataFrame | None, dict[str, int]]:
    """UCI Online Retail: C-invoices are returns, amount = Quantity x UnitPrice."""
    needed = ["CustomerID", "InvoiceNo", "InvoiceDate", "Quantity", "UnitPrice"]
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        raise SegmenterError(
            f"--preset online-retail: input is missing column '{missing[0]}'; expected the UCI "
            f"Online Retail layout {[*needed, 'StockCode', 'Description', 'Country']}"
        )
    cid = raw["CustomerID"]
    no_id = cid.is_null() | (as_string(cid).str.strip_chars() == "")
    dropped = {"online-retail: no CustomerID": int(no_id.sum())} if no_id.any() else {}
    raw = raw.filter(~no_id)
    qty = parse_number(raw["Quantity"], "Quantity", rows=raw[_ROW])
    price = parse_number(raw["UnitPrice"], "UnitPrice", rows=raw[_ROW])
    invoice = as_string(raw["InvoiceNo"])
    is_return = invoice.str.starts_with("C") | (qty < 0)
    raw = raw.with_columns(
        pl.Series("Quantity", qty),
        pl.Series("amount", qty * price),
        pl.when(pl.Series(is_return))
        .then(pl.lit("return"))
        .otherwise(pl.lit("purchase"))
        .alias("event_type"),
        as_string(raw["CustomerID"]).alias("CustomerID"),
    )
    mapping.setdefault("amount", "amount")
    mapping.setdefault("event_type", "event_type")
    users = None
    if "Country" in raw.columns:
        users = (
            raw.group_by("CustomerID")
            .agg(pl.col("Country").drop_nulls().mode().sort().first().alias("country"))
            .rename({"CustomerID": "user_id"})
        )
        users = users.with_columns(normalize_id(users["user_id"]).alias("user_id")).sort("user_id")
    return raw, users, dropped


def _country_table(frame: pl.DataFrame) -> pl.DataFrame:
    """``user_id`` and each user's most common country (ties: alphabetical)."""
    table = pl.DataFrame(
        {
            "user_id": normalize_id(frame["user_id"]),
            "country": as_string(frame["country"]).str.strip_chars(),
        }
    ).filter(pl.col("user_id").is_not_null() & (pl.col("user_id") != ""))
    return (
        table.group_by("user_id")
        .agg(pl.col("country").drop_nulls().mode().sort().first())
        .sort("user_id")
    )


def _users_table(users: pl.DataFrame) -> pl.DataFrame:
    if "user_id" not in users.columns:
        raise SegmenterError(
            f"users table is missing column 'user_id'; columns present: {preview(users.columns)}"
        )
    users = users.with_columns(normalize_id(users["user_id"]).alias("user_id"))
    return users.unique("user_id", keep="first", maintain_order=True)


def _merge_users(base: pl.DataFrame, extra: pl.DataFrame) -> pl.DataFrame:
    overlap = [c for c in extra.columns if c in base.columns and c != "user_id"]
    return base.join(extra.drop(overlap), on="user_id", how="full", coalesce=True)


def _join_items(events: pl.DataFrame, items: pl.DataFrame) -> pl.DataFrame:
    """Fill item_name / category (and the amount of purchases and returns from price)."""
    if "item_id" not in items.columns:
        raise SegmenterError(
            f"items table is missing column 'item_id'; columns present: {preview(items.columns)}"
        )
    cols = [c for c in ITEM_COLUMNS if c in items.columns]
    table = items.select(
        as_string(items["item_id"]).alias("item_id"),
        *[
            parse_number(items[c], c) if c == "price" else as_string(items[c]).alias(c)
            for c in cols
        ],
    ).unique("item_id", keep="first")
    table = table.rename({c: f"_item_{c}" for c in cols})
    joined = (
        events.with_row_index("_row")
        .join(table, on="item_id", how="left")
        .sort("_row")  # a join does not promise to keep the order of the events
    )
    fills = []
    for column in ("item_name", "category"):
        if column in cols:
            fills.append(pl.coalesce(pl.col(column), pl.col(f"_item_{column}")).alias(column))
    if "price" in cols:
        # only money that changed hands: a view or a review of the item has no amount
        paid = pl.col("event_type").is_in(["purchase", "return"])
        fills.append(
            pl.when(paid)
            .then(pl.coalesce(pl.col("amount"), pl.col("_item_price") * pl.col("quantity")))
            .otherwise(pl.col("amount"))
            .alias("amount")
        )
    joined = joined.with_columns(fills)
    return joined.select(CANONICAL)
