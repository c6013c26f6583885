"""Run a benchmark suite: every section in order, one JSON-able result."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.balance import run_balance
from benchmarks.classification import run_classification_benchmark
from benchmarks.context import BenchContext, machine
from benchmarks.deep import run_deep_benchmark
from benchmarks.deep_accept import run_acceptance_benchmark
from benchmarks.deep_cli import run_deep_cli_benchmark
from benchmarks.encoders import run_encoders
from benchmarks.explain import run_explain
from benchmarks.latency import run_latency, run_latency_section
from benchmarks.lineage import run_lineage
from benchmarks.markdown import result_name
from benchmarks.ray_driver import run_ray_driver
from benchmarks.ray_identity import run_ray_identity
from benchmarks.ray_scale import run_ray_scale
from benchmarks.recovery import run_banking, run_planted
from benchmarks.retail import run_retail, span_cutoff, temporal_split
from benchmarks.serve import run_serve
from benchmarks.speed import encoder_overhead, run_speed
from benchmarks.sweep import GRID, SWEEP_PLANTED, run_sweep
from segmenter.data import EventData
from segmenter.model import Segmenter

logger = logging.getLogger(__name__)

#: Benchmarks of the classifier and the deep head, each called as
#: ``function(shared_data: Path, *, quick: bool, seed: int) -> dict``.
Extra = Callable[..., dict[str, Any]]
EXTRAS: dict[str, Extra] = {
    "classification": run_classification_benchmark,
    "deep_clustering": run_deep_benchmark,
}

#: Sections that ``--section`` can run alone, each ``function(ctx, retail_data) -> dict``.
Section = Callable[[BenchContext, EventData | None], dict[str, Any]]
SECTIONS: dict[str, Section] = {
    "balance": lambda ctx, data: run_balance(ctx, retail_data=data),
    "speed": lambda ctx, data: run_speed(ctx),
    "latency": lambda ctx, data: run_latency_section(ctx),
    # the deep head's acceptance rule against the measured gain, and --deep through the pipeline
    "deep_acceptance": lambda ctx, _: run_acceptance_benchmark(
        ctx.shared_data, quick=ctx.suite != "full", seed=ctx.seed
    ),
    "deep_cli": lambda ctx, _: run_deep_cli_benchmark(
        ctx.shared_data, quick=ctx.suite != "full", seed=ctx.seed
    ),
    "encoders": run_encoders,
    # segments over time (issue 16): stable ids, migrations and drift
    "lineage": run_lineage,
    "explain": lambda ctx, _: run_explain(ctx),
    # the HTTP service under load, batch throughput, PostgreSQL/DuckDB in and out (issue 18)
    "serve": lambda ctx, _: run_serve(ctx),
    # the Ray engine against the local engine (docs/scale.md)
    "ray_scale": lambda ctx, _: run_ray_scale(ctx, ctx.customers),
    # the driver's memory at 100k and 1M customers (a tiny encoder: memory, not quality)
    "ray_driver": lambda ctx, _: run_ray_driver(ctx),
    # the same segments from both engines on the sample and Online Retail
    "ray_identity": lambda ctx, _: run_ray_identity(ctx),
}


def run_extra(name: str, runner: Extra, ctx: BenchContext) -> dict[str, Any]:
    """Call ``runner`` on the context's shared data; a failure becomes a note, not an abort."""
    start = time.perf_counter()
    try:
        result = runner(ctx.shared_data, quick=ctx.suite != "full", seed=ctx.seed)
    except Exception as exc:  # one section's failure should not lose the hours of the others
        logger.exception("benchmark %s failed", name)
        return {"status": "failed", "note": f"{name} failed: {exc!r}"}
    return {"status": "ok", "seconds": round(time.perf_counter() - start, 1), "result": result}


def run_suite(
    ctx: BenchContext,
    *,
    retail_data: EventData | None = None,
    command: str = "",
    checkpoint: Callable[[dict[str, Any]], None] | None = None,
    only: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run the sections of ``ctx.suite`` and return the full result (JSON-able).

    Parameters
    ----------
    ctx : BenchContext
    retail_data : EventData, optional
        Replaces Online Retail (smoke runs on synthetic events, split at 75% of their span).
    command : str
        The command line, recorded in the result.
    checkpoint : callable, optional
        Called with the result so far after each section (long runs keep what they measured).
    only : sequence of str, optional
        Run only these sections of :data:`SECTIONS` (the result is named after them).
    """
    start = time.perf_counter()
    result: dict[str, Any] = {
        "suite": ctx.suite,
        "seed": ctx.seed,
        "date": datetime.now().strftime("%Y-%m-%d"),
        "started": datetime.now().isoformat(timespec="seconds"),
        "command": command,
        "encoder": ctx.encoder_spec,
        "cache": _cache_mode(ctx),
        "machine": machine(),
        "sections": {},
        "section_seconds": {},
    }
    if only:
        result["only"] = list(only)
    sections = result["sections"]

    def timed(name: str, fn: Callable[[], dict[str, Any]]) -> None:
        logger.info("benchmark section %s ...", name)
        t = time.perf_counter()
        before = (ctx.cache.hits, ctx.cache.misses) if ctx.cache is not None else (0, 0)
        sections[name] = fn()
        result["section_seconds"][name] = round(time.perf_counter() - t, 1)
        if ctx.cache is not None:
            result["cache"]["sections"][name] = {
                "from_cache": ctx.cache.hits - before[0],
                "encoded": ctx.cache.misses - before[1],
            }
        if checkpoint is not None:
            result["seconds_total"] = round(time.perf_counter() - start, 1)
            checkpoint(result)
        logger.info("benchmark section %s done in %.0fs", name, time.perf_counter() - t)

    if only:
        for name in only:
            timed(name, functools.partial(SECTIONS[name], ctx, retail_data))
        result["seconds_total"] = round(time.perf_counter() - start, 1)
        return result
    fitted: dict[str, Segmenter] = {}

    def planted() -> dict[str, Any]:
        section, fitted["planted"] = run_planted(ctx)
        return section

    timed("retail", lambda: run_retail(ctx, retail_data))
    timed("planted", planted)
    model = fitted["planted"]
    timed("banking77", lambda: run_banking(ctx))
    timed("latency", lambda: run_latency(ctx, model))
    texts = model.documents_["document"].to_list()[: ctx.sizes.overhead_texts]
    timed(
        "encoder_overhead",
        lambda: {
            "status": "ok",
            **encoder_overhead(ctx.encoder, texts, ctx.sizes.overhead_rounds),
        },
    )
    timed("speed", lambda: run_speed(ctx))
    if ctx.sizes.sweep_settings:
        split = None
        if retail_data is not None:
            cut = span_cutoff(retail_data)
            split = temporal_split(retail_data, cut, max_customers=ctx.sizes.retail_customers)
        planted_n = min(ctx.sizes.planted_customers, SWEEP_PLANTED)
        grid = GRID[: ctx.sizes.sweep_settings]
        timed("sweep", lambda: run_sweep(ctx, grid, split=split, planted_customers=planted_n))
    if ctx.sizes.extras:  # the full suite
        timed("balance", functools.partial(SECTIONS["balance"], ctx, retail_data))
        for name, runner in EXTRAS.items():
            timed(name, functools.partial(run_extra, name, runner, ctx))
    result["seconds_total"] = round(time.perf_counter() - start, 1)
    return result


def _cache_mode(ctx: BenchContext) -> dict[str, Any]:
    if ctx.cache is None:
        return {"mode": "none", "sections": {}}
    mode = "cold" if ctx.cache.cold else "warm"
    return {"mode": mode, "root": str(ctx.cache.shared_root), "sections": {}}


def result_path(out: Path, result: dict[str, Any]) -> Path:
    """``<out>/<date>-<suite>.json`` (``<suite>-cold`` for a cold-cache run)."""
    return Path(out) / f"{result['date']}-{result_name(result)}.json"
