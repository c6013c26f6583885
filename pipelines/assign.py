"""Place new customers in the segments of a saved model.

python -m pipelines.assign --model reports/RUN/model --input new.parquet --out assigned.parquet
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipelines._cli import add_data_args, cache_from_args, input_paths, load_from_args, run_cli
from pipelines._engine import add_engine_args, assign_on_ray, uses_ray
from pipelines._export import add_export_arg, export_assignments, export_target
from segmenter.errors import SegmenterError

logger = logging.getLogger("pipelines.assign")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipelines.assign",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="model/ folder of a discovery run")
    add_data_args(p)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--out", required=True, help="output parquet (one row per customer)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    add_export_arg(p)
    add_engine_args(p)
    return p


def main(args: argparse.Namespace) -> int:
    from segmenter import io
    from segmenter.model import Segmenter
    from segmenter.outputs import claim

    out = Path(args.out)
    if out.suffix.lower() not in (".parquet", ".pq"):
        raise SegmenterError(f"--out: '{out}' should end in .parquet")
    on_ray = uses_ray(args)  # before any work: its one-line errors
    target = export_target(args, out)
    with claim(
        out, inputs=input_paths(args), kind="assignments", force=args.force, models=[args.model]
    ):
        if on_ray:
            sizes = assign_on_ray(args, out)
            print(f"assigned {sum(sizes.values())} customers -> {out} (ray)")
            for name, n in sizes.items():
                print(f"  {n:>7}  {name}")
            return 0
        model = Segmenter.load(
            args.model, cache=cache_from_args(args), device=args.device, progress=not args.quiet
        )
        data = load_from_args(args)
        assigned = model.predict(data)
        io.write_parquet(assigned, out)
        export_assignments(target, assigned, run_id=Path(args.model).resolve().parent.name)
    counts = assigned["segment_name"].value_counts(sort=True)
    print(f"assigned {assigned.height} customers -> {out}")
    for name, size in counts.iter_rows():
        print(f"  {size:>7}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(build_parser(), main))
