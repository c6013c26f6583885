"""Measure what the project is for: segment quality on real data, recovery, speed, memory.

    python -m pipelines.benchmark                      # quick suite (< 10 min, warm cache)
    python -m pipelines.benchmark --suite full         # + 100k customers, sweep, classify, deep
    python -m pipelines.benchmark --cold-cache         # the time of a first run
    python -m pipelines.benchmark --section balance    # one section alone (issue 13's table)
    python -m pipelines.benchmark --from-json reports/benchmarks/2026-11-29-quick.json

Runs the top-level benchmarks/ package of a repository checkout (not installed with the
library: run from the repository root). Writes reports/benchmarks/<date>-<suite>.json and
rewrites the suite's section of BENCHMARKS.md from that JSON (the smoke suite, for tests,
leaves BENCHMARKS.md alone unless --markdown is given).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import shlex
import sys
from pathlib import Path

from pipelines._cli import run_cli
from segmenter.errors import SegmenterError

logger = logging.getLogger("pipelines.benchmark")

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "reports" / "benchmarks"
DEFAULT_MARKDOWN = REPO_ROOT / "BENCHMARKS.md"


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (checked in :func:`main`, one-line errors)."""
    p = argparse.ArgumentParser(
        prog="python -m pipelines.benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--suite", default="quick", help="quick, full, or smoke (tiny, for tests)")
    p.add_argument(
        "--section",
        action="append",
        default=None,
        help="run only this section (repeatable: balance, speed, latency); suite sizes",
    )
    p.add_argument("--seed", type=int, default=0, help="seed; stability compares it with +1")
    p.add_argument("--out", default=None, help=f"results folder (default: {DEFAULT_OUT})")
    p.add_argument("--cache", default=None, help="embedding cache (default: <out>/.cache)")
    p.add_argument(
        "--cold-cache",
        action="store_true",
        help="start from an empty cache (a first run's time; still fills --cache for the next)",
    )
    p.add_argument("--markdown", default=None, help=f"file to update (default: {DEFAULT_MARKDOWN})")
    p.add_argument("--no-markdown", action="store_true", help="do not touch BENCHMARKS.md")
    p.add_argument("--from-json", default=None, help="only re-render the Markdown of a result")
    p.add_argument(
        "--encoder",
        default="default",
        help="'default' (packaged MiniLM) or module:callable returning an Encoder (tests)",
    )
    p.add_argument(
        "--customers",
        type=int,
        default=None,
        help="customers of the sections measured at one size (ray_scale; default: the suite's)",
    )
    p.add_argument(
        "--ray-runs",
        default=None,
        help="comma-separated runs of the ray_scale section (default: all of "
        "local, ray_1_actor, ray_2_actors, ray_2_actors_quarter_sample)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars, only warnings")
    return p


def main(args: argparse.Namespace) -> int:
    """Run a suite (or re-render a result), write the JSON, update BENCHMARKS.md."""
    from segmenter import io

    if importlib.util.find_spec("benchmarks") is None:
        raise SegmenterError(
            "benchmarks: the package is not importable here; run python -m pipelines.benchmark "
            "from the root of a checkout of the repository (it is not installed with segmenter)"
        )
    from benchmarks.context import SIZES, SUITES, BenchCache, BenchContext
    from benchmarks.markdown import update_markdown
    from benchmarks.suite import SECTIONS, result_path, run_suite

    markdown = Path(args.markdown) if args.markdown else DEFAULT_MARKDOWN
    if args.from_json is not None:
        source = Path(args.from_json)
        if not source.is_file():
            raise SegmenterError(f"--from-json: '{source}' does not exist")
        result = json.loads(source.read_text(encoding="utf-8"))
        update_markdown(markdown, result)
        print(f"{markdown} updated from {source}")
        return 0
    if args.suite not in SUITES:
        raise SegmenterError(f"--suite: '{args.suite}' is not one of {list(SUITES)}")
    for section in args.section or ():
        if section not in SECTIONS:
            raise SegmenterError(f"--section: '{section}' is not one of {list(SECTIONS)}")
    if args.seed < 0:
        raise SegmenterError(f"--seed: {args.seed} should be >= 0")
    if args.customers is not None and args.customers < 100:
        raise SegmenterError(f"--customers: {args.customers} should be >= 100")
    ray_runs = None
    if args.ray_runs is not None:
        from benchmarks.ray_scale import RUNS

        ray_runs = tuple(r.strip() for r in args.ray_runs.split(",") if r.strip())
        unknown = [r for r in ray_runs if r not in RUNS]
        if unknown or not ray_runs:
            raise SegmenterError(
                f"--ray-runs: {args.ray_runs!r} should name runs among {list(RUNS)}"
            )
    out = Path(args.out) if args.out else DEFAULT_OUT
    if out.exists() and not out.is_dir():
        raise SegmenterError(f"--out: '{out}' exists and is a file; expected a folder")
    cache = BenchCache(Path(args.cache) if args.cache else out / ".cache", cold=args.cold_cache)
    ctx = BenchContext(
        args.suite,
        SIZES[args.suite],
        seed=args.seed,
        encoder_spec=args.encoder,
        cache=cache,
        progress=not args.quiet,
        customers=args.customers,
        ray_runs=ray_runs,
    )
    command = "python -m pipelines.benchmark " + shlex.join(sys.argv[1:])
    partial = out / f"{'-'.join([args.suite, *(args.section or [])])}.partial.json"

    def checkpoint(result: dict[str, object]) -> None:
        io.write_json(result, partial)  # what a long run measured so far (--from-json)

    try:
        result = run_suite(ctx, command=command.strip(), checkpoint=checkpoint, only=args.section)
    finally:
        cache.close()
    path = result_path(out, result)
    io.write_json(result, path)
    partial.unlink(missing_ok=True)
    print(f"{args.suite} suite done in {result['seconds_total'] / 60:.1f} min -> {path}")
    if not args.no_markdown and (args.suite != "smoke" or args.markdown):
        # render from the file just written, so every figure in the table comes from it
        update_markdown(markdown, json.loads(path.read_text(encoding="utf-8")))
        print(f"{markdown} updated")
    return 0


if __name__ == "__main__":
    # Before torch, faiss and numba start OpenMP: threads that spin while waiting for work make
    # every stage several times slower when other jobs share the cores (see BENCHMARKS.md).
    # An OMP_WAIT_POLICY set by the caller wins; the value is recorded in the result.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    raise SystemExit(run_cli(build_parser(), main))
