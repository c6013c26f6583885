"""Events from databases and segments into them: DuckDB always, PostgreSQL against a real server
when one is installed (``.ci/run`` installs Debian's ``postgresql``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import psycopg
import pytest

from benchmarks.postgres import EVENTS_TABLE, PASSWORD, postgres_bin, temporary_server
from pipelines import assign
from pipelines._cli import load_from_args
from segmenter import sources
from segmenter.data import load_events
from segmenter.errors import SegmenterError
from segmenter.sources import export_assignments, read_database

RUN_DATE = datetime(2026, 1, 2, 3, 4, 5)


def _assignments(users: list[str], segment: int) -> pl.DataFrame:
    n = len(users)
    return pl.DataFrame(
        {
            "user_id": users,
            "segment": [segment] * n,
            "segment_name": [f"segment {segment}"] * n,
            "confidence": pl.Series([0.5] * n, dtype=pl.Float32),
            "distance": pl.Series([1.5] * n, dtype=pl.Float32),
            "map_x": [0.0] * n,
            "value_tier": [1] * n,
            "taste_group": [0] * n,
        }
    )


@pytest.fixture(scope="module")
def shop(small_tables: dict[str, pl.DataFrame], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("duck") / "shop.duckdb"
    events = small_tables["events"]
    with duckdb.connect(str(path)) as con:
        con.register("frame", events.to_arrow())
        con.execute("CREATE TABLE events AS SELECT * FROM frame")
        con.execute("CREATE TABLE no_time AS SELECT user_id, amount FROM frame")
    return path


def _args(*argv: str) -> Any:
    return assign.build_parser().parse_args(["--model", "m", "--out", "o.parquet", *argv])


def test_duckdb_events_load_like_the_same_parquet(
    shop: Path, small_tables: dict[str, pl.DataFrame]
) -> None:
    data = load_from_args(_args("--input", str(shop), "--table", "events"))
    assert data.events.equals(load_events(small_tables["events"]).events)
    assert data.source == str(shop)
    query = "SELECT * FROM events WHERE event_type = 'purchase'"
    some = load_from_args(_args("--input", str(shop), "--query", query))
    assert set(some.events["event_type"].unique()) <= {"purchase", "return"}
    assert 0 < some.events.height < data.events.height


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--table", "missing"], r"could not read --table 'missing': .*missing"),
        (["--table", "events; DROP TABLE events"], "is not a table name"),
        (["--table", "no_time"], "missing required column 'timestamp'"),
        ([], "give exactly one of --table or --query"),
        (["--table", "events", "--query", "SELECT 1"], "exactly one of --table or --query"),
        (["--query", "SELECT nope FROM events"], "could not read --query: .*nope"),
    ],
)
def test_duckdb_input_errors_are_one_line(
    shop: Path, argv: list[str], match: str, small_tables: dict[str, pl.DataFrame]
) -> None:
    with pytest.raises(SegmenterError, match=match) as info:
        load_from_args(_args("--input", str(shop), *argv))
    assert "\n" not in str(info.value)
    with duckdb.connect(str(shop), read_only=True) as con:  # the input is never changed
        count = con.execute("SELECT count(*) FROM events").fetchall()
    assert count == [(small_tables["events"].height,)]


def test_input_option_errors(tmp_path: Path) -> None:
    with pytest.raises(SegmenterError, match="does not exist; expected a DuckDB file"):
        load_from_args(_args("--input", str(tmp_path / "absent.duckdb"), "--table", "events"))
    assert not (tmp_path / "absent.duckdb").exists()
    with pytest.raises(SegmenterError, match="--table needs a database --input"):
        load_from_args(_args("--table", "events"))
    for target, match in [
        ("segments.parquet/x", "not a database table"),
        (f"{tmp_path}/a.duckdb/bad-name", "is not a table name"),
        ("postgresql://u:pw@h/segments", "DATABASE/TABLE"),
    ]:
        with pytest.raises(SegmenterError, match=match) as info:
            sources.ExportTarget.parse(target)
        assert "pw" not in str(info.value)


def test_duckdb_export_upserts_by_user_id(tmp_path: Path) -> None:
    target = f"{tmp_path}/crm.duckdb/segments"
    assert export_assignments(_assignments(["a", "b"], 1), target, run_id="r1", run_date=RUN_DATE)
    export_assignments(_assignments(["b", "c"], 2), target, run_id="r2", run_date=RUN_DATE)
    with duckdb.connect(f"{tmp_path}/crm.duckdb", read_only=True) as con:
        rows = con.sql(
            "SELECT user_id, segment, run_id, run_date FROM segments ORDER BY 1"
        ).fetchall()
    assert rows == [("a", 1, "r1", RUN_DATE), ("b", 2, "r2", RUN_DATE), ("c", 2, "r2", RUN_DATE)]


def _fail_after_writing(monkeypatch: pytest.MonkeyPatch, error: type[Exception]) -> None:
    real = sources._upsert

    def upsert_then_fail(cursor: Any, table: str, staged: str) -> None:
        real(cursor, table, staged)  # the rows are in the table, inside the transaction
        raise error("injected failure mid-export")

    monkeypatch.setattr(sources, "_upsert", upsert_then_fail)


def test_failed_duckdb_export_leaves_the_old_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = f"{tmp_path}/crm.duckdb/segments"
    export_assignments(_assignments(["a", "b"], 1), target, run_id="r1", run_date=RUN_DATE)
    _fail_after_writing(monkeypatch, duckdb.IOException)
    with pytest.raises(SegmenterError, match="nothing written: injected failure"):
        export_assignments(_assignments(["b", "c"], 2), target, run_id="r2", run_date=RUN_DATE)
    with duckdb.connect(f"{tmp_path}/crm.duckdb", read_only=True) as con:
        rows = con.sql("SELECT user_id, segment, run_id FROM segments ORDER BY 1").fetchall()
    assert rows == [("a", 1, "r1"), ("b", 1, "r1")]


# -- PostgreSQL ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def postgres(small_tables: dict[str, pl.DataFrame]) -> Iterator[str]:
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL is not installed (no initdb in $SEGMENTER_TEST_POSTGRES, on the PATH or "
            "in /usr/lib/postgresql/*/bin); .ci/run installs Debian's postgresql"
        )
    with temporary_server(bin_dir) as uri:
        with psycopg.connect(uri) as con, con.cursor() as cur:
            cur.execute(EVENTS_TABLE)
            with cur.copy("COPY events FROM STDIN") as copy:
                for row in small_tables["events"].iter_rows():
                    copy.write_row(row)
        yield uri


def test_postgres_events_load_like_the_same_parquet(
    postgres: str, small_tables: dict[str, pl.DataFrame]
) -> None:
    data = load_from_args(_args("--input", postgres, "--table", "events"))
    assert data.events.equals(load_events(small_tables["events"]).events)
    assert PASSWORD not in data.source and "***" in data.source
    query = "SELECT user_id, timestamp, amount FROM events WHERE amount > 50"
    some = load_from_args(_args("--input", postgres, "--query", query))
    assert some.events["amount"].min() > 50  # type: ignore[operator]


@pytest.mark.parametrize(
    ("change", "table", "match"),
    [
        ((PASSWORD, "wrong-password"), "events", "could not connect: .*password authentication"),
        (("/shop", "/absent"), "events", 'could not connect: .*database "absent" does not exist'),
        ((":", ":"), "missing", r'could not read --table \'missing\'.*"missing" does not exist'),
    ],
)
def test_postgres_errors_are_one_line_without_the_password(
    postgres: str, change: tuple[str, str], table: str, match: str
) -> None:
    uri = postgres.replace(*change)
    with pytest.raises(SegmenterError, match=match) as info:
        read_database(uri, table=table)
    message = str(info.value)
    assert "\n" not in message and PASSWORD not in message and "wrong-password" not in message


def test_unreachable_postgres_is_one_line(postgres: str) -> None:
    port = postgres.rsplit(":", 1)[1].split("/")[0]
    with pytest.raises(SegmenterError, match=r"could not connect: .*refused") as info:
        read_database(postgres.replace(f":{port}/", ":1/"), table="events")
    assert PASSWORD not in str(info.value)


def _pg_rows(uri: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(uri) as con:
        return con.execute(
            "SELECT user_id, segment, run_id FROM crm.segments ORDER BY 1"
        ).fetchall()


def test_postgres_export_upserts_and_a_failure_leaves_the_old_rows(
    postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(postgres) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS crm")
    target = f"{postgres}/crm.segments"
    export_assignments(_assignments(["a", "b"], 1), target, run_id="r1", run_date=RUN_DATE)
    export_assignments(_assignments(["b", "c"], 2), target, run_id="r2", run_date=RUN_DATE)
    assert _pg_rows(postgres) == [("a", 1, "r1"), ("b", 2, "r2"), ("c", 2, "r2")]
    _fail_after_writing(monkeypatch, psycopg.OperationalError)
    with pytest.raises(SegmenterError, match="nothing written: injected failure") as info:
        export_assignments(_assignments(["a", "d"], 3), target, run_id="r3", run_date=RUN_DATE)
    assert PASSWORD not in str(info.value)
    assert _pg_rows(postgres) == [("a", 1, "r1"), ("b", 2, "r2"), ("c", 2, "r2")]
