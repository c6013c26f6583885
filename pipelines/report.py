"""Rebuild report.html from a run folder, without re-encoding anything.

python -m pipelines.report reports/20250101-120000
python -m pipelines.report runs/a --max-points 50000
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pipelines._cli import run_cli


def build_parser() -> argparse.ArgumentParser:
    from segmenter.report import MAX_POINTS

    p = argparse.ArgumentParser(
        prog="python -m pipelines.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by pipelines.discover")
    p.add_argument(
        "--max-points",
        type=int,
        default=MAX_POINTS,
        help=f"customers drawn on the map, a stratified sample (default {MAX_POINTS:,})",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the map sample")
    p.add_argument("--quiet", action="store_true", help="only warnings")
    return p


def main(args: argparse.Namespace) -> int:
    from segmenter.errors import SegmenterError
    from segmenter.report import write_report

    if args.max_points < 1:
        raise SegmenterError(f"--max-points: {args.max_points} should be >= 1")
    out = write_report(args.run_dir, max_points=args.max_points, seed=args.seed)
    print(out)
    return 0


def cli(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 with a one-line error on bad input)."""
    return run_cli(build_parser(), main, argv)


if __name__ == "__main__":
    raise SystemExit(cli())
