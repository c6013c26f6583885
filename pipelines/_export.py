"""``--export``: the assignments of a run upserted into a database table (CLI plumbing)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

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


def export_target(args: argparse.Namespace) -> ExportTarget | None:
    """``--export`` parsed (checked before any work starts), or ``None``."""
    from segmenter.sources import ExportTarget

    return ExportTarget.parse(args.export) if args.export else None


def export_assignments(target: ExportTarget | None, assignments: pl.DataFrame, run_id: str) -> None:
    from datetime import datetime, timezone

    from segmenter.sources import export_assignments as export

    if target is not None:
        n = export(assignments, target, run_id=run_id, run_date=datetime.now(timezone.utc))
        print(f"exported {n} assignments -> {target.table}")
