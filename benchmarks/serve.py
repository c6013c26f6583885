"""The assignment service under a bounded open-loop load on 127.0.0.1, batch throughput, and
databases: events read from PostgreSQL against parquet, assignments exported.

Open loop: request i is due at ``start + i / rate`` whatever the answers, sent by the first free
one of 256 keep-alive connections, and its latency is counted from its due time, so a slow server
cannot hide its backlog (no coordinated omission). The load generator (threads on
``http.client``, light on CPU) shares the machine with the server.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks.context import REPO_ROOT, BenchContext
from benchmarks.postgres import EVENTS_TABLE, postgres_bin, temporary_server
from segmenter.config import SegmenterConfig
from segmenter.data import load_events
from segmenter.model import Segmenter
from segmenter.synthetic import generate

logger = logging.getLogger(__name__)

TARGET_RATE = 50.0
TARGET_P50_MS, TARGET_P99_MS = 20.0, 100.0
BATCH = 100
#: keep-alive connections of the load generator: more than the service lets queue, so an
#: overload reaches the service (and its shedding) instead of waiting in the client
CONNECTIONS = 256


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bodies(tables: dict[str, pl.DataFrame], per_request: int) -> list[bytes]:
    events = tables["events"].with_columns(pl.col("timestamp").dt.to_string("%Y-%m-%dT%H:%M:%S"))
    users = events["user_id"].unique(maintain_order=True).to_list()
    groups = events.partition_by("user_id", as_dict=True)
    out = []
    for i in range(0, len(users) - per_request + 1, per_request):
        rows = [r for u in users[i : i + per_request] for r in groups[(u,)].to_dicts()]
        out.append(json.dumps({"events": rows}).encode())
    return out


def _open_loop(base: str, bodies: list[bytes], rate: float, seconds: float) -> dict[str, Any]:
    """Send ``rate * seconds`` requests on schedule from a pool of keep-alive connections."""
    n = int(rate * seconds)
    host, port = base.removeprefix("http://").split(":")
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    start = time.perf_counter() + 0.2
    jobs: queue.SimpleQueue[int | None] = queue.SimpleQueue()

    def worker() -> None:
        con = http.client.HTTPConnection(host, int(port), timeout=10)
        while (i := jobs.get()) is not None:
            due = start + i / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            try:
                con.request(
                    "POST",
                    "/v1/assign",
                    body=bodies[i % len(bodies)],
                    headers={"content-type": "application/json"},
                )
                response = con.getresponse()
                response.read()
                key = str(response.status)
            except (OSError, http.client.HTTPException) as exc:
                key = type(exc).__name__
                con.close()
                con = http.client.HTTPConnection(host, int(port), timeout=10)
            done = time.perf_counter()
            with lock:
                statuses[key] = statuses.get(key, 0) + 1
                if key == "200":
                    latencies.append(done - due)
        con.close()

    for i in range(n):
        jobs.put(i)
    threads = [threading.Thread(target=worker) for _ in range(CONNECTIONS)]
    for thread in threads:
        jobs.put(None)
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    ok = statuses.get("200", 0)
    return {
        "rate": rate,
        "seconds": seconds,
        "requests": n,
        "ok": ok,
        "shed_503": statuses.get("503", 0),
        "errors": n - ok - statuses.get("503", 0),
        "statuses": statuses,
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(np.max(ms)),
        "served_per_second": ok / wall,
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }


def _closed_loop(base: str, bodies: list[bytes], requests: int) -> dict[str, Any]:
    """One client sending ``requests`` bodies, each after the last answer: seconds and statuses
    (one client, so a batch never waits in the queue behind another and is not shed)."""
    import httpx

    statuses: dict[str, int] = {}
    with httpx.Client(base_url=base, timeout=120) as client:
        start = time.perf_counter()
        for i in range(requests):
            r = client.post(
                "/v1/assign",
                content=bodies[i % len(bodies)],
                headers={"content-type": "application/json"},
            )
            statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
        return {"seconds": time.perf_counter() - start, "statuses": statuses}


@contextlib.contextmanager
def _server(model: Path) -> Iterator[str]:
    """``python -m pipelines.serve`` on a free local port; yields its base URL once ready."""
    import httpx

    port = _free_port()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    env.pop("SEGMENTER_SERVE_TOKEN", None)
    command = [
        sys.executable,
        "-m",
        "pipelines.serve",
        "--model",
        str(model),
        "--port",
        str(port),
        "--quiet",
    ]
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=log)
        try:
            for _ in range(1800):
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{base}/readyz").status_code == 200:
                        break
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"server exited: {log.read()[-2000:]}")
                time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def side_by_side(
    model: Segmenter, base: str, fresh: dict[str, pl.DataFrame], n: int
) -> dict[str, Any]:
    """One customer at a time, alternately in process (``predict``) and through the service
    (one client, each request after the last answer): medians and their ratio, which a busy
    machine slows alike."""
    import httpx

    events = fresh["events"]
    users = events["user_id"].unique(maintain_order=True).to_list()[:n]
    chosen = {"events": events.filter(pl.col("user_id").is_in(users))}
    bodies = dict(zip(users, _bodies(chosen, 1), strict=True))
    local, served = [], []
    with httpx.Client(base_url=base, timeout=60) as client:
        for user in users:
            frame = events.filter(pl.col("user_id") == user)
            t = time.perf_counter()
            model.predict(load_events(frame), map_coords=False)
            local.append(time.perf_counter() - t)
            t = time.perf_counter()
            r = client.post(
                "/v1/assign", content=bodies[user], headers={"content-type": "application/json"}
            )
            served.append(time.perf_counter() - t)
            r.raise_for_status()
    in_process, service = float(np.median(local)) * 1000, float(np.median(served)) * 1000
    return {
        "customers": len(users),
        "in_process_median_ms": in_process,
        "service_median_ms": service,
        "ratio": service / in_process,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def run_load(ctx: BenchContext, *, quick: bool) -> dict[str, Any]:
    """Latency against offered rate, the 60 s target run, recovery, and batch throughput."""
    with tempfile.TemporaryDirectory(prefix="segmenter-serve-") as tmp:
        tables = generate(400, seed=ctx.seed)
        config = SegmenterConfig(k=8, seed=ctx.seed)
        model = Segmenter(config, progress=False).fit(load_events(tables["events"]))
        model.save(f"{tmp}/model")
        fresh = generate(300, seed=ctx.seed + 1)
        singles, batches = _bodies(fresh, 1), _bodies(fresh, BATCH)
        curve_seconds = 10.0 if quick else 20.0
        with _server(Path(tmp) / "model") as base:
            _open_loop(base, singles, 20.0, 3.0)  # warm the connections
            alone = side_by_side(model, base, fresh, 30)
            curve = [
                _open_loop(base, singles, rate, curve_seconds)
                for rate in (TARGET_RATE / 2, TARGET_RATE * 2)
            ]
            target = _open_loop(base, singles, TARGET_RATE, 60.0)
            overload = _open_loop(base, singles, TARGET_RATE * 4, curve_seconds * 2)
            recovery = _open_loop(base, singles, TARGET_RATE, curve_seconds)
            requests = 10 if quick else 30
            batch = _closed_loop(base, batches, requests)
    curve = sorted([*curve, target, overload], key=lambda row: row["rate"])
    return {
        "status": "ok",
        "model_customers": 400,
        "side_by_side": alone,
        "target": target,
        "target_met": target["p50_ms"] <= TARGET_P50_MS
        and target["p99_ms"] <= TARGET_P99_MS
        and target["errors"] + target["shed_503"] == 0,
        "curve": curve,
        "overload": overload,
        "recovery": recovery,
        "batch": {
            "customers": BATCH,
            "requests": requests,
            "workers": 1,
            **batch,
            "customers_per_second": batch["statuses"].get("200", 0) * BATCH / batch["seconds"],
        },
    }


# -- databases --------------------------------------------------------------------------------
_READ = """
import sys, time
import polars as pl
from segmenter.sources import read_database
t = time.perf_counter()
frame = pl.read_parquet(sys.argv[2]) if sys.argv[1] == "parquet" else (
    read_database(sys.argv[2], table="events") if sys.argv[1] == "postgres" else None)
rows = 0 if frame is None else frame.height
# VmHWM: this process's own peak (ru_maxrss would carry the parent's peak across exec)
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]
print(rows, time.perf_counter() - t, int(hwm) / 1024)
"""


def _read_in_child(kind: str, source: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", _READ, kind, source],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=600,
    )
    rows, seconds, rss = out.stdout.split()
    return {"rows": int(rows), "seconds": float(seconds), "peak_rss_mb": float(rss)}


def million_events(rows: int, seed: int) -> pl.DataFrame:
    """``rows`` synthetic events: one generated shop repeated under new customer ids."""
    base = generate(2000, seed=seed)["events"]
    copies = -(-rows // base.height)
    return pl.concat(
        base.with_columns((pl.col("user_id") + f"-{i}").alias("user_id")) for i in range(copies)
    ).head(rows)


def run_databases(ctx: BenchContext, *, rows: int, exported: int) -> dict[str, Any]:
    """1M events from PostgreSQL vs parquet (time, peak RSS, each in a fresh process) and an
    export of ``exported`` assignments to PostgreSQL and to DuckDB."""
    import psycopg

    from segmenter.sources import export_assignments

    bin_dir = postgres_bin()
    if bin_dir is None:
        return {"status": "skipped", "note": "PostgreSQL is not installed"}
    events = million_events(rows, ctx.seed)
    assignments = pl.DataFrame(
        {
            "user_id": [f"U{i:07d}" for i in range(exported)],
            "segment": np.arange(exported) % 8,
            "segment_name": "a segment",
            "confidence": np.full(exported, 0.5),
            "distance": np.full(exported, 0.25),
            "value_tier": np.arange(exported) % 3,
            "taste_group": np.arange(exported) % 5,
        }
    )
    with tempfile.TemporaryDirectory() as tmp, temporary_server(bin_dir) as uri:
        events.write_parquet(f"{tmp}/events.parquet")
        with psycopg.connect(uri) as con, con.cursor() as cur:
            cur.execute(EVENTS_TABLE)
            with cur.copy("COPY events FROM STDIN (FORMAT csv, HEADER)") as copy:
                copy.write(events.write_csv())
        baseline = _read_in_child("none", "")
        parquet = _read_in_child("parquet", f"{tmp}/events.parquet")
        postgres = _read_in_child("postgres", uri)
        export: dict[str, float] = {}
        for name, target in (("postgres", f"{uri}/segments"), ("duckdb", f"{tmp}/crm.duckdb/t")):
            t = time.perf_counter()
            export_assignments(assignments, target, run_id="bench", run_date=_now())
            export[f"{name}_first_s"] = time.perf_counter() - t
            t = time.perf_counter()
            export_assignments(assignments, target, run_id="bench2", run_date=_now())
            export[f"{name}_upsert_s"] = time.perf_counter() - t
    return {
        "status": "ok",
        "rows": rows,
        "baseline_rss_mb": baseline["peak_rss_mb"],
        "parquet": parquet,
        "postgres": postgres,
        "exported": exported,
        "export": export,
    }


def _now() -> Any:
    from datetime import datetime

    return datetime.now()


def run_serve(ctx: BenchContext) -> dict[str, Any]:
    quick = ctx.suite != "full"
    start = time.perf_counter()
    load = run_load(ctx, quick=quick)
    databases = run_databases(ctx, rows=1_000_000, exported=100_000)
    return {
        "status": "ok",
        "load": load,
        "databases": databases,
        "seconds": time.perf_counter() - start,
    }
