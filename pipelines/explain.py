"""Explain a run: why a customer is in its segment, and what defines each segment.

python -m pipelines.explain reports/q3 --customer C0000042
python -m pipelines.explain reports/q3 --customer C0000042 --against 3 --json
python -m pipelines.explain reports/q3 --all      # explanations.parquet + definitions.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pipelines._cli import cache_from_args, run_cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipelines.explain",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by pipelines.discover")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--customer", default=None, help="user id of the customer to explain")
    what.add_argument("--all", action="store_true", help="explain every customer and segment "
                      "into RUN_DIR/explanations.parquet and RUN_DIR/definitions.json")  # fmt: skip
    p.add_argument("--against", type=int, default=None,
                   help="explain against this segment id instead of the runner-up")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the explanation as JSON")
    p.add_argument("--seed", type=int, default=0, help="seed of the surrogates' held-out split")
    p.add_argument("--cache", default=None, help="embedding cache folder")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument("--quiet", action="store_true", help="no progress bars, only warnings")
    return p


def main(args: argparse.Namespace) -> int:
    from segmenter.errors import SegmenterError
    from segmenter.explain.run import load_explainer, write_explanations

    if args.against is not None and args.all:
        raise SegmenterError("--against: applies to --customer only, not to --all")
    explainer = load_explainer(args.run_dir, cache=cache_from_args(args), progress=not args.quiet)
    if args.all:
        from segmenter.report import write_report

        for path in write_explanations(args.run_dir, explainer, seed=args.seed):
            print(path)
        if (Path(args.run_dir) / "report.html").exists():
            print(write_report(args.run_dir))  # the report shows rules, reasons, a search box
        return 0
    explanation = explainer.explain(args.customer, against=args.against)
    if args.json:
        json.dump(explanation.to_dict(), sys.stdout, ensure_ascii=False, indent=1)
        print()
    else:
        print(explanation.text())
    return 0


def cli(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 with a one-line error on bad input)."""
    return run_cli(build_parser(), main, argv)


if __name__ == "__main__":
    raise SystemExit(cli())
