"""Speed and memory: our pipeline against the naive library chain, and the encoder's overhead.

Each chain runs in a fresh subprocess (:mod:`benchmarks.worker`) so that its peak RSS is
its own, with empty caches; both read the same events and are scored against the same
planted archetypes. The encoder overhead alternates our embedding stage and
a bare ``SentenceTransformer.encode`` of the same texts in one process, so that load from other
jobs on the machine hits both alike.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks.context import REPO_ROOT, BenchContext
from segmenter.embed import Encoder, embed_documents
from segmenter.errors import SegmenterError

logger = logging.getLogger(__name__)

#: Stages both chains have (our value score, taste space, 2-D map and profile are extra work).
SHARED_STAGES = ("embed", "cluster")


def run_worker(spec: dict[str, Any], *, quiet: bool = True) -> dict[str, Any]:
    """Run one configuration in a fresh Python process and return its result."""
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        out = Path(tmp) / "result.json"
        env = dict(os.environ)
        if quiet:
            env["TQDM_DISABLE"] = "1"
        cmd = [sys.executable, "-m", "benchmarks.worker", json.dumps(spec), str(out)]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not out.is_file():
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise SegmenterError(f"benchmark worker {spec} failed ({proc.returncode}): {tail}")
        result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        result["process_seconds"] = round(time.perf_counter() - start, 1)
        return result


#: Customers per call of :func:`segmenter.synthetic.generate` when writing large inputs.
CHUNK = 10_000


def write_customers(folder: Path, n: int, seed: int) -> None:
    """Write ``n`` synthetic customers to ``folder/events.parquet``, ``users.parquet`` and
    their planted archetypes to ``labels.parquet`` (user_id, segment).

    Above :data:`CHUNK` customers they are generated in chunks with seeds ``seed * 1000 + i``
    (ids prefixed by the chunk), which bounds the memory of the parent process.
    """
    from segmenter.synthetic import generate

    events, users, labels = [], [], []
    for i, start in enumerate(range(0, n, CHUNK)):
        size = min(CHUNK, n - start)
        tables = generate(size, seed=seed if n <= CHUNK else seed * 1000 + i)
        ev, us = tables["events"], tables["users"]
        lab = tables["labels"].select("user_id", "segment")
        if n > CHUNK:
            ev = ev.with_columns(_prefixed("user_id", i), _prefixed("order_id", i))
            us = us.with_columns(_prefixed("user_id", i))
            lab = lab.with_columns(_prefixed("user_id", i))
        events.append(ev)
        users.append(us)
        labels.append(lab)
    pl.concat(events).write_parquet(folder / "events.parquet")
    pl.concat(users).write_parquet(folder / "users.parquet")
    pl.concat(labels).write_parquet(folder / "labels.parquet")


def _prefixed(column: str, chunk: int) -> pl.Expr:
    return (pl.lit(f"S{chunk:03d}-") + pl.col(column)).alias(column)


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def compare_chains(ours: dict[str, Any], naive: dict[str, Any]) -> dict[str, Any]:
    """Ratios ours / naive: whole chain (from the files), the shared stages, peak RSS; and
    the difference of planted ARI (ours - naive)."""
    o, n = ours["stages"], naive["stages"]
    shared_ours = sum(o[s] for s in SHARED_STAGES)
    shared_naive = sum(n[s] for s in SHARED_STAGES)
    ari = (ours.get("ari"), naive.get("ari"))
    return {
        "kmeans_chain": _ratio(ours["chain_seconds"], naive["chain_seconds"]),
        "shared_stages": _ratio(shared_ours, shared_naive),
        "per_stage": {s: _ratio(o[s], n[s]) for s in SHARED_STAGES},
        "peak_rss": _ratio(ours["peak_rss_mib"], naive["peak_rss_mib"]),
        "ari_gain": None if None in ari else ari[0] - ari[1],  # type: ignore[operator]
    }


def run_speed(ctx: BenchContext) -> dict[str, Any]:
    """Both chains at each size of ``ctx.sizes.speed_customers``."""
    rows = []
    for n in ctx.sizes.speed_customers:
        with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp:
            write_customers(Path(tmp), n, ctx.seed)
            spec = {"folder": tmp, "seed": ctx.seed, "encoder": ctx.encoder_spec}
            logger.info("speed: %d customers, our pipeline", n)
            ours = run_worker({**spec, "chain": "ours"}, quiet=not ctx.progress)
            logger.info("speed: %d customers, naive chain on the same events", n)
            naive = run_worker({**spec, "chain": "naive"}, quiet=not ctx.progress)
        ours["customers_per_second"] = n / ours["chain_seconds"]
        naive["customers_per_second"] = n / naive["chain_seconds"]
        cache = ours["cache_rerun"]
        cache["embed_ratio"] = _ratio(cache["embed_seconds_rerun"], cache["embed_seconds_cold"])
        cache["stages_ratio"] = _ratio(cache["stages_seconds_rerun"], cache["stages_seconds_cold"])
        cache["saved_seconds"] = cache["stages_seconds_cold"] - cache["stages_seconds_rerun"]
        rows.append({"n": n, "ours": ours, "naive": naive, "ratios": compare_chains(ours, naive)})
    return {"status": "ok", "sizes": rows}


def _bare_encode(encoder: Encoder) -> Callable[[Sequence[str]], Any]:
    """The bare call our encoder wraps: ``SentenceTransformer.encode`` at the same batch size."""
    st = getattr(encoder, "st", None)
    if st is None:
        return encoder.encode
    batch = int(getattr(encoder, "batch_size", 32))
    return lambda texts: st.encode(list(texts), batch_size=batch, show_progress_bar=False)


def encoder_overhead(encoder: Encoder, texts: Sequence[str], rounds: int) -> dict[str, Any]:
    """Our embedding stage (``embed_documents``, no cache) against the bare encode call.

    Runs alternate (ours first on even rounds, bare first on odd ones) after one warm-up call
    of each, so that slow phases of a shared machine hit both.
    """
    if rounds < 1 or not texts:
        raise SegmenterError(f"rounds={rounds} and texts={len(texts)} should be >= 1")
    bare = _bare_encode(encoder)
    warm = list(texts[: min(64, len(texts))])
    embed_documents(encoder, warm)
    bare(warm)
    ours_s: list[float] = []
    bare_s: list[float] = []

    def ours_run() -> None:
        start = time.perf_counter()
        embed_documents(encoder, texts)
        ours_s.append(time.perf_counter() - start)

    def bare_run() -> None:
        start = time.perf_counter()
        bare(texts)
        bare_s.append(time.perf_counter() - start)

    for r in range(rounds):
        for run in (ours_run, bare_run) if r % 2 == 0 else (bare_run, ours_run):
            run()
    ratios = [o / b for o, b in zip(ours_s, bare_s, strict=True)]
    return {
        "texts": len(texts),
        "rounds": rounds,
        "ours_seconds": ours_s,
        "bare_seconds": bare_s,
        "ratio_of_medians": float(np.median(ours_s) / np.median(bare_s)),
        "median_round_ratio": float(np.median(ratios)),
        "texts_per_second_ours": len(texts) / float(np.median(ours_s)),
        "texts_per_second_bare": len(texts) / float(np.median(bare_s)),
        "target_ratio": 1.10,
    }
