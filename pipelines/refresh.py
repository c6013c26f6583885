"""Scheduled refresh: check drift against the previous run, refit only when needed.

    python -m pipelines.refresh --previous reports/2026-05 --input events_june.parquet \\
        --out reports/2026-06

Runs the drift check of the previous run's model on the new events. Stable: nothing is
refitted or written (exit 0; place new customers with ``pipelines.assign``). Drifting (or
``--always``): refit with the previous run's settings, align to it (ids and names carried,
``migrations.parquet``, ``history.parquet``) and write ``--out``; ``--deep`` continues
fine-tuning from the previous run's fine-tuned encoder instead of from scratch.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipelines._cli import add_data_args, cache_from_args, input_paths, load_from_args, run_cli
from pipelines.drift import report_lines

logger = logging.getLogger("pipelines.refresh")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipelines.refresh",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--previous", required=True, metavar="RUN_DIR", help="the last run folder")
    add_data_args(p)
    p.add_argument("--out", required=True, help="run folder written when a refit happens")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.add_argument("--always", action="store_true", help="refit even when the data is stable")
    p.add_argument(
        "--deep",
        action="store_true",
        help="refit with --deep, from the previous fine-tuned encoder",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    return p


def main(args: argparse.Namespace) -> int:
    from segmenter.lineage import carry_forward, load_previous
    from segmenter.lineage.drift import check_drift
    from segmenter.model import Segmenter
    from segmenter.outputs import claim
    from segmenter.runfolder import write_run
    from segmenter.sanity import check_segmentable, parse_as_of

    out = Path(args.out)
    # the previous run and the new events are read, never written over
    with claim(out, inputs=[*input_paths(args), args.previous], force=args.force):
        previous = load_previous(args.previous)
        cache = cache_from_args(args)
        old = Segmenter.load(previous.model_dir, cache=cache, device=args.device,
                             progress=not args.quiet)  # fmt: skip
        data = load_from_args(args)
        drift = check_drift(old, data, previous=previous.assignments).to_dict()
        print("\n".join(report_lines(drift)))
        if drift["verdict"] == "stable" and not args.always:
            print(f"no refit: the segments of {previous.path} stay valid")
            return 0
        config = old.config_.replace(deep=args.deep or old.config_.deep)
        tuned = previous.model_dir / "encoder"
        if args.deep and tuned.is_dir():  # continue from the previous fine-tuning
            config = config.replace(encoder=str(tuned.resolve()))  # not relative to the cwd
        check_segmentable(data, config.k, config.k_range)
        as_of = parse_as_of(args.as_of) if args.as_of else None
        model = Segmenter(config, cache=cache, progress=not args.quiet).fit(data, as_of=as_of)
        lineage = carry_forward(model, data, previous)
        extra = {"lineage": {**lineage.summary, "drift": drift}}
        write_run(model, data, out, force=args.force, report=not args.no_report,
                  tables=lineage.tables(), extra=extra)  # fmt: skip
    s = lineage.summary
    print(f"refitted: {model.k_} segments, {s['kept']} kept, {len(s['new'])} new, "
          f"{len(s['retired'])} retired -> {out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(build_parser(), main))
