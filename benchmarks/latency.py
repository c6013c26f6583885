"""Single-customer assignment latency from a saved and re-loaded model, and where it goes."""

from __future__ import annotations

import cProfile
import logging
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks.context import DEFAULT_ENCODER_SPEC, REPO_ROOT, BenchContext
from segmenter.data import load_events
from segmenter.model import Segmenter
from segmenter.synthetic import generate

logger = logging.getLogger(__name__)

TARGET_MEDIAN_MS = 20.0
TARGET_P95_MS = 40.0
WARMUP = 3
#: customers per call of the batch throughput measurement
BATCH = 100


def one_customer_frames(n: int, seed: int) -> list[tuple[pl.DataFrame, pl.DataFrame]]:
    """Events and user row of ``n`` new synthetic customers, one pair per customer."""
    tables = generate(n, seed=seed)
    events, users = tables["events"], tables["users"]
    return [
        (events.filter(pl.col("user_id") == uid), users.filter(pl.col("user_id") == uid))
        for uid in users["user_id"].to_list()
    ]


def assign_one(
    model: Segmenter, events: pl.DataFrame, users: pl.DataFrame, map_coords: bool = True
) -> dict[str, float]:
    """Place one customer; seconds of loading its events, then of each stage the model timed."""
    start = time.perf_counter()
    data = load_events(events, users=users)
    loaded = time.perf_counter() - start
    model.predict(data, map_coords=map_coords)
    return {"load_events": loaded, **model.last_timings_}


def _profile(model: Segmenter, frames: list[tuple[pl.DataFrame, pl.DataFrame]]) -> list[str]:
    """Top functions by own time over ``frames`` (cProfile)."""
    profiler = cProfile.Profile()
    profiler.enable()
    for events, users in frames:
        assign_one(model, events, users)
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:8]  # type: ignore[attr-defined]
    lines = []
    for (file, line, name), (_, ncalls, tottime, _cum, _) in rows:
        where = f"{Path(file).parent.name}/{Path(file).name}:{line}({name})"
        per_call = 1000 * tottime / len(frames)
        lines.append(f"{per_call:.1f} ms/customer own time, {ncalls} calls: {where}")
    return lines


def batch_throughput(
    model: Segmenter, frames: list[tuple[pl.DataFrame, pl.DataFrame]], rounds: int = 3
) -> dict[str, Any]:
    """Customers per second of ``predict`` on all of ``frames`` in one call (median of
    ``rounds`` calls, loading the events included)."""
    events = pl.concat([e for e, _ in frames])
    users = pl.concat([u for _, u in frames])
    seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        model.predict(load_events(events, users=users))
        seconds.append(time.perf_counter() - start)
    median = float(np.median(seconds))
    return {"batch": len(frames), "seconds": seconds, "customers_per_second": len(frames) / median}


def run_latency_section(ctx: BenchContext) -> dict[str, Any]:
    """``--section latency``: the model is fitted on the shipped sample (3,000 customers)."""
    from segmenter.config import SegmenterConfig

    sample = REPO_ROOT / "sample_data"
    data = load_events(
        sample / "events.parquet", users=sample / "users.parquet", items=sample / "items.parquet"
    )
    config = SegmenterConfig(k=8, seed=ctx.seed)
    model = Segmenter(config, encoder=ctx.encoder, cache=ctx.cache, progress=ctx.progress)
    return run_latency(ctx, model.fit(data))


def run_latency(ctx: BenchContext, model: Segmenter) -> dict[str, Any]:
    """Save ``model``, load it back without a cache, assign new customers one at a time."""
    n = ctx.sizes.latency_customers
    frames = one_customer_frames(n + WARMUP, seed=ctx.seed + 7)
    with tempfile.TemporaryDirectory(prefix="bench-model-") as tmp:
        model.save(tmp)
        encoder = None if ctx.encoder_spec == DEFAULT_ENCODER_SPEC else ctx.encoder
        start = time.perf_counter()
        loaded = Segmenter.load(tmp, encoder=encoder, cache=None, device="cpu", progress=False)
        load_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for events, users in frames[:WARMUP]:
        assign_one(loaded, events, users)
    first_seconds = time.perf_counter() - start
    # with and without the 2-D map projection, alternating customer by customer; the stages
    # are those the model recorded of the default calls
    times: dict[bool, list[float]] = {True: [], False: []}
    stages: list[dict[str, float]] = []
    for i, (events, users) in enumerate(frames[WARMUP:]):
        for map_coords in (True, False) if i % 2 else (False, True):
            start = time.perf_counter()
            recorded = assign_one(loaded, events, users, map_coords)
            times[map_coords].append(time.perf_counter() - start)
            if map_coords:
                stages.append(recorded)
    ms = 1000 * np.array(times[True])
    ms_no_map = 1000 * np.array(times[False])
    stage_ms = {k: 1000 * float(np.median([s[k] for s in stages])) for k in stages[0]}
    dominant = max(stage_ms, key=lambda k: stage_ms[k])
    median = float(np.median(ms))
    p95 = float(np.percentile(ms, 95))
    batch = frames[WARMUP : WARMUP + min(BATCH, n)]
    return {
        "status": "ok",
        "customers": n,
        "model_customers": int(model.assignments_.height),
        "load_seconds": load_seconds,
        "warmup_seconds": first_seconds,
        "median_ms": median,
        "p95_ms": p95,
        "target_median_ms": TARGET_MEDIAN_MS,
        "target_p95_ms": TARGET_P95_MS,
        "met": median <= TARGET_MEDIAN_MS and p95 <= TARGET_P95_MS,
        "median_ms_no_map": float(np.median(ms_no_map)),
        "p95_ms_no_map": float(np.percentile(ms_no_map, 95)),
        "met_no_map": float(np.median(ms_no_map)) <= TARGET_MEDIAN_MS,
        "stage_median_ms": stage_ms,
        "stage_sum_median_ms": float(np.median([1000 * sum(s.values()) for s in stages])),
        "dominant_stage": dominant,
        "profile_top": _profile(loaded, frames[WARMUP : WARMUP + min(n, 50)]),
        "batch": batch_throughput(loaded, batch),
    }
