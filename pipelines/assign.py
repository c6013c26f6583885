"""Place new customers in the segments of a saved model.

python -m pipelines.assign --model reports/RUN/model --input new.parquet --out assigned.parquet
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipelines._cli import add_data_args, cache_from_args, load_from_args, run_cli
from pipelines._engine import add_engine_args, assign_on_ray, uses_ray
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
    add_engine_args(p)
    return p


def main(args: argparse.Namespace) -> int:
    from segmenter import io
    from segmenter.model import Segmenter

    out = Path(args.out)
    if out.suffix.lower() not in (".parquet", ".pq"):
        raise SegmenterError(f"--out: '{out}' should end in .parquet")
    if out.exists() and not args.force:
        raise SegmenterError(f"--out: '{out}' exists; pass --force to overwrite it")
    if uses_ray(args):
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
    counts = assigned["segment_name"].value_counts(sort=True)
    print(f"assigned {assigned.height} customers -> {out}")
    for name, size in counts.iter_rows():
        print(f"  {size:>7}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(build_parser(), main))
