"""Has the data moved since a model was fitted? A drift check without refitting.

    python -m pipelines.drift --model reports/RUN/model --input new_events.parquet

Places the new period's customers with the saved model and compares them with what it saw at
training: population stability index per behaviour feature, segment share shift, distance to
the centres, share of returning customers who changed segment, unseen items and categories.
Exit code: 0 stable, 3 drifting (refit recommended), 2 bad input.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipelines._cli import add_data_args, cache_from_args, input_paths, load_from_args, run_cli
from segmenter.errors import SegmenterError
from segmenter.io import is_table

logger = logging.getLogger("pipelines.drift")

#: exit code of a "drifting" verdict (0 = stable, 2 = bad input)
DRIFTING = 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipelines.drift",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="model/ folder of a discovery run")
    add_data_args(p)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--json", default=None, help="also write the measures to this JSON file")
    return p


def report_lines(result: dict[str, object]) -> list[str]:
    """The verdict and its reasons, as printed."""
    verdict = result["verdict"]
    head = "stable" if verdict == "stable" else "drifting: refit recommended"
    lines = [f"{head} ({result['customers']} customers)"]
    lines += [f"  - {reason}" for reason in result["reasons"]]  # type: ignore[attr-defined]
    return lines


def check_json_out(out: Path, reads: list[str | Path]) -> None:
    """A one-line error unless ``out`` is a new or replaceable file apart from what is read."""
    path = out.expanduser().resolve()
    for source in reads:
        read = Path(source).expanduser().resolve()
        if path == read or path.is_relative_to(read) or read.is_relative_to(path):
            raise SegmenterError(f"--json: '{out}' is or lies inside the input '{source}', which "
                                 "is never written over; write it elsewhere")  # fmt: skip
    if path.is_dir():
        raise SegmenterError(f"--json: '{out}' is a folder; expected a .json file")
    if not path.parent.is_dir():
        raise SegmenterError(f"--json: the folder of '{out}' does not exist")


def main(args: argparse.Namespace) -> int:
    from segmenter import io
    from segmenter.lineage.drift import check_drift
    from segmenter.lineage.previous import load_previous
    from segmenter.model import Segmenter

    out = Path(args.json) if args.json else None
    if out is not None and out.suffix.lower() != ".json":
        raise SegmenterError(f"--json: '{out}' should end in .json")
    model_dir = Path(args.model)
    if out is not None:  # before any work; the run folder is read, never written into
        check_json_out(out, [*input_paths(args), model_dir.resolve().parent])
    model = Segmenter.load(
        model_dir, cache=cache_from_args(args), device=args.device, progress=not args.quiet
    )
    data = load_from_args(args)
    run_dir = model_dir.resolve().parent
    previous = None
    if is_table(run_dir / "assignments.parquet"):
        previous = load_previous(run_dir, option="--model").assignments
    result = check_drift(model, data, previous=previous).to_dict()
    if out is not None:
        io.write_json(result, out)
    print("\n".join(report_lines(result)))
    return 0 if result["verdict"] == "stable" else DRIFTING


if __name__ == "__main__":
    raise SystemExit(run_cli(build_parser(), main))
