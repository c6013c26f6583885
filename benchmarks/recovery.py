"""Recovery of known groups: planted synthetic archetypes and Banking77 intents."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks.context import BenchContext
from benchmarks.metrics import recovery
from segmenter.cluster import KMeansClusterer
from segmenter.config import SegmenterConfig
from segmenter.data import EventData, load_events
from segmenter.embed import embed_documents
from segmenter.model import Segmenter
from segmenter.reduce import Reducer
from segmenter.synthetic import ARCHETYPES, generate

logger = logging.getLogger(__name__)

BANKING_FILE = "banking77/banking77_test.tsv"
BANKING_K = 77


def planted_data(n_customers: int, seed: int) -> tuple[EventData, np.ndarray]:
    """Synthetic events with planted archetypes and the label of each customer.

    Returns
    -------
    data : EventData
    labels : ndarray of shape (n_customers,)
        Archetype of each customer, in sorted user-id order (the pipeline's row order).
    """
    tables = generate(n_customers, seed=seed)
    data = load_events(tables["events"], users=tables["users"])
    labels = tables["labels"].sort("user_id")["segment"].to_numpy()
    return data, labels


def score_planted(
    data: EventData, labels: np.ndarray, config: SegmenterConfig, ctx: BenchContext
) -> tuple[dict[str, float], Segmenter]:
    """ARI / NMI / ACC of the pipeline with ``config`` against the planted labels."""
    model = Segmenter(config, encoder=ctx.encoder, cache=ctx.cache, progress=ctx.progress)
    model.fit(data)
    found = model.assignments_["segment"].to_numpy()
    return recovery(labels, found), model


def run_planted(ctx: BenchContext) -> tuple[dict[str, Any], Segmenter]:
    """The default pipeline (k = number of archetypes) on ``generate(n, seed)``.

    Returns the section and the fitted model (the latency section reuses it).
    """
    start = time.perf_counter()
    n = ctx.sizes.planted_customers
    data, labels = planted_data(n, ctx.seed)
    config = SegmenterConfig(seed=ctx.seed, k=len(ARCHETYPES))
    scores, model = score_planted(data, labels, config, ctx)
    return {
        "status": "ok",
        "customers": n,
        "archetypes": len(ARCHETYPES),
        "k": config.k,
        **scores,
        "timings": model.timings_,
        "seconds": round(time.perf_counter() - start, 1),
    }, model


def read_banking77(
    path: str | os.PathLike[str], limit: int | None = None, seed: int = 0
) -> pl.DataFrame:
    """``label``, ``text`` of a Banking77 TSV (optionally a seeded sample of ``limit`` rows)."""
    frame = pl.read_csv(Path(path), separator="\t", quote_char=None)
    if limit is not None and frame.height > limit:
        frame = frame.sample(limit, seed=seed).sort("label", "text")
    return frame


def run_banking(ctx: BenchContext, frame: pl.DataFrame | None = None) -> dict[str, Any]:
    """Encoder + k-means (k = 77) on the Banking77 test texts: Hungarian ACC and NMI.

    Two rows: k-means on the embeddings themselves, and on our reduction (PCA -> UMAP with
    the default settings) for comparison.
    """
    start = time.perf_counter()
    if frame is None:
        path = ctx.data_file(BANKING_FILE)
        if path is None:
            note = f"skipped: {ctx.shared_data / BANKING_FILE} is missing"
            logger.warning("Banking77 %s", note)
            return {"status": "skipped", "note": note}
        frame = read_banking77(path, ctx.sizes.banking_texts, ctx.seed)
    texts = frame["text"].to_list()
    truth = np.unique(frame["label"].to_numpy(), return_inverse=True)[1].ravel()
    k = min(BANKING_K, len(np.unique(truth)))
    emb, _ = embed_documents(ctx.encoder, texts, ctx.cache)
    cfg = SegmenterConfig()
    rows: dict[str, Any] = {}
    km = KMeansClusterer(k, n_restarts=cfg.n_restarts, n_iter=cfg.n_iter, random_state=ctx.seed)
    rows["encoder_kmeans"] = recovery(truth, km.fit(emb).labels_)
    reduced = Reducer(
        pca_dims=cfg.pca_dims,
        umap_dims=cfg.umap_dims,
        n_neighbors=cfg.umap_neighbors,
        random_state=ctx.seed,
    ).fit_transform(emb)
    rows["encoder_umap_kmeans"] = recovery(truth, km.fit(reduced).labels_)
    return {
        "status": "ok",
        "texts": len(texts),
        "k": k,
        "systems": rows,
        "seconds": round(time.perf_counter() - start, 1),
    }
