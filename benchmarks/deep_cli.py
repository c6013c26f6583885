"""The deep head through the pipeline a user runs (events in, segments out), frozen vs ``--deep``.

Labelled sets fed as events, as ``pipelines.discover`` reads them: Banking77 texts as one
search event per customer (8 seeded intents, and a sample of all 77), synthetic text-only
customers (:func:`benchmarks.deep_accept.text_shop`) and the planted archetypes. For each:
a frozen ``Segmenter`` fit and one with ``deep=True`` (seed 0: fine-tuning and segments),
which records whether the fine-tuned encoder was kept and why. Each run's own ``segment``
column is scored (``run_acc``), and ACC / NMI are averaged over ``KMEANS_SEEDS`` paired
k-means seeds on the space each run's segments live in (the deep run's: the fine-tuned taste
space when it kept the fine-tuning, the frozen one when it did not). Called as
``run_deep_cli_benchmark(shared_data, quick=..., seed=...)``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.balance_cases import text_case
from benchmarks.deep_accept import banking_intents, text_shop
from benchmarks.metrics import recovery
from benchmarks.recovery import BANKING_FILE, planted_data
from segmenter.cluster import KMeansClusterer
from segmenter.config import SegmenterConfig
from segmenter.data import EventData
from segmenter.embed import EmbeddingCache
from segmenter.finetune import DeepOptions
from segmenter.model import Segmenter

logger = logging.getLogger(__name__)

KMEANS_SEEDS = 10


def _scores(model: Segmenter, truth: np.ndarray, k: int, seeds: int) -> dict[str, Any]:
    """The run's own segments (seed 0), and k-means with ``seeds`` paired seeds on the space
    the run's segments live in (``reduced_``; with one value tier that is the pipeline's own
    clustering step, with the run's restarts)."""
    labels = model.assignments_["segment"].to_numpy()
    return _pass_scores(model.reduced_, labels, truth, k, model.config_.n_restarts, seeds) | {
        "value_tiers": (model.balance_ or {}).get("n_tiers")
    }


def _pass_scores(
    space: np.ndarray, labels: np.ndarray, truth: np.ndarray, k: int, restarts: int, seeds: int
) -> dict[str, Any]:
    runs = [
        recovery(truth, KMeansClusterer(k, n_restarts=restarts, random_state=s).fit(space).labels_)
        for s in range(seeds)
    ]
    run = recovery(truth, labels)
    return {
        "acc": round(float(np.mean([r["acc"] for r in runs])), 4),
        "nmi": round(float(np.mean([r["nmi"] for r in runs])), 4),
        "acc_per_seed": [round(r["acc"], 4) for r in runs],
        "run_acc": round(run["acc"], 4),
        "run_nmi": round(run["nmi"], 4),
    }


def cli_case(
    name: str,
    data: EventData,
    truth: np.ndarray,
    *,
    k: int,
    steps: int,
    seed: int,
    seeds: int = KMEANS_SEEDS,
    cache: EmbeddingCache | None = None,
) -> dict[str, Any]:
    """Frozen vs shipped ``--deep`` on one labelled event set (see the module docstring)."""
    cfg = SegmenterConfig(k=k, seed=seed)
    frozen_model = Segmenter(cfg, cache=cache, progress=False).fit(data)
    # the head's defaults, with a check every quarter of the (capped) steps
    options = DeepOptions(steps=steps, update_interval=max(1, steps // 4))
    start = time.perf_counter()
    deep = Segmenter(cfg.replace(deep=True, deep_options=options), cache=cache, progress=False)
    deep.fit(data)
    deep_seconds = time.perf_counter() - start
    report = deep.deep_report_
    frozen = _scores(frozen_model, truth, k, seeds)
    shipped = _scores(deep, truth, k, seeds)
    # the rule's verdict against the measured gain: the fine-tuned candidate against the
    # frozen pass of the same --deep run (document pooling), which a rejection keeps
    restarts = deep.config_.n_restarts
    fallback, *candidate = [
        _pass_scores(p.reduced, p.labels, truth, k, restarts, seeds) for p in deep.deep_passes_
    ]
    out = {
        "case": name, "customers": data.n_users, "k": k, "steps": steps,
        "kmeans_seeds": seeds, "accepted": report["accepted"],
        "rejected_because": report.get("rejected_because", ""),
        "best_step": report.get("best_step"), "acceptance": report.get("acceptance"),
        "consistency": report.get("consistency"),
        "frozen": frozen, "deep": shipped,
        "acc_gain_points": round(100 * (shipped["acc"] - frozen["acc"]), 2),
        "deep_frozen_pass": fallback, "candidate": candidate[0] if candidate else None,
        "candidate_gain_points": round(100 * (candidate[0]["acc"] - fallback["acc"]), 2)
        if candidate else None,
        "deep_fit_seconds": round(deep_seconds, 1),
    }  # fmt: skip
    logger.info("deep cli %s: %s", name, {k: v for k, v in out.items() if k != "acceptance"})
    return out


def run_deep_cli_benchmark(
    shared_data: Path, *, quick: bool, seed: int, cache: EmbeddingCache | None = None
) -> dict[str, Any]:
    """Frozen vs ``--deep`` through the pipeline on every labelled set present."""
    limit, steps, seeds = (600, 16, KMEANS_SEEDS) if quick else (1500, 60, KMEANS_SEEDS)
    out: dict[str, Any] = {"seed": seed, "cases": []}
    if (shared_data / BANKING_FILE).exists():
        for name, intents in (("banking77_8", 8), ("banking77_77", 77)):
            case = text_case(name, banking_intents(shared_data, intents, limit, seed))
            assert case.truth is not None
            out["cases"].append(cli_case(name, case.data, case.truth, k=case.k, steps=steps,
                                         seed=seed, seeds=seeds, cache=cache))  # fmt: skip
    shop = text_case("text_shop_8", text_shop(limit, seed))
    assert shop.truth is not None
    out["cases"].append(cli_case("text_shop_8", shop.data, shop.truth, k=8, steps=steps,
                                 seed=seed, seeds=seeds, cache=cache))  # fmt: skip
    data, truth = planted_data(limit, seed)
    out["cases"].append(cli_case("planted_archetypes", data, truth, k=8, steps=steps,
                                 seed=seed, seeds=seeds, cache=cache))  # fmt: skip
    return out
