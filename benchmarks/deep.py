"""Deep clustering head against the frozen encoder, in the same run.

Banking77 (ACC / NMI at k = 77, with the curve of loss, ACC and assignment change over the
training steps), planted synthetic data (ARI) and Online Retail (value validity and taste
lift with the temporal split). Called by ``pipelines.benchmark`` (full suite) as
``run_deep_benchmark(shared_data, quick=..., seed=...)``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.metrics import hungarian_accuracy, recovery
from benchmarks.recovery import BANKING_FILE, BANKING_K, planted_data, read_banking77
from segmenter.cluster import KMeansClusterer
from segmenter.config import SegmenterConfig
from segmenter.embed import EmbeddingCache, SentenceTransformerEncoder
from segmenter.finetune import DeepOptions, EncoderRefiner, neighbours
from segmenter.model import Segmenter
from segmenter.reduce import Reducer

logger = logging.getLogger(__name__)

KMEANS_SEEDS = 10
PURITY_NEIGHBOURS = 5


def _kmeans(emb: np.ndarray, k: int, seed: int) -> np.ndarray:
    return KMeansClusterer(k, n_restarts=5, random_state=seed).fit(emb).labels_


def banking_deep(
    path: Path,
    *,
    texts_limit: int | None,
    steps: int,
    seed: int,
    batch_size: int = 32,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Frozen encoder + k-means vs the deep head on Banking77 test texts."""
    frame = read_banking77(path, texts_limit, seed)
    texts = frame["text"].to_list()
    truth = np.unique(frame["label"].to_numpy(), return_inverse=True)[1].ravel()
    k = min(BANKING_K, len(np.unique(truth)))
    encoder = SentenceTransformerEncoder(show_progress=False)
    start = time.perf_counter()
    frozen_emb = encoder.encode(texts)
    frozen = _kmeans(frozen_emb, k, seed)

    def curve(
        step: int, index: np.ndarray, assigned: np.ndarray, z: np.ndarray
    ) -> dict[str, float]:
        # what the pipeline does after training: k-means on the (normalized) new embeddings
        z = z / np.linalg.norm(z, axis=1, keepdims=True)
        return {
            "acc_head": hungarian_accuracy(truth[index], assigned),
            "acc": hungarian_accuracy(truth[index], _kmeans(z, k, seed)),
            "neighbour_purity": _purity(z, truth[index]),
        }

    purity0 = {"neighbour_purity": _purity(frozen_emb, truth)}
    settings = {"update_interval": max(1, steps // 6), "eval_size": len(texts)}
    cfg = DeepOptions(**{**settings, **(options or {}), "steps": steps, "batch_size": batch_size})
    train_start = time.perf_counter()
    head = EncoderRefiner(cfg, seed=seed, progress=False).fit(
        encoder.st, texts, frozen, callback=curve
    )
    train_seconds = time.perf_counter() - train_start
    deep_emb = head.encoder_.encode(texts)
    # k-means alone moves ACC by up to +-4 points at k = 77: compare means over paired seeds
    scores = {
        name: [recovery(truth, _kmeans(emb, k, seed + r)) for r in range(KMEANS_SEEDS)]
        for name, emb in (("frozen", frozen_emb), ("deep", deep_emb))
    }
    mean = {name: _mean(runs) for name, runs in scores.items()}
    # what a user of the pipeline sees: its PCA/UMAP reduction before k-means
    umap = {
        name: _mean([recovery(truth, _kmeans(reduced, k, seed + r)) for r in range(KMEANS_SEEDS)])
        for name, reduced in (
            ("frozen", _reduced(frozen_emb, seed)),
            ("deep", _reduced(deep_emb, seed)),
        )
    }
    return {
        "texts": len(texts),
        "k": k,
        "kmeans_seeds": KMEANS_SEEDS,
        "frozen": mean["frozen"],
        "deep": mean["deep"],
        "acc_per_kmeans_seed": {n: [s["acc"] for s in runs] for n, runs in scores.items()},
        "acc_gain_points": round(100 * (mean["deep"]["acc"] - mean["frozen"]["acc"]), 2),
        "train_seconds": round(train_seconds, 1),
        "seconds": round(time.perf_counter() - start, 1),
        "best_step": head.best_step_,
        "collapse_guard_triggered": head.collapsed_,
        "curve": [{"step": 0, "acc": scores["frozen"][0]["acc"], **purity0}, *head.history_],
        "pipeline_reduction": {
            **umap,
            "acc_gain_points": round(100 * (umap["deep"]["acc"] - umap["frozen"]["acc"]), 2),
        },
        "config": {**asdict(cfg), "seed": seed},
    }


def _purity(emb: np.ndarray, truth: np.ndarray) -> float:
    """Why neighbour positives work: share of the nearest neighbours with the same intent."""
    near = neighbours(emb, PURITY_NEIGHBOURS)
    return float((truth[near] == truth[:, None]).mean())


def _mean(runs: list[dict[str, float]]) -> dict[str, float]:
    return {m: float(np.mean([r[m] for r in runs])) for m in ("ari", "nmi", "acc")}


def _reduced(emb: np.ndarray, seed: int) -> np.ndarray:
    defaults = SegmenterConfig()
    return Reducer(
        pca_dims=defaults.pca_dims,
        umap_dims=defaults.umap_dims,
        n_neighbors=defaults.umap_neighbors,
        random_state=seed,
    ).fit_transform(emb)


def _head_summary(model: Segmenter) -> dict[str, Any]:
    """Best step and collapse guard of a deep model's training (nothing for a frozen one)."""
    report = getattr(model, "deep_report_", None)
    if report is None:
        return {}
    return {
        "deep_best_step": report["best_step"],
        "deep_collapse_guard_triggered": report["collapse_guard_triggered"],
        "deep_behaviour_separation": report["behaviour_separation"],
        "deep_accepted": report["accepted"],
    }


def planted_deep(
    *, customers: int, steps: int, seed: int, cache: EmbeddingCache | None = None
) -> dict[str, Any]:
    """Planted-data ARI of the default pipeline with and without the deep head."""
    data, labels = planted_data(customers, seed)
    out: dict[str, Any] = {"customers": customers, "steps": steps}
    base = SegmenterConfig(seed=seed)
    for name, config in (
        ("frozen", base),
        ("deep", base.replace(deep=True, deep_options=DeepOptions(steps=steps))),
    ):
        model = Segmenter(config, cache=cache, progress=False).fit(data)
        out[name] = recovery(labels, model.assignments_["segment"].to_numpy())
        out.update(_head_summary(model))
        out[f"{name}_seconds"] = round(sum(model.timings_.values()), 1)
    return out


def retail_deep(
    path: Path, *, steps: int, seed: int, cache: EmbeddingCache | None = None
) -> dict[str, Any]:
    """Online Retail value validity and taste lift at k = 8, frozen vs deep."""
    from benchmarks.retail import (
        CUTOFF,
        aligned,
        evaluate,
        load_online_retail,
        temporal_split,
    )

    split = temporal_split(load_online_retail(path), CUTOFF)
    out: dict[str, Any] = {"customers": len(split.customers), "steps": steps}
    base = SegmenterConfig(seed=seed)
    for name, config in (
        ("frozen", base),
        ("deep", base.replace(deep=True, deep_options=DeepOptions(steps=steps))),
    ):
        model = Segmenter(config, cache=cache, progress=False).fit(split.calibration)
        labels = aligned(model, split, model.assignments_["segment"].to_numpy())
        out[name] = evaluate(split, labels)
        out.update(_head_summary(model))
    return out


def run_deep_benchmark(
    shared_data: Path, *, quick: bool, seed: int, cache: EmbeddingCache | None = None
) -> dict[str, Any]:
    """Frozen vs deep on Banking77, planted data and Online Retail (those present).

    Banking77 texts are short, so its runs use 32 anchors a step (128 texts with their
    neighbours); the customer pipelines use the head's defaults (16 anchors, 64 documents of
    up to 128 tokens) with ``steps`` capped.
    """
    steps = 60 if quick else 120
    out: dict[str, Any] = {"steps": steps}
    banking = Path(shared_data) / BANKING_FILE
    if banking.is_file():
        out["banking77"] = banking_deep(
            banking,
            texts_limit=1000 if quick else None,
            steps=120 if quick else 200,
            seed=seed,
            batch_size=32,
        )
    else:
        out["banking77"] = {"status": "skipped", "note": f"{banking} is missing"}
    out["planted"] = planted_deep(
        customers=1000 if quick else 3000, steps=steps, seed=seed, cache=cache
    )
    retail = Path(shared_data) / "online_retail" / "online_retail.csv.gz"
    if retail.is_file() and not quick:
        out["retail"] = retail_deep(retail, steps=steps, seed=seed, cache=cache)
    return out
