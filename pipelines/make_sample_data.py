"""Generate synthetic events with planted segments.

python -m pipelines.make_sample_data                      # the committed sample_data/
python -m pipelines.make_sample_data --customers 100000 --out reports/synthetic-100k
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipelines._cli import run_cli
from segmenter import io
from segmenter.synthetic import generate

logger = logging.getLogger("pipelines.make_sample_data")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.make_sample_data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--customers", type=int, default=3000, help="number of customers")
    parser.add_argument("--seed", type=int, default=7, help="seed of every random draw")
    parser.add_argument(
        "--noise",
        type=float,
        default=0.25,
        help="share of category draws from the global mix (0..1)",
    )
    parser.add_argument("--out", default="sample_data", help="output folder")
    parser.add_argument("--quiet", action="store_true", help="only errors")
    return parser


def main(args: argparse.Namespace) -> int:
    from segmenter.errors import SegmenterError

    if args.customers < 1:
        raise SegmenterError(f"--customers={args.customers} should be >= 1")
    if not 0.0 <= args.noise <= 1.0:
        raise SegmenterError(f"--noise={args.noise} should be between 0 and 1")
    tables = generate(args.customers, seed=args.seed, noise=args.noise)
    out = Path(args.out)
    for name, frame in tables.items():
        io.write_parquet(frame, out / f"{name}.parquet")
        logger.info("wrote %s (%d rows)", out / f"{name}.parquet", frame.height)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(build_parser(), main))
