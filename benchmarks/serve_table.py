"""Markdown of the ``serve`` section: latency against offered rate, batches, databases."""

from __future__ import annotations

from typing import Any

from benchmarks.serve import TARGET_P50_MS, TARGET_P99_MS, TARGET_RATE
from benchmarks.tables import f, skipped_note


def render_serve(s: dict[str, Any] | None) -> list[str]:
    out = ["#### Assignment service (`python -m pipelines.serve`) and databases", ""]
    skipped = skipped_note(s)
    if skipped or s is None:
        return out + (skipped or [])
    load = s["load"]
    t = load["target"]
    verdict = "met" if load["target_met"] else "**not met**"
    alone = load.get("side_by_side")
    if alone:
        out += [
            f"Side by side, one customer at a time ({alone['customers']} customers, alternately "
            f"in process and through the service, one client): `predict` median "
            f"{f(alone['in_process_median_ms'], 1)} ms, the service "
            f"{f(alone['service_median_ms'], 1)} ms (**{f(alone['ratio'], 2)}x**; 1-min load "
            f"average {alone['load_average_1m']}"
            + (f"; {alone['note']}" if alone.get("note") else "")
            + ").",
            "",
        ]
    out += [
        f"One customer per request, open loop on 127.0.0.1 (latency counted from each "
        f"request's scheduled send time; the load generator runs on the same 2 cores), model "
        f"fitted on {load['model_customers']} synthetic customers. At {TARGET_RATE:.0f} "
        f"requests/s for {t['seconds']:.0f} s: p50 **{f(t['p50_ms'], 1)} ms**, p99 "
        f"**{f(t['p99_ms'], 1)} ms**, {t['errors']} errors, {t['shed_503']} shed (target "
        f"p50 <= {TARGET_P50_MS:.0f} ms, p99 <= {TARGET_P99_MS:.0f} ms, zero errors: {verdict}; "
        f"1-min load average after it {t['load_average_1m_after']}).",
        "",
        "| offered req/s | seconds | served/s | p50 ms | p90 ms | p99 ms | max ms | 503 shed "
        "| errors | load avg 1m after |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [*load["curve"], {**load["recovery"], "label": " (recovery, right after)"}]
    for r in rows:
        out.append(
            f"| {r['rate']:.0f}{r.get('label', '')} | {r['seconds']:.0f} | "
            f"{f(r['served_per_second'], 1)} | {f(r['p50_ms'], 1)} | {f(r['p90_ms'], 1)} | "
            f"{f(r['p99_ms'], 1)} | {f(r['max_ms'], 1)} | {r['shed_503']} | {r['errors']} | "
            f"{r['load_average_1m_after']} |"
        )
    b = load["batch"]
    if "invalid" in b:
        out += [
            "",
            f"Batch requests of {b['customers']} customers: no figure ({b['invalid']}).",
            "",
        ]
    else:
        out += [
            "",
            f"Batch requests of {b['customers']} customers ({b['requests']} requests from one "
            f"client, each after the last answer): **{f(b['customers_per_second'], 0)} "
            f"customers/s**.",
            "",
        ]
    d = s["databases"]
    if d.get("status") != "ok":
        return [*out, f"Databases: {d.get('status')}: {d.get('note', '')}", ""]
    e = d["export"]
    out += [
        f"{d['rows']:,} events read in a fresh process each (peak RSS includes the "
        f"{f(d['baseline_rss_mb'], 0)} MB of a process that only imports polars"
        + (
            f"; 1-min load average {d['load_average_1m_at_start']}"
            if "load_average_1m_at_start" in d
            else ""
        )
        + (f"; {d['note']}" if d.get("note") else "")
        + "):",
        "",
        "| source | seconds | peak RSS MB | ratio to parquet (time) |",
        "|---|---:|---:|---:|",
    ]
    for name in ("parquet", "postgres"):
        r = d[name]
        ratio = r["seconds"] / d["parquet"]["seconds"]
        label = (
            "parquet (`pl.read_parquet`)"
            if name == "parquet"
            else ("PostgreSQL 15, local (`--input postgresql://... --table events`)")
        )
        out.append(
            f"| {label} | {f(r['seconds'], 2)} | {f(r['peak_rss_mb'], 0)} | {f(ratio, 1)}x |"
        )
    out += [
        "",
        f"Export of {d['exported']:,} assignments (`--export`, one transaction, upsert by "
        f"user_id): PostgreSQL {f(e['postgres_first_s'], 2)} s into an empty table, "
        f"{f(e['postgres_upsert_s'], 2)} s updating every row; DuckDB "
        f"{f(e['duckdb_first_s'], 2)} s / {f(e['duckdb_upsert_s'], 2)} s.",
        "",
    ]
    return out
