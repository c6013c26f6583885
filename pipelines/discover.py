"""Discover customer segments and write a run folder.

    python -m pipelines.discover --k 8                        # the shipped sample data
    python -m pipelines.discover --input events.parquet --users users.csv --k auto --out runs/a
    python -m pipelines.discover --input ../shared/data/online_retail/online_retail.csv.gz \\
        --preset online-retail --k 8
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from pipelines._cli import add_data_args, cache_from_args, input_paths, load_from_args, run_cli
from pipelines._engine import add_engine_args, discover_on_ray, uses_ray
from pipelines._export import add_export_arg, export_assignments, export_target
from segmenter.errors import SegmenterError

logger = logging.getLogger("pipelines.discover")


def parse_k(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not an integer or 'auto'") from None


def parse_range(value: str) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in value.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not of the form MIN:MAX") from None
    return lo, hi


def build_parser() -> argparse.ArgumentParser:
    from segmenter.config import METHODS, SegmenterConfig

    d = SegmenterConfig()
    p = argparse.ArgumentParser(
        prog="python -m pipelines.discover",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_args(p)
    g = p.add_argument_group("segments")
    g.add_argument("--method", choices=METHODS, default=d.method, help="clustering method")
    g.add_argument("--k", type=parse_k, default=d.k, help="number of segments, or 'auto'")
    g.add_argument("--k-range", type=parse_range, default=d.k_range, help="MIN:MAX for --k auto")
    g.add_argument("--min-cluster-size", type=int, default=None, help="HDBSCAN smallest segment")
    g.add_argument(
        "--assign-outliers", action="store_true", help="HDBSCAN: attach outliers to a segment"
    )
    g.add_argument("--seed", type=int, default=d.seed, help="seed of every random step")
    g.add_argument(
        "--value-tiers",
        type=parse_k,
        default=d.value_tiers,
        help="value tiers the k segments are cut into before taste splits them (1 = taste "
        "only, k = value only); 'auto' chooses from your data (default)",
    )
    g.add_argument(
        "--feature-weight",
        type=float,
        default=d.feature_weight,
        help="weight of behaviour next to the text on the 2-D map, for --k auto and HDBSCAN",
    )
    g.add_argument("--pca-dims", type=int, default=d.pca_dims, help="PCA components (0 = off)")
    g.add_argument("--umap-dims", type=int, default=d.umap_dims, help="UMAP dims (0 = off)")
    g.add_argument(
        "--umap-sample", type=int, default=d.umap_sample, help="fit UMAP on at most N customers"
    )
    g.add_argument("--deep", action="store_true", help="fine-tune the encoder with a k-means loss")
    g.add_argument("--deep-steps", type=int, default=None, help="deep: training steps cap")
    g.add_argument("--deep-lora", action="store_true", help="deep: train LoRA adapters only")
    g.add_argument(
        "--deep-keep-behaviour",
        type=float,
        default=None,
        help="deep: keep the fine-tuned segments only when they explain at least this share "
        f"of the frozen segments' behaviour separation (default {d.deep_keep_behaviour})",
    )
    e = p.add_argument_group("encoder")
    e.add_argument(
        "--encoder", default=None, help="sentence-transformers folder (default: packaged MiniLM)"
    )
    e.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N")
    e.add_argument(
        "--encoder-backend",
        default=d.encoder_backend,
        help="auto (default: torch on a GPU; on a CPU torch-bf16 or onnx-int8 when it agrees "
        "with fp32 at mean cosine >= 0.999), torch, torch-bf16, onnx or onnx-int8",
    )
    e.add_argument(
        "--pooling",
        default=d.pooling,
        help="auto (default: document), pieces (each distinct item, "
        "category and text encoded once, averaged per customer) or document (each document "
        "encoded whole)",
    )
    e.add_argument("--batch-size", type=int, default=d.batch_size, help="texts per forward pass")
    e.add_argument("--max-tokens", type=int, default=d.max_tokens, help="token budget per document")
    o = p.add_argument_group("output")
    o.add_argument("--out", default=None, help="run folder (default: reports/<timestamp>/)")
    o.add_argument("--force", action="store_true", help="replace a non-empty --out")
    o.add_argument("--no-report", action="store_true", help="skip report.html")
    o.add_argument(
        "--previous",
        default=None,
        metavar="RUN_DIR",
        help="align to this earlier run folder: keep its segment ids and names, write "
        "migrations.parquet and extend history.parquet",
    )
    add_export_arg(o)
    add_engine_args(p)
    return p


def _deep_options(args: argparse.Namespace) -> dict[str, Any]:
    """``deep_options`` and ``deep_keep_behaviour`` of the config from the --deep-* flags."""
    from segmenter.finetune import DeepOptions

    used = {"--deep-steps": args.deep_steps is not None, "--deep-lora": args.deep_lora,
            "--deep-keep-behaviour": args.deep_keep_behaviour is not None}  # fmt: skip
    first = next((flag for flag, on in used.items() if on), None)
    if first and not args.deep:
        raise SegmenterError(f"{first} needs --deep")
    changes: dict[str, Any] = {"lora": True} if args.deep_lora else {}
    if args.deep_steps is not None:
        changes["steps"] = args.deep_steps
    out: dict[str, Any] = {"deep_options": DeepOptions(**changes)}
    if args.deep_keep_behaviour is not None:
        out["deep_keep_behaviour"] = args.deep_keep_behaviour
    return out


def previous_drift(previous: Any, data: Any, args: argparse.Namespace) -> dict[str, Any] | None:
    """The drift check of the previous run's model on the new data (for the report), or None
    when that model cannot be loaded or has no drift reference (saved by an older version)."""
    from segmenter.lineage.drift import check_drift
    from segmenter.model import Segmenter

    try:
        old = Segmenter.load(previous.model_dir, cache=cache_from_args(args), device=args.device,
                             progress=not args.quiet)  # fmt: skip
        return check_drift(old, data, previous=previous.assignments).to_dict()
    except SegmenterError as exc:
        logger.warning("no drift check against the previous run: %s", exc)
        return None


def main(args: argparse.Namespace) -> int:
    from segmenter.config import SegmenterConfig
    from segmenter.lineage import carry_forward, load_previous
    from segmenter.model import Segmenter
    from segmenter.outputs import claim
    from segmenter.runfolder import default_out, write_run
    from segmenter.sanity import check_segmentable, parse_as_of

    config = SegmenterConfig(
        method=args.method,
        k=args.k,
        k_range=args.k_range,
        seed=args.seed,
        value_tiers=args.value_tiers,
        feature_weight=args.feature_weight,
        pca_dims=args.pca_dims,
        umap_dims=args.umap_dims,
        umap_sample=args.umap_sample,
        min_cluster_size=args.min_cluster_size,
        assign_outliers=args.assign_outliers,
        max_tokens=args.max_tokens,
        encoder=args.encoder,
        device=args.device,
        encoder_backend=args.encoder_backend,
        pooling=args.pooling,
        batch_size=args.batch_size,
        deep=args.deep,
        **_deep_options(args),
    ).validate()
    if args.assign_outliers and args.method != "hdbscan":
        raise SegmenterError("--assign-outliers only applies to --method hdbscan")
    out = Path(args.out) if args.out else default_out()
    on_ray = uses_ray(args)  # before any work: its one-line errors
    target = export_target(args, out)
    # the previous run is read, never written over
    with claim(out, inputs=[*input_paths(args), args.previous], force=args.force):
        if on_ray:
            k, counts = discover_on_ray(args, config, out)
            print(f"{k} segments of {sum(counts.values())} customers -> {out} (ray)")
            for name, n in counts.items():
                print(f"  {n:>7}  {name}")
            return 0
        previous = load_previous(args.previous) if args.previous else None
        cache = cache_from_args(args)
        data = load_from_args(args)
        check_segmentable(data, config.k, config.k_range)
        model = Segmenter(config, cache=cache, progress=not args.quiet)
        model.fit(data, as_of=parse_as_of(args.as_of) if args.as_of else None)
        lineage = carry_forward(model, data, previous)
        if previous is not None:
            lineage.summary["drift"] = previous_drift(previous, data, args)
        write_run(model, data, out, force=args.force, report=not args.no_report,
                  tables=lineage.tables(), extra={"lineage": lineage.summary})  # fmt: skip
        export_assignments(target, model.assignments_, run_id=out.name)
    sizes = model.assignments_["segment_name"].value_counts(sort=True)
    print(f"{model.k_} segments of {data.n_users} customers -> {out}")
    for name, size in sizes.iter_rows():
        print(f"  {size:>7}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(build_parser(), main))
