"""Markdown helpers and the speed, overhead and latency tables of a benchmark result."""

from __future__ import annotations

import math
from typing import Any


def f(value: Any, digits: int = 3) -> str:
    """A number for a table: fixed digits, '-' for missing or nan."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table (a list of lines, a blank line last)."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return [*out, ""]


def skipped_note(section: dict[str, Any] | None) -> list[str] | None:
    """The note of a skipped or absent section, ``None`` when it ran."""
    if section is None:
        return ["Not run in this suite.", ""]
    if section.get("status") != "ok":
        return [f"{section.get('status', 'skipped').capitalize()}: {section.get('note', '')}", ""]
    return None


def render_speed(s: dict[str, Any] | None) -> list[str]:
    """Per-stage seconds, throughput, peak RSS, planted ARI, ratios ours / naive, cache re-run."""
    out = ["#### Speed and memory (fresh process per chain, cold caches, same events)", ""]
    skipped = skipped_note(s)
    if skipped or s is None:
        return out + (skipped or [])
    out += [
        "Naive chain: each customer's most-bought item names joined -> "
        "`SentenceTransformer.encode` -> sklearn `KMeans(n_clusters=8, n_init=10)`. Ours: "
        "`Segmenter(SegmenterConfig(k=8)).fit`. Both from the parquet files; ARI against the "
        "planted archetypes.",
        "",
    ]
    rows, ratios = [], []
    for size in s["sizes"]:
        for chain in ("ours", "naive"):
            r = size[chain]
            st = r["stages"]
            docs = st.get("features", 0.0) + st.get("documents", 0.0)
            other = r["fit_seconds"] - docs - st["embed"] - st["cluster"]
            rows.append(
                [
                    f"{size['n']:,}",
                    chain,
                    f(r["load_seconds"], 1),
                    f(docs, 1),
                    f(st["embed"], 1),
                    f(st["cluster"], 1),
                    f(other, 1),
                    f(r["chain_seconds"], 1),
                    f(r["customers_per_second"], 1),
                    f(r["peak_rss_mib"], 0),
                    f(r.get("ari"), 3),
                ]
            )
        q = size["ratios"]
        ratios.append(
            [
                f"{size['n']:,}",
                f(q["kmeans_chain"], 2),
                f(1 / q["kmeans_chain"] if q["kmeans_chain"] else float("nan"), 2),
                f(q["per_stage"]["embed"], 2),
                f(q["per_stage"]["cluster"], 2),
                f(q["peak_rss"], 2),
                f(q["ari_gain"], 3),
            ]
        )
    out += table(
        [
            "customers",
            "chain",
            "load s",
            "features + documents s",
            "embed s",
            "cluster s",
            "other s (value, taste space, 2-D map, profile)",
            "total s",
            "customers/s",
            "peak RSS MiB",
            "planted ARI",
        ],
        rows,
    )
    out += ["Ratios ours / naive (below 1 = ours faster or smaller):", ""]
    out += table(
        [
            "customers",
            "whole chain",
            "speed-up (naive / ours)",
            "embed",
            "cluster",
            "peak RSS",
            "ARI ours - naive",
        ],
        ratios,
    )
    rows = []
    for size in s["sizes"]:
        c = size["ours"]["cache_rerun"]
        rows.append(
            [
                f"{size['n']:,}",
                f"{c['changed_customers']:,}",
                f"{c['encoded']:,}",
                f(c["embed_seconds_cold"], 1),
                f(c["embed_seconds_rerun"], 1),
                f(c["embed_ratio"], 3),
                f(c["stages_seconds_cold"], 1),
                f(c["stages_seconds_rerun"], 1),
                f(c["saved_seconds"], 1),
            ]
        )
    out += ["Embedding cache on a re-run where 1% of customers made one more order:", ""]
    out += table(
        [
            "customers",
            "changed",
            "re-encoded",
            "embed s cold",
            "embed s re-run",
            "ratio",
            "features+documents+embed s cold",
            "same, re-run",
            "saved s",
        ],
        rows,
    )
    return out


def render_overhead(s: dict[str, Any] | None) -> list[str]:
    """Our embedding stage against the bare encode call."""
    out = ["#### Encoder overhead", ""]
    skipped = skipped_note(s)
    if skipped or s is None:
        return out + (skipped or [])
    ok = "within" if s["median_round_ratio"] <= s["target_ratio"] else "outside"
    rounds = ", ".join(
        f"{f(o, 1)}/{f(b, 1)}" for o, b in zip(s["ours_seconds"], s["bare_seconds"], strict=True)
    )
    return [
        *out,
        f"`embed_documents` (no cache) vs a bare `SentenceTransformer.encode` of the same "
        f"{s['texts']:,} documents at the same batch size, on the same loaded model, in "
        f"{s['rounds']} alternating rounds (seconds ours/bare: {rounds}). Median of the "
        f"per-round ratios ours / bare: **{f(s['median_round_ratio'], 3)}** (target <= "
        f"{s['target_ratio']:.2f}: {ok}); ratio of the medians {f(s['ratio_of_medians'], 3)}; "
        f"{f(s['texts_per_second_ours'], 1)} vs {f(s['texts_per_second_bare'], 1)} texts/s. "
        f"A round compares two back-to-back runs, which cancels slow phases of a shared "
        f"machine better than medians over the whole run.",
        "",
    ]


def render_latency(s: dict[str, Any] | None) -> list[str]:
    """Single-customer latency, its stages and the profile."""
    out = ["#### Single-customer assignment latency", ""]
    skipped = skipped_note(s)
    if skipped or s is None:
        return out + (skipped or [])
    verdict = "met" if s["met"] else "not met"
    out += [
        f"`Segmenter.load(model).predict(load_events(one customer))`, no embedding cache, "
        f"model fitted on {s['model_customers']:,} synthetic customers, {s['customers']} new "
        f"customers one at a time after warm-up: median **{f(s['median_ms'], 1)} ms**, "
        f"p95 {f(s['p95_ms'], 1)} ms (target median <= {s['target_median_ms']:.0f} ms"
        + (f", p95 <= {s['target_p95_ms']:.0f} ms" if "target_p95_ms" in s else "")
        + f": {verdict}). "
        + (
            f"Batches of {s['batch']['batch']} customers in one `predict` call: "
            f"{f(s['batch']['customers_per_second'], 0)} customers/s. "
            if "batch" in s
            else ""
        )
        + (
            f"With `predict(..., map_coords=False)` (no 2-D map projection), timed alternately "
            f"with the default on the same customers: median {f(s['median_ms_no_map'], 1)} ms, "
            f"p95 {f(s['p95_ms_no_map'], 1)} ms. "
            if "median_ms_no_map" in s
            else ""
        )
        + f"Where the time goes (median ms per customer, dominant: "
        f"{s['dominant_stage']}):",
        "",
    ]
    stages = s["stage_median_ms"]
    out += table(list(stages), [[f(v, 1) for v in stages.values()]])
    out += ["Top functions by own time (cProfile):", ""]
    out += [f"- {line}" for line in s["profile_top"]] + [""]
    return out
