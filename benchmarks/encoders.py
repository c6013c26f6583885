"""Encoder backends side by side: throughput, cosine to fp32, and segment agreement.

    python -m pipelines.benchmark --section encoders --no-markdown

On the same documents (the shipped sample's and Online Retail's), bare
``SentenceTransformer.encode`` in fp32 against each backend of our embedding stage
(:class:`segmenter.embed.SentenceTransformerEncoder` ``backend=``), in interleaved rounds so
that the load of a shared machine hits every backend alike; then the pipeline fitted with each
fast backend and with fp32 (same seed) and the share of customers whose segment agrees
(Hungarian-matched).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.context import BenchContext
from benchmarks.metrics import hungarian_accuracy
from segmenter.config import SegmenterConfig
from segmenter.data import EventData, load_events
from segmenter.documents import DocumentRecipe
from segmenter.embed import SentenceTransformerEncoder
from segmenter.encoders.backends import agreement, cpu_flags
from segmenter.model import Segmenter

logger = logging.getLogger(__name__)

BACKENDS = ("torch-bf16", "onnx", "onnx-int8")
#: (texts timed per data set, interleaved rounds, fit the pipeline for agreement)
SIZES = {"smoke": (24, 1, False), "quick": (384, 2, True), "full": (1024, 3, True)}
SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def documents(data: EventData) -> list[str]:
    """The pipeline's documents of ``data`` (default recipe)."""
    recipe = DocumentRecipe(max_tokens=SegmenterConfig().max_tokens)
    features = recipe.fit_features(data.events)
    recipe.fit_documents(data.events, features, data.users)
    return recipe.documents(data.events, features, data.users)["document"].to_list()


def data_sets(ctx: BenchContext, retail: EventData | None) -> dict[str, EventData]:
    sample = load_events(SAMPLE / "events.parquet", users=SAMPLE / "users.parquet",
                         items=SAMPLE / "items.parquet")  # fmt: skip
    out = {"sample": sample}
    path = ctx.data_file("online_retail/online_retail.csv.gz")
    if retail is not None:
        out["online_retail"] = retail
    elif path is not None:
        out["online_retail"] = load_events(path, preset="online-retail")
    return out


def throughput(texts: list[str], rounds: int, onnx_root: Path) -> dict[str, Any]:
    """Texts per second of bare ST fp32 and each backend, and cosine to bare fp32."""
    ours = {b: SentenceTransformerEncoder(device="cpu", show_progress=False, backend=b,
                                          onnx_cache=onnx_root) for b in BACKENDS}  # fmt: skip
    st = ours["torch-bf16"].st  # the same loaded model, called bare

    def bare() -> np.ndarray:
        return st.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)

    runners = {"st_fp32": bare} | {b: (lambda b=b: ours[b].encode(texts)) for b in BACKENDS}
    for b in BACKENDS:
        ours[b].encode(texts[:8])  # build/load the ONNX files outside the timing
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            vectors[name] = run()
            seconds[name].append(time.perf_counter() - start)
    ref = vectors["st_fp32"]
    rows = {}
    for name, times in seconds.items():
        best = min(times)
        rows[name] = {
            "seconds": [round(t, 2) for t in times],
            "texts_per_s": round(len(texts) / best, 1),
            "ratio_to_st_fp32": round(min(seconds["st_fp32"]) / best, 2),
            **{k: round(v, 5) for k, v in agreement(ref, vectors[name]).items()},
        }
    return {"texts": len(texts), "rounds": rounds, "backends": rows}


def segment_agreement(data: EventData, ctx: BenchContext, onnx_root: Path) -> dict[str, Any]:
    """Fit with fp32 and with each fast backend (same seed); matched share of customers."""
    labels = {}
    for backend in ("torch", "torch-bf16", "onnx-int8"):
        config = SegmenterConfig(k=8, seed=ctx.seed, encoder_backend=backend)
        encoder = SentenceTransformerEncoder(device="cpu", show_progress=False, backend=backend,
                                             onnx_cache=onnx_root)  # fmt: skip
        start = time.perf_counter()
        model = Segmenter(config, encoder=encoder, cache=ctx.cache, progress=False).fit(data)
        labels[backend] = model.assignments_["segment"].to_numpy()
        logger.info("encoders: %s fit in %.0fs", backend, time.perf_counter() - start)
    return {
        backend: round(hungarian_accuracy(labels["torch"], labels[backend]), 4)
        for backend in ("torch-bf16", "onnx-int8")
    }


def run_encoders(ctx: BenchContext, retail: EventData | None = None) -> dict[str, Any]:
    """The ``encoders`` section: see the module docstring."""
    n_texts, rounds, fit = SIZES.get(ctx.suite, SIZES["quick"])
    flags = sorted(cpu_flags() & {"avx2", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16"})
    out: dict[str, Any] = {"status": "ok", "cpu_flags": flags, "data": {}}
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        SentenceTransformerEncoder(device="cpu", backend="onnx-int8", onnx_cache=root).encode(["a"])
        out["int8_build_seconds"] = round(time.perf_counter() - start, 1)
        for name, data in data_sets(ctx, retail).items():
            texts = documents(data)
            picked = np.random.default_rng(ctx.seed).permutation(len(texts))[:n_texts]
            entry = throughput([texts[i] for i in picked], rounds, root)
            if fit:
                entry["segment_agreement_k8"] = segment_agreement(data, ctx, root)
            entry["customers"] = data.n_users
            out["data"][name] = entry
    return out
