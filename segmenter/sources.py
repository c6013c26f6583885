"""Events from a database and segments into one: PostgreSQL (polars + ConnectorX to read,
psycopg to write) and DuckDB files (the embedded default; no server needed).

``--input postgresql://user:pw@host/db --table events`` (or ``--query "SELECT ..."``),
``--input shop.duckdb --table events``; ``--export postgresql://user:pw@host/db/TABLE`` or
``--export shop.duckdb/TABLE`` upserts the assignments by ``user_id`` in one transaction.
Every failure is a one-line :class:`~segmenter.errors.SegmenterError`; a URI's password is never
printed.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import polars as pl

from segmenter.errors import SegmenterError

logger = logging.getLogger(__name__)

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
DUCKDB_SUFFIXES = (".duckdb", ".ddb")
#: ``table`` or ``schema.table``: unquoted SQL identifiers only (no injection through a name)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
#: the columns a CRM reads, in this order, with their SQL types
EXPORT_COLUMNS: dict[str, str] = {
    "user_id": "TEXT",
    "segment": "BIGINT",
    "segment_name": "TEXT",
    "confidence": "DOUBLE PRECISION",
    "distance": "DOUBLE PRECISION",
    "value_tier": "BIGINT",
    "taste_group": "BIGINT",
    "run_id": "TEXT",
    "run_date": "TIMESTAMP",
}


def is_database(source: str | Path | None) -> bool:
    """A PostgreSQL URI or a DuckDB file (``.duckdb``/``.ddb``), as ``--input`` accepts."""
    text = str(source or "")
    return text.startswith(POSTGRES_SCHEMES) or text.lower().endswith(DUCKDB_SUFFIXES)


def redact(uri: str) -> str:
    """``uri`` with its password replaced by ``***`` (for every message and log line)."""
    if not uri.startswith(POSTGRES_SCHEMES):
        return uri
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _scrub(message: str, uri: str) -> str:
    """First line of a driver's message with the URI's password taken out."""
    line = (message.strip().splitlines() or [""])[0]
    password = urlsplit(uri).password if uri.startswith(POSTGRES_SCHEMES) else None
    return line.replace(password, "***") if password else line


def check_identifier(name: str, option: str) -> str:
    if not _IDENTIFIER.match(name):
        raise SegmenterError(
            f"{option}: '{name}' is not a table name; expected letters, digits and _ "
            f"(optionally schema.table)"
        )
    return name


def read_database(
    source: str, *, table: str | None = None, query: str | None = None
) -> pl.DataFrame:
    """The rows of ``table`` (or of ``query``) at ``source``, as a polars frame.

    Parameters
    ----------
    source : str
        ``postgresql://user:password@host:port/db`` or the path of a DuckDB file.
    table, query : str, optional
        Exactly one: a table name (``schema.table`` allowed) or a SELECT statement.
    """
    if (table is None) == (query is None):
        raise SegmenterError(
            f"--input '{redact(source)}' is a database: give exactly one of --table or --query"
        )
    sql = (
        query if query is not None else f"SELECT * FROM {check_identifier(table or '', '--table')}"
    )
    what = f"--table '{table}'" if table is not None else "--query"
    if source.startswith(POSTGRES_SCHEMES):
        frame = _read_postgres(source, sql, what)
    else:
        frame = _read_duckdb(Path(source), sql, what)
    logger.info("read %d rows from %s", frame.height, redact(source))
    return frame


def _read_postgres(uri: str, sql: str, what: str) -> pl.DataFrame:
    import psycopg

    uri = uri.replace("postgres://", "postgresql://", 1)
    try:  # a quick first connection: ConnectorX's pool retries a refused login for 30 s
        psycopg.connect(uri, connect_timeout=10).close()
    except psycopg.Error as exc:
        raise SegmenterError(
            f"--input '{redact(uri)}': could not connect: {_scrub(str(exc), uri)}"
        ) from None
    try:
        return pl.read_database_uri(sql, uri, engine="connectorx")
    except Exception as exc:
        raise SegmenterError(
            f"--input '{redact(uri)}': could not read {what}: {_scrub(str(exc), uri)}"
        ) from None


def _read_duckdb(path: Path, sql: str, what: str) -> pl.DataFrame:
    import duckdb

    if not path.is_file():
        raise SegmenterError(f"--input '{path}' does not exist; expected a DuckDB file")
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            return con.sql(sql).pl()
    except duckdb.Error as exc:
        raise SegmenterError(
            f"--input '{path}': could not read {what}: {_scrub(str(exc), '')}"
        ) from None


@dataclass(frozen=True)
class ExportTarget:
    """Where ``--export`` writes: a PostgreSQL database or a DuckDB file, and the table."""

    kind: Literal["postgres", "duckdb"]
    location: str
    table: str

    @classmethod
    def parse(cls, target: str) -> ExportTarget:
        """``postgresql://user:pw@host/db/TABLE`` or ``shop.duckdb/TABLE``."""
        head, _, table = target.rstrip("/").rpartition("/")
        if target.startswith(POSTGRES_SCHEMES):
            if urlsplit(head).path.strip("/") == "":
                raise SegmenterError(
                    f"--export '{redact(target)}': expected postgresql://user:password@host/"
                    f"DATABASE/TABLE"
                )
            return cls("postgres", head, check_identifier(table, "--export"))
        if head.lower().endswith(DUCKDB_SUFFIXES):
            return cls("duckdb", head, check_identifier(table, "--export"))
        raise SegmenterError(
            f"--export '{redact(target)}' is not a database table; expected "
            f"postgresql://user:password@host/DATABASE/TABLE or FILE.duckdb/TABLE"
        )


def export_rows(assignments: pl.DataFrame, *, run_id: str, run_date: datetime) -> pl.DataFrame:
    """The rows ``--export`` writes: the assignment columns plus run id and date."""
    missing = [c for c in list(EXPORT_COLUMNS)[:7] if c not in assignments.columns]
    if missing:
        raise SegmenterError(f"--export: assignments lack column '{missing[0]}'")
    return assignments.select(list(EXPORT_COLUMNS)[:7]).with_columns(
        pl.col("confidence").cast(pl.Float64),
        pl.col("distance").cast(pl.Float64),
        pl.lit(run_id).alias("run_id"),
        pl.lit(run_date.replace(tzinfo=None)).cast(pl.Datetime("us")).alias("run_date"),
    )


def export_assignments(
    assignments: pl.DataFrame, target: str | ExportTarget, *, run_id: str, run_date: datetime
) -> int:
    """Upsert ``assignments`` by ``user_id`` into the target table in one transaction.

    The table is created when absent (primary key ``user_id``); customers not in this run keep
    their row. Any failure rolls back: the table is left as it was.

    Returns
    -------
    int
        Rows written.
    """
    where = target if isinstance(target, ExportTarget) else ExportTarget.parse(target)
    rows = export_rows(assignments, run_id=run_id, run_date=run_date)
    if where.kind == "postgres":
        _export_postgres(rows, where)
    else:
        _export_duckdb(rows, where)
    logger.info(
        "exported %d assignments to %s table %s", rows.height, redact(where.location), where.table
    )
    return rows.height


def _ddl(table: str) -> str:
    columns = ", ".join(f"{name} {kind}" for name, kind in EXPORT_COLUMNS.items())
    return f"CREATE TABLE IF NOT EXISTS {table} ({columns}, PRIMARY KEY (user_id))"


def _upsert_sql(table: str, staged: str) -> str:
    names = ", ".join(EXPORT_COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in list(EXPORT_COLUMNS)[1:])
    return (
        f"INSERT INTO {table} ({names}) SELECT {names} FROM {staged} "
        f"ON CONFLICT (user_id) DO UPDATE SET {updates}"
    )


def _upsert(cursor: Any, table: str, staged: str) -> None:
    """The one statement that changes the target (a seam where tests inject a failure)."""
    cursor.execute(_upsert_sql(table, staged))


def _export_postgres(rows: pl.DataFrame, where: ExportTarget) -> None:
    import psycopg

    uri = where.location.replace("postgres://", "postgresql://", 1)
    try:
        with psycopg.connect(uri, connect_timeout=10) as con, con.cursor() as cur:
            # psycopg's connection block is one transaction: committed at the end, rolled back
            # on any exception
            cur.execute(_ddl(where.table))
            cur.execute(
                f"CREATE TEMP TABLE segmenter_staged (LIKE {where.table} INCLUDING DEFAULTS) "
                f"ON COMMIT DROP"
            )
            with cur.copy(f"COPY segmenter_staged ({', '.join(EXPORT_COLUMNS)}) FROM STDIN") as cp:
                for record in rows.iter_rows():
                    cp.write_row(record)
            _upsert(cur, where.table, "segmenter_staged")
    except psycopg.Error as exc:
        raise SegmenterError(
            f"--export '{redact(where.location)}/{where.table}': nothing written: "
            f"{_scrub(str(exc), where.location)}"
        ) from None


def _export_duckdb(rows: pl.DataFrame, where: ExportTarget) -> None:
    import duckdb

    try:
        with duckdb.connect(where.location) as con:
            con.begin()
            try:
                con.execute(_ddl(where.table).replace("DOUBLE PRECISION", "DOUBLE"))
                con.register("segmenter_staged", rows.to_arrow())
                _upsert(con, where.table, "segmenter_staged")
            except BaseException:
                con.rollback()
                raise
            con.commit()
    except duckdb.Error as exc:
        raise SegmenterError(
            f"--export '{where.location}/{where.table}': nothing written: {_scrub(str(exc), '')}"
        ) from None
