"""Which encoder backend runs: the user's choice, or ``auto`` from CPU features + a measured check.

``auto`` keeps torch on a GPU. On a CPU it tries the faster backends the CPU supports, in
the order of :func:`candidates`, and accepts the first whose vectors agree with torch fp32 on
:func:`check_documents`: mean cosine >= :data:`MEAN_COSINE_FLOOR` and every cosine >=
:data:`MIN_COSINE_FLOOR`. The decision is stored per (encoder, CPU flags, library versions) in
``<onnx cache>/decisions.json`` so the check runs once per machine and encoder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
from collections.abc import Callable
from pathlib import Path

import numpy as np

from segmenter.errors import SegmenterError

logger = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("auto", "torch", "torch-bf16", "onnx", "onnx-int8")
#: Floors of the ``auto`` agreement check (cosine to torch fp32 on :func:`check_documents`).
#: 0.999 mean: cosine is a proxy, and the measured cost of a small drop is large. The int8
#: backend at mean cosine 0.997 moved the planted-segment ARI of ``tests/test_discover.py``'s
#: data from 0.93 to 0.72 (83% of customers kept their segment), while bf16 at 0.99998 kept
#: every customer's segment (BENCHMARKS.md, "Encoder backends"). The floor sits between what
#: visibly changes segments and what does not, so ``auto`` never trades segments for speed.
MEAN_COSINE_FLOOR = 0.999
#: No single document may move further than this (a broken kernel shows here first).
MIN_COSINE_FLOOR = 0.995
#: CPU flags that make a backend worth trying (``/proc/cpuinfo`` names).
INT8_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "avx2"})
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def check_backend(backend: object) -> str:
    """Return ``backend`` when it is one of :data:`BACKENDS`, else raise."""
    if backend not in BACKENDS:
        raise SegmenterError(f"--encoder-backend: '{backend}' is not one of {list(BACKENDS)}")
    return str(backend)


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo``; torch's capability name elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    import torch

    capability = str(torch.backends.cpu.get_cpu_capability()).lower()  # e.g. "avx512", "avx2"
    return frozenset({"avx2"} if capability.startswith(("avx2", "avx512")) else set())


def candidates(flags: frozenset[str]) -> list[str]:
    """Backends worth trying on a CPU with these flags: bf16 (it holds fp32's segments and
    needs no export). int8 ONNX stays opt-in: its vectors (mean cosine 0.997) are below the
    agreement floor on every document set measured, so trying it would only export and
    quantize a model to reject it."""
    return ["torch-bf16"] if flags & BF16_FLAGS else []


def check_documents(n: int = 64, seed: int = 0) -> list[str]:
    """A fixed set of shopping documents in the rendered format (the agreement check's input)."""
    from segmenter.synthetic import catalog

    items = catalog(seed)
    names, cats = items["item_name"].to_list(), items["category"].to_list()
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n):
        picks = rng.choice(len(names), size=int(rng.integers(2, 14)), replace=False)
        shares = np.bincount([sorted(set(cats)).index(cats[i]) for i in picks])
        top = np.argsort(-shares)[:3]
        parts = [f"{sorted(set(cats))[c].lower()} ({100 * shares[c] // len(picks)}%)" for c in top]
        doc = f"Categories: {', '.join(parts)}. Items: {', '.join(names[i] for i in picks)}."
        if rng.random() < 0.5:
            doc += f" Searches: {names[int(rng.integers(len(names)))].split()[-1]}."
        docs.append(doc)
    return docs


def agreement(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Mean and minimum row cosine of two arrays of unit vectors (n, dim)."""
    cos = np.einsum("ij,ij->i", reference.astype(np.float64), candidate.astype(np.float64))
    return {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min())}


def passes(scores: dict[str, float]) -> bool:
    return scores["mean_cosine"] >= MEAN_COSINE_FLOOR and scores["min_cosine"] >= MIN_COSINE_FLOOR


def choose_backend(
    identity: str,
    encode: Callable[[str, list[str]], np.ndarray],
    root: Path,
    flags: frozenset[str] | None = None,
) -> str:
    """Resolve ``auto`` on a CPU: the first candidate that passes the agreement check.

    Parameters
    ----------
    identity : str
        The encoder's identity (fp32).
    encode : callable
        ``encode(backend, texts) -> (n, dim) unit vectors``.
    root : Path
        Folder of ``decisions.json``.
    flags : frozenset of str, optional
        CPU flags (default: this machine's).
    """
    from segmenter.encoders.onnx_files import versions
    from segmenter.io import write_json

    flags = cpu_flags() if flags is None else flags
    floors = [MEAN_COSINE_FLOOR, MIN_COSINE_FLOOR, candidates(flags)]
    key = json.dumps([identity, sorted(flags), versions(), platform.machine(), floors])
    key = hashlib.sha256(key.encode()).hexdigest()[:24]
    path = Path(root) / "decisions.json"
    try:
        decisions = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        decisions = {}
    if isinstance(decisions.get(key), dict) and decisions[key].get("backend") in BACKENDS:
        return str(decisions[key]["backend"])
    texts = check_documents()
    reference = encode("torch", texts)
    chosen, tried = "torch", {}
    for backend in candidates(flags):
        try:
            tried[backend] = scores = agreement(reference, encode(backend, texts))
        except (SegmenterError, RuntimeError, OSError) as exc:  # e.g. no bf16 kernels here
            logger.warning("encoder backend %s cannot run here (%s); not used", backend, exc)
            continue
        if passes(scores):
            chosen = backend
            break
        logger.warning("encoder backend %s disagrees with fp32 (%s); not used", backend, scores)
    logger.info("encoder backend auto -> %s (checked: %s)", chosen, tried)
    decisions[key] = {"backend": chosen, "identity": identity, "checked": tried}
    write_json(decisions, path)
    return chosen
