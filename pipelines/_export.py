"""``--export``: the assignments of a run upserted into a database table (CLI plumbing)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from segmenter.errors import SegmenterError

if TYPE_CHECKING:
    import polars as pl

    from segmenter.sources import ExportTarget


def add_export_arg(parser: argparse._ActionsContainer) -> None:
    parser.add_argument(
        "--export",
        default=None,
        metavar="TARGET",
        help="also upsert the assignments by user_id into a database table: "
        "postgresql://USER:PASSWORD@HOST/DB/TABLE or FILE.duckdb/TABLE",
    )


def export_target(args: argparse.Namespace, out: Path | None = None) -> ExportTarget | None:
    """``--export`` parsed (checked before any work starts), or ``None``. A DuckDB file may not
    be an input file (the input is never changed) nor lie inside ``out`` (replaced with
    ``--force``)."""
    from segmenter.sources import ExportTarget

    if not args.export:
        return None
    target = ExportTarget.parse(args.export)
    if target.kind == "duckdb":
        file = Path(target.location).resolve()
        inputs = [Path(p).resolve() for p in (args.input, args.users, args.items) if p]
        if file in inputs:
            raise SegmenterError(f"--export: '{target.location}' is an input file; the input is "
                                 "never changed: export to another DuckDB file")  # fmt: skip
        if out is not None and file.is_relative_to(out.resolve()):
            raise SegmenterError(f"--export: '{target.location}' is inside --out '{out}', which "
                                 "a later run replaces: export outside it")  # fmt: skip
    return target


def export_assignments(target: ExportTarget | None, assignments: pl.DataFrame, run_id: str) -> None:
    from datetime import datetime, timezone

    from segmenter.sources import export_assignments as export

    if target is not None:
        try:
            n = export(assignments, target, run_id=run_id, run_date=datetime.now(timezone.utc))
        except SegmenterError as exc:  # the run's files are written: say so
            raise SegmenterError(f"the output is written, but the export failed: {exc}") from None
        print(f"exported {n} assignments -> {target.table}")
