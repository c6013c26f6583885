"""Shared CLI plumbing: data options, logging set-up, one-line errors with exit code 2."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from segmenter.errors import SegmenterError

if TYPE_CHECKING:
    from segmenter.data import EventData
    from segmenter.embed import EmbeddingCache

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"


def passive_threads() -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` unless the caller set it, before torch, faiss or numba start
    OpenMP: idle threads that spin make every stage several times slower when other jobs share
    the cores (FAISS k-means on a few thousand customers: 40x, see BENCHMARKS.md)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def configure_logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("faiss", "sentence_transformers", "transformers", "numba", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if quiet:
        os.environ["TQDM_DISABLE"] = "1"
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except ImportError:  # pragma: no cover - transformers is a dependency
            pass


def add_data_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("input")
    g.add_argument("--input", default=None, help="events: parquet, CSV(.gz), a parquet folder, "
                   "a DuckDB file (.duckdb) or postgresql://USER:PASSWORD@HOST/DB with --table "
                   "or --query (default: the shipped sample_data/)")  # fmt: skip
    g.add_argument("--table", default=None, help="database --input: the events table")
    g.add_argument("--query", default=None, help="database --input: a SELECT giving the events")
    g.add_argument("--users", default=None, help="optional users table (user_id + attributes)")
    g.add_argument("--items", default=None, help="optional items table (item_id + name, ...)")
    g.add_argument("--columns", default=None, help="rename columns: canonical=theirs,...")
    g.add_argument("--preset", default=None, help="named input layout, e.g. online-retail")
    g.add_argument(
        "--drop-invalid",
        action="store_true",
        help="drop rows without user id or with a NaN, infinite or absurd number (counted)",
    )
    g.add_argument("--as-of", default=None, help="date the data is seen from (default: today); "
                   "later events are left out with a warning")  # fmt: skip
    g.add_argument("--dedupe", action="store_true", help="drop exact duplicate rows (counted)")
    g.add_argument("--cache", default=None, help="embedding cache folder "
                   "(default: $SEGMENTER_CACHE or ~/.cache/segmenter/embeddings)")  # fmt: skip
    g.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    parser.add_argument("--quiet", action="store_true", help="no progress bars, only warnings")


def load_from_args(args: argparse.Namespace) -> EventData:
    from segmenter.data import load_events, parse_columns
    from segmenter.sanity import check_events, parse_as_of
    from segmenter.sources import is_database, read_database, redact

    users, items, source = args.users, args.items, args.input
    table, query = getattr(args, "table", None), getattr(args, "query", None)
    as_of = parse_as_of(args.as_of) if args.as_of else None
    database = is_database(source)
    if not database and (table is not None or query is not None):
        flag = "--table" if table is not None else "--query"
        raise SegmenterError(
            f"{flag} needs a database --input (postgresql://... or a .duckdb file); got "
            f"'{source or 'sample_data'}'"
        )
    if source is None:
        source = SAMPLE_DATA / "events.parquet"
        users = users or SAMPLE_DATA / "users.parquet"
        items = items or SAMPLE_DATA / "items.parquet"
    data = load_events(
        read_database(str(source), table=table, query=query) if database else source,
        users=users,
        items=items,
        columns=parse_columns(args.columns),
        preset=args.preset,
        drop_invalid=args.drop_invalid,
    )
    if database:
        data.source = redact(str(source))  # never the password
    return check_events(data, as_of=as_of, dedupe=args.dedupe)


def cache_from_args(args: argparse.Namespace) -> EmbeddingCache | None:
    from segmenter.embed import EmbeddingCache
    from segmenter.outputs import check_cache

    if args.no_cache:
        return None
    root = args.cache or os.environ.get("SEGMENTER_CACHE")
    if root is None:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(base) / "segmenter" / "embeddings"
    check_cache(root, option="--cache" if args.cache else "cache folder")
    return EmbeddingCache(root)


def input_paths(args: argparse.Namespace) -> list[str | Path]:
    """Every file or folder the run reads (none of them may be an output); a PostgreSQL URL
    is not a path (a DuckDB file is)."""
    from segmenter.sources import POSTGRES_SCHEMES

    url = str(args.input or "").startswith(POSTGRES_SCHEMES)
    given = [None if url else args.input, args.users, args.items]
    if args.input is None:
        given += [SAMPLE_DATA]
    return [p for p in given if p is not None]


def run_cli(
    parser: argparse.ArgumentParser,
    main: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse, configure logging, run; a :class:`SegmenterError` becomes one line and exit 2."""
    passive_threads()
    args = parser.parse_args(argv)
    configure_logging(getattr(args, "quiet", False))
    try:
        return main(args)
    except SegmenterError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; no output was written", file=sys.stderr)
        return 130
