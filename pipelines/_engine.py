"""``--engine local|ray`` and the Ray options of discover and assign; with ``local`` (the
default) nothing here imports Ray."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from pipelines._cli import SAMPLE_DATA, cache_from_args
from segmenter.data import parse_columns
from segmenter.engines import ENGINES
from segmenter.errors import SegmenterError

if TYPE_CHECKING:
    from segmenter.config import SegmenterConfig
    from segmenter.engines.ray_engine import RayOptions, Source


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("engine (docs/scale.md)")
    g.add_argument("--engine", choices=ENGINES, default="local",
                   help="local (one process, default) or ray (a Ray cluster)")  # fmt: skip
    g.add_argument("--ray-address", default=None, help="ray: 'auto' (the cluster on this "
                   "machine) or HOST:PORT of a head node; default: a local instance")  # fmt: skip
    g.add_argument("--ray-actors", type=int, default=2, help="ray: encoder actors")
    g.add_argument("--ray-gpus-per-actor", type=float, default=0.0,
                   help="ray: GPUs each encoder actor reserves (0 = CPU actors)")  # fmt: skip
    g.add_argument("--ray-fit-sample", type=int, default=200_000,
                   help="ray: customers the model is fitted on (seeded sample)")  # fmt: skip
    g.add_argument("--ray-blocks", type=int, default=None,
                   help="ray: blocks customers are hashed into (default 4 per actor)")  # fmt: skip
    g.add_argument("--ray-cpus", type=int, default=None, help="ray: CPUs of a local instance")
    g.add_argument("--ray-cpus-per-actor", type=int, default=None,
                   help="ray: CPUs (torch threads) of each encoder actor (default: the "
                   "cluster's CPUs shared between the actors)")  # fmt: skip


def uses_ray(args: argparse.Namespace) -> bool:
    ray_flags = {"--ray-address": args.ray_address is not None,
                 "--ray-actors": args.ray_actors != 2,
                 "--ray-gpus-per-actor": bool(args.ray_gpus_per_actor),
                 "--ray-fit-sample": args.ray_fit_sample != 200_000,
                 "--ray-blocks": args.ray_blocks is not None,
                 "--ray-cpus": args.ray_cpus is not None,
                 "--ray-cpus-per-actor": args.ray_cpus_per_actor is not None}  # fmt: skip
    first = next((flag for flag, on in ray_flags.items() if on), None)
    if args.engine != "ray" and first:
        raise SegmenterError(f"{first} needs --engine ray")
    if args.engine == "ray":
        refuse_local_only(args)
        ray_engine()  # the package is there, before any work
    return bool(args.engine == "ray")


def refuse_local_only(args: argparse.Namespace) -> None:
    """Options the Ray engine does not carry out yet: a one-line error, not a silent skip."""
    from segmenter.sources import is_database

    local_only = {
        "--input": is_database(args.input),  # a database is read by the local engine only
        "--table": getattr(args, "table", None) is not None,
        "--query": getattr(args, "query", None) is not None,
        "--as-of": getattr(args, "as_of", None) is not None,
        "--dedupe": bool(getattr(args, "dedupe", False)),
        "--export": getattr(args, "export", None) is not None,
        "--previous": getattr(args, "previous", None) is not None,
    }
    flag = next((f for f, on in local_only.items() if on), None)
    if flag == "--input":
        raise SegmenterError("--input: a database is not read by --engine ray yet; export the "
                             "events to parquet shards or use the local engine")  # fmt: skip
    if flag is not None:
        raise SegmenterError(f"{flag}: not available with --engine ray yet; use the local engine")


def ray_engine() -> ModuleType:
    """:mod:`segmenter.engines.ray_engine`; without the ``ray`` package, a one-line error."""
    try:
        from segmenter.engines import ray_engine as engine
    except ImportError:
        raise SegmenterError(
            "--engine ray: the 'ray' package is not installed; pip install -e '.[ray]'"
        ) from None
    return engine


def ray_options(args: argparse.Namespace) -> RayOptions:
    return ray_engine().RayOptions(
        address=args.ray_address, actors=args.ray_actors, gpus_per_actor=args.ray_gpus_per_actor,
        fit_sample=args.ray_fit_sample, blocks=args.ray_blocks, num_cpus=args.ray_cpus,
        cpus_per_actor=args.ray_cpus_per_actor,
    ).validate()  # fmt: skip


def source_of(args: argparse.Namespace) -> Source:
    users, items, path = args.users, args.items, args.input
    if path is None:
        path = SAMPLE_DATA / "events.parquet"
        users = users or SAMPLE_DATA / "users.parquet"
        items = items or SAMPLE_DATA / "items.parquet"
    return ray_engine().Source(
        str(path), users=None if users is None else str(users),
        items=None if items is None else str(items), columns=parse_columns(args.columns),
        preset=args.preset, drop_invalid=args.drop_invalid,
    )  # fmt: skip


def discover_on_ray(
    args: argparse.Namespace, config: SegmenterConfig, out: Path
) -> tuple[int, dict[str, int]]:
    """Fit and write the run folder with the Ray engine; (k, customers per segment)."""
    from segmenter.runfolder import write_run

    engine = ray_engine()
    options, cache = ray_options(args), cache_from_args(args)
    with engine.session(options), engine.cache_root(cache) as root:
        run = engine.discover(config, source_of(args), options, cache=cache, root=root,
                              progress=not args.quiet)  # fmt: skip
        write_run(run.model, run.sample, out, force=args.force, report=not args.no_report,
                  assignments=run.write_assignments, extra={"engine": run.info})  # fmt: skip
    return run.model.k_, run.info["segment_sizes"]


def assign_on_ray(args: argparse.Namespace, out: Path) -> dict[str, int]:
    """Place every customer with the Ray engine into ``out``; customers per segment."""
    from segmenter.model import Segmenter

    engine = ray_engine()
    options, cache = ray_options(args), cache_from_args(args)
    with engine.session(options), engine.cache_root(cache) as root:
        model = Segmenter.load(args.model, cache=cache, device=args.device, progress=False)
        return engine.assign(model, source_of(args), options, out, root=root)
