"""One speed/memory configuration, run in a fresh process so that peak RSS is its own.

    python -m benchmarks.worker '{"chain": "ours", "folder": "DIR", ...}' result.json

``chain`` is ``"ours"``: load ``DIR/events.parquet`` and ``DIR/users.parquet``, fit the default
:class:`~segmenter.model.Segmenter` (k = 8) with an empty embedding cache, then re-run the
cached stages with 1% of customers changed. Or ``"naive"``: the chain a practitioner writes
in a notebook on the same events: each customer's most-bought item names joined into one
string -> ``SentenceTransformer(path).encode`` -> ``sklearn.cluster.KMeans(n_clusters=8,
n_init=10)``. Both report the adjusted Rand index of their segments against the planted
archetypes in ``DIR/labels.parquet`` (user_id, segment).
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from segmenter.data import EventData

logger = logging.getLogger(__name__)

CHANGED_SHARE = 0.01
#: segments of both chains (the naive chain's ``KMeans(n_clusters=8)``)
K = 8


def rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (:func:`segmenter.model.peak_rss_mb`:
    this program's own high-water mark, not the parent's that forked it)."""
    from segmenter.model import peak_rss_mb

    peak = peak_rss_mb()
    return round((peak or 0.0) * 1e6 / 2**20, 1)


def _documents(data: EventData, max_tokens: int) -> tuple[list[str], float, float]:
    """The pipeline's documents of ``data`` and the seconds of its feature and document stages."""
    from segmenter.documents import DocumentRecipe

    start = time.perf_counter()
    # as the pipeline: as of the last event
    recipe = DocumentRecipe(max_tokens=max_tokens)
    features = recipe.fit_features(data.events)
    middle = time.perf_counter()
    recipe.fit_documents(data.events, features, data.users)
    docs = recipe.documents(data.events, features, data.users)["document"].to_list()
    return docs, middle - start, time.perf_counter() - middle


def changed_events(events: pl.DataFrame, share: float, seed: int) -> tuple[pl.DataFrame, int]:
    """Events where ``share`` of the customers made one more order (a repeat of their last).

    Returns the new events and the number of changed customers.
    """
    users = events["user_id"].unique().sort()
    n = max(1, round(share * len(users)))
    rng = np.random.default_rng(seed)
    chosen = pl.Series(rng.choice(users.to_numpy(), size=n, replace=False), dtype=pl.String)
    last = (
        events.filter(pl.col("user_id").is_in(chosen.implode()))
        .sort("timestamp")
        .group_by("user_id")
        .last()
        .with_columns(
            (pl.col("order_id").fill_null("o") + pl.lit("-repeat")).alias("order_id"),
            pl.lit("purchase").alias("event_type"),
        )
        .select(events.columns)
    )
    return pl.concat([events, last]).sort(["user_id", "timestamp"]), n


def run_ours(spec: dict[str, Any]) -> dict[str, Any]:
    """Our pipeline on ``spec["folder"]``; per-stage seconds and the cache re-run."""
    from benchmarks.context import load_encoder
    from segmenter.config import SegmenterConfig
    from segmenter.data import EventData, load_events
    from segmenter.embed import EmbeddingCache, embed_documents
    from segmenter.model import Segmenter

    folder = Path(spec["folder"])
    start = time.perf_counter()
    data = load_events(folder / "events.parquet", users=folder / "users.parquet")
    load_seconds = time.perf_counter() - start
    rss_data = rss_mib()
    config = SegmenterConfig(k=K, seed=spec["seed"], batch_size=spec.get("batch_size", 64))
    # our chain as shipped: the default backend (auto: bf16 autocast where the CPU has it and
    # the vectors agree with fp32); the naive chain stays on SentenceTransformer fp32
    encoder = load_encoder(
        spec["encoder"], batch_size=config.batch_size, backend=config.encoder_backend
    )
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        cache = EmbeddingCache(tmp)
        start = time.perf_counter()
        model = Segmenter(config, encoder=encoder, cache=cache, progress=False).fit(data)
        total = time.perf_counter() - start
        ari = planted_ari(folder, model.assignments_["user_id"], model.assignments_["segment"])
        events, n_changed = changed_events(data.events, CHANGED_SHARE, spec["seed"])
        cold_docs = model.timings_["features"] + model.timings_["documents"]
        docs, t_feat, t_docs = _documents(EventData(events, data.users), config.max_tokens)
        start = time.perf_counter()
        _, stats = embed_documents(model.embedder(), docs, cache)  # as the pipeline embeds
        rerun_embed = time.perf_counter() - start
    cold = cold_docs + model.timings_["embed"]
    rerun = t_feat + t_docs + rerun_embed
    return {
        "chain": "ours",
        "stages": dict(model.timings_),
        "stage_peak_rss_mb": dict(model.peak_rss_mb_),
        "fit_seconds": total,
        "chain_seconds": load_seconds + total,
        "ari": ari,
        "load_seconds": load_seconds,
        "rss_after_data_mib": rss_data,
        "cache_rerun": {
            "changed_customers": n_changed,
            "encoded": stats["encoded"],
            "cached": stats["cached"],
            "embed_seconds_cold": model.timings_["embed"],
            "embed_seconds_rerun": rerun_embed,
            "stages_seconds_cold": cold,
            "stages_seconds_rerun": rerun,
        },
    }


def run_naive(spec: dict[str, Any]) -> dict[str, Any]:
    """The naive chain on the same events: item lists -> encode -> sklearn k-means."""
    from sklearn.cluster import KMeans

    from benchmarks.baselines import item_key, plain_texts
    from benchmarks.context import DEFAULT_ENCODER_SPEC, load_encoder

    folder = Path(spec["folder"])
    start = time.perf_counter()
    events = pl.read_parquet(folder / "events.parquet")
    load_seconds = time.perf_counter() - start
    rss_data = rss_mib()
    stages: dict[str, float] = {}
    start = time.perf_counter()
    customers = events["user_id"].unique().sort()
    docs = plain_texts(events, customers.to_list(), item_key(events) or "item_id")
    stages["documents"] = time.perf_counter() - start
    start = time.perf_counter()
    if spec["encoder"] == DEFAULT_ENCODER_SPEC:
        from sentence_transformers import SentenceTransformer

        from segmenter.embed import packaged_model_path

        model = SentenceTransformer(str(packaged_model_path()), device="cpu")
        emb = model.encode(docs, show_progress_bar=False)
    else:
        emb = load_encoder(spec["encoder"]).encode(docs)
    stages["embed"] = time.perf_counter() - start
    start = time.perf_counter()
    labels = KMeans(n_clusters=K, n_init=10, random_state=spec["seed"]).fit_predict(emb)
    stages["cluster"] = time.perf_counter() - start
    fit = sum(stages.values())
    return {
        "chain": "naive",
        "stages": {k: round(v, 3) for k, v in stages.items()},
        "fit_seconds": fit,
        "chain_seconds": load_seconds + fit,
        "ari": planted_ari(folder, customers, pl.Series(labels)),
        "load_seconds": load_seconds,
        "rss_after_data_mib": rss_data,
    }


def planted_ari(folder: Path, user_id: pl.Series, segment: pl.Series) -> float | None:
    """ARI of ``segment`` against ``folder/labels.parquet`` (None when the file is absent)."""
    from sklearn.metrics import adjusted_rand_score

    path = folder / "labels.parquet"
    if not path.is_file():
        return None
    found = pl.DataFrame({"user_id": user_id.cast(pl.String), "found": segment})
    joined = found.join(pl.read_parquet(path), on="user_id", how="inner")
    return float(adjusted_rand_score(joined["segment"], joined["found"]))


def main(argv: list[str]) -> int:
    """Run the configuration of ``argv[0]`` and write its result to ``argv[1]``."""
    if len(argv) != 2:
        print("usage: python -m benchmarks.worker SPEC_JSON OUT_JSON", file=sys.stderr)
        return 2
    spec = json.loads(argv[0])
    result = run_ours(spec) if spec["chain"] == "ours" else run_naive(spec)
    result.update(peak_rss_mib=rss_mib())
    Path(argv[1]).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    raise SystemExit(main(sys.argv[1:]))
