"""The Ray engine against the local engine: wall time and peak memory of the driver and of the
Ray workers, on generated customers, side by side in one run (``--section ray_scale``).

Each configuration runs ``python -m pipelines.discover`` in a subprocess with its own empty
embedding cache (every document is encoded); a thread samples the resident memory of the Ray
worker processes (``ray::`` titles) while it runs. The driver's peak is the ``peak_rss_mb``
that run.json records. The overhead of Ray is its wall time at one actor over the local
engine's.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import polars as pl
import psutil

from benchmarks.context import REPO_ROOT, BenchContext
from segmenter.synthetic import generate

logger = logging.getLogger(__name__)

#: customers per suite (the issue asks for 100,000; the shared 2-core machine allows less)
SIZES = {"smoke": 1_000, "quick": 5_000, "full": 100_000}
TARGET_OVERHEAD = 0.15
#: the runs, in order (``--ray-runs`` picks some of them)
RUNS = ("local", "ray_1_actor", "ray_2_actors", "ray_2_actors_quarter_sample")


def _worker_peak(done: threading.Event, peak: dict[str, float]) -> None:
    """Largest resident memory of one Ray worker and of all of them together, MB."""
    while not done.is_set():
        sizes = []
        for proc in psutil.process_iter(["cmdline", "memory_info"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if cmd.startswith("ray::") and proc.info["memory_info"] is not None:
                sizes.append(proc.info["memory_info"].rss / 1e6)
        peak["one"] = max(peak.get("one", 0.0), max(sizes, default=0.0))
        peak["all"] = max(peak.get("all", 0.0), sum(sizes))
        time.sleep(0.5)


def run_one(
    events: Path, out: Path, flags: list[str], k: int, seed: int, *, cache: str | None = None
) -> dict[str, Any]:
    """One ``pipelines.discover`` run: wall seconds, driver and worker peaks (MB).

    ``flags`` may add inputs (``--users``, ``--preset``); ``cache`` is the embedding cache
    (default: an empty one of its own, so that every document is encoded)."""
    with tempfile.TemporaryDirectory(prefix="ray-scale-cache-") as empty:
        cmd = [sys.executable, "-m", "pipelines.discover", "--input", str(events), "--k", str(k),
               "--seed", str(seed), "--out", str(out), "--cache", cache or empty, "--no-report",
               "--quiet", *flags]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
        done, peak = threading.Event(), dict[str, float]()
        watcher = threading.Thread(target=_worker_peak, args=(done, peak), daemon=True)
        watcher.start()
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO_ROOT)
        seconds = time.perf_counter() - start
        done.set()
        watcher.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(flags) or 'local'} failed: {proc.stderr[-2000:]}")
    meta = json.loads((out / "run.json").read_text())
    assigned = out / "assignments.parquet"
    return {
        "profiled_customers": int(pl.read_parquet(out / "segments.parquet")["size"].sum()),
        "assignment_shards": len(list(assigned.glob("*.parquet"))) if assigned.is_dir() else 1,
        "flags": " ".join(flags) or "--engine local",
        "seconds": round(seconds, 1),
        "driver_peak_rss_mb": meta.get("peak_rss_mb"),
        "worker_peak_rss_mb": round(peak.get("one", 0.0), 1) or None,
        "workers_peak_rss_mb": round(peak.get("all", 0.0), 1) or None,
        "fit_sample_customers": meta.get("engine", {}).get("fit_sample_customers"),
        "timings_s": meta.get("timings_s"),
    }


def run_ray_scale(ctx: BenchContext, n_customers: int | None = None) -> dict[str, Any]:
    """Local engine, Ray with 1 and 2 actors, and Ray fitting on a quarter of the customers."""
    n = n_customers or SIZES.get(ctx.suite, SIZES["quick"])
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ray-scale-") as tmp:
        root = Path(tmp)
        tables = generate(n, seed=ctx.seed)
        tables["events"].write_parquet(root / "events.parquet")
        ray = ["--engine", "ray", "--ray-cpus", str(os.cpu_count() or 2)]
        configs = {
            "local": [],
            "ray_1_actor": [*ray, "--ray-actors", "1"],
            "ray_2_actors": [*ray, "--ray-actors", "2"],
            "ray_2_actors_quarter_sample": [*ray, "--ray-actors", "2",
                                            "--ray-fit-sample", str(max(n // 4, 50))],
        }  # fmt: skip
        runs = {
            name: run_one(root / "events.parquet", root / name, flags, k=8, seed=ctx.seed)
            for name, flags in configs.items()
            if ctx.ray_runs is None or name in ctx.ray_runs
        }
    both = "local" in runs and "ray_1_actor" in runs
    overhead = runs["ray_1_actor"]["seconds"] / runs["local"]["seconds"] - 1.0 if both else None
    return {
        "customers": n,
        "events": tables["events"].height,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "runs": runs,
        "ray_overhead_1_actor": None if overhead is None else round(overhead, 3),
        "target_overhead": TARGET_OVERHEAD,
        "overhead_met": None if overhead is None else overhead <= TARGET_OVERHEAD,
    }


def render_ray_scale(s: dict[str, Any] | None) -> list[str]:
    """The table of a ``ray_scale`` section."""
    if not s:
        return []
    out = [f"#### Ray engine against the local engine ({s['customers']:,} customers, "
           f"{s['events']:,} events, {s['cpus']} CPUs)", "",
           "| run | wall s | vs local (same run) | driver peak MB | largest worker MB | "
           "all workers MB | fitted on |",
           "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    local = s["runs"].get("local", {}).get("seconds")
    for name, r in s["runs"].items():
        versus = f"{r['seconds'] / local - 1:+.1%}" if local and name != "local" else "-"
        out.append(f"| {name} (`{r['flags']}`) | {r['seconds']} | {versus} | "
                   f"{r['driver_peak_rss_mb']} | {r['worker_peak_rss_mb'] or '-'} | "
                   f"{r['workers_peak_rss_mb'] or '-'} | "
                   f"{r['fit_sample_customers'] or s['customers']} |")  # fmt: skip
    if s["ray_overhead_1_actor"] is None:
        return [*out, "", f"Load average before {s['load_average_before']}, after "
                f"{s['load_average_after']}.", ""]  # fmt: skip
    met = "met" if s["overhead_met"] else "NOT met"
    out += ["", f"Overhead of Ray at one actor: {s['ray_overhead_1_actor']:+.1%} (target "
            f"<= {s['target_overhead']:.0%}: {met}); load average before {s['load_average_before']}"
            f", after {s['load_average_after']}.", ""]  # fmt: skip
    return out
