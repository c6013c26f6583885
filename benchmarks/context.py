"""What every benchmark section shares: sizes of the suite, encoder, cache, seed, machine."""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from segmenter.embed import EmbeddingCache, Encoder, SentenceTransformerEncoder
from segmenter.errors import SegmenterError

Suite = Literal["smoke", "quick", "full"]
SUITES: tuple[str, ...] = ("smoke", "quick", "full")

#: Encoder spec meaning "the configured sentence-transformers model" (packaged MiniLM).
DEFAULT_ENCODER_SPEC = "default"
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Sizes:
    """How much work each section of a suite does.

    Attributes
    ----------
    retail_customers : int or None
        Online Retail calibration customers kept (a seeded sample); ``None`` = all.
    ks : tuple of int
        Numbers of segments compared on Online Retail.
    planted_customers : int
        Synthetic customers for the planted-segment recovery.
    banking_texts : int or None
        Banking77 test texts used (``None`` = all 3,080).
    speed_customers : tuple of int
        Synthetic customer counts of the speed and memory section (one subprocess each).
    overhead_texts, overhead_rounds : int
        Texts and alternating rounds of the encoder-overhead measurement.
    latency_customers : int
        Customers assigned one at a time.
    sweep_settings : int
        How many settings of :data:`benchmarks.sweep.GRID` to sweep (0 = no sweep).
    extras : bool
        Try the supervised-classification and deep-clustering hooks (full suite).
    """

    retail_customers: int | None
    ks: tuple[int, ...]
    planted_customers: int
    banking_texts: int | None
    speed_customers: tuple[int, ...]
    overhead_texts: int
    overhead_rounds: int
    latency_customers: int
    sweep_settings: int
    extras: bool


SIZES: dict[str, Sizes] = {
    "smoke": Sizes(120, (2, 3), 160, 120, (150,), 40, 2, 5, 2, False),
    "quick": Sizes(None, (4, 8, 12), 10_000, None, (5_000, 10_000), 600, 3, 200, 0, False),
    "full": Sizes(
        None, (4, 8, 12), 10_000, None, (5_000, 10_000, 100_000), 3_000, 3, 200, 99, True
    ),
}


def load_encoder(
    spec: str = DEFAULT_ENCODER_SPEC, *, batch_size: int = 64, backend: str = "torch"
) -> Encoder:
    """Build the benchmark's encoder from a spec that a subprocess can rebuild too.

    Parameters
    ----------
    spec : str
        ``"default"`` for the packaged all-MiniLM-L6-v2 (progress bars off), or
        ``"module:callable"`` naming a zero-argument factory of an :class:`Encoder`.
    batch_size : int
        Texts per forward pass of the default encoder.
    backend : str
        How the default encoder runs (``--encoder-backend``): torch fp32 for the quality
        sections, the shipped default (``auto``) where our chain is timed.
    """
    if spec == DEFAULT_ENCODER_SPEC:
        return SentenceTransformerEncoder(
            None, device="cpu", batch_size=batch_size, show_progress=False, backend=backend
        )
    module, _, name = spec.partition(":")
    if not module or not name:
        raise SegmenterError(f"encoder spec '{spec}' should be 'default' or 'module:callable'")
    try:
        factory: Callable[[], Encoder] = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise SegmenterError(f"encoder spec '{spec}' cannot be imported: {exc}") from None
    return factory()


class BenchCache(EmbeddingCache):
    """The benchmark's embedding cache: counts hits and misses; ``cold`` starts empty.

    A cold cache reads only what this run wrote (in a temporary folder), so the run costs what
    a first run costs, and still writes every vector to ``root`` so that the next run is warm.

    Parameters
    ----------
    root : path
        The shared cache folder.
    cold : bool
        Ignore what ``root`` already holds.
    """

    def __init__(self, root: str | os.PathLike[str], *, cold: bool = False) -> None:
        self.shared_root = Path(root)
        self.cold = cold
        self._scratch = tempfile.mkdtemp(prefix="bench-cold-cache-") if cold else None
        super().__init__(self._scratch or root)
        self.hits = 0
        self.misses = 0

    def lookup(self, identity: str, keys: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """Vectors and hit mask, as :meth:`EmbeddingCache.lookup`; counts them."""
        vectors, hits = super().lookup(identity, keys)
        self.hits += int(hits.sum())
        self.misses += int((~hits).sum())
        return vectors, hits

    def store(self, identity: str, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Store vectors (a cold cache also writes them to the shared folder)."""
        super().store(identity, keys, vectors)
        if self.cold:
            EmbeddingCache(self.shared_root).store(identity, keys, vectors)

    def close(self) -> None:
        """Remove the temporary folder of a cold cache."""
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


@dataclass
class BenchContext:
    """Shared state of one benchmark run.

    Attributes
    ----------
    suite : {"smoke", "quick", "full"}
    sizes : Sizes
    seed : int
        Seed of every random step; stability compares ``seed`` with ``seed + 1``.
    shared_data : Path
        ``<repo>/../shared/data``; sections whose file is missing are skipped with a note.
    encoder_spec : str
        See :func:`load_encoder`; subprocesses rebuild the encoder from it.
    cache : BenchCache or None
        Embedding cache for the quality sections (never for the speed section).
    progress : bool
        Progress bars.
    customers : int or None
        Customers of the sections measured at one size (``--customers``; None: the suite's).
    ray_runs : tuple of str or None
        Runs of the ``ray_scale`` section (``--ray-runs``; None: all).
    """

    suite: str
    sizes: Sizes
    seed: int = 0
    shared_data: Path = field(default_factory=lambda: REPO_ROOT.parent / "shared" / "data")
    encoder_spec: str = DEFAULT_ENCODER_SPEC
    cache: BenchCache | None = None
    progress: bool = False
    customers: int | None = None
    ray_runs: tuple[str, ...] | None = None
    _encoder: Encoder | None = field(default=None, repr=False)

    @property
    def encoder(self) -> Encoder:
        """The encoder of the quality sections (built once)."""
        if self._encoder is None:
            self._encoder = load_encoder(self.encoder_spec)
        return self._encoder

    def data_file(self, relative: str) -> Path | None:
        """``shared_data / relative`` when it exists, else ``None``."""
        path = self.shared_data / relative
        return path if path.exists() else None


def machine() -> dict[str, Any]:
    """nproc, RAM, CPU model, load average and the main package versions."""
    import psutil

    from segmenter.runfolder import versions

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "nproc": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": cpu,
        "load_average_1m_at_start": round(load[0], 2),
        "platform": platform.platform(),
        "gpu": _gpu_name(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "versions": versions(),
    }


def _gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def seeds(ctx: BenchContext) -> Iterator[int]:
    """The two seeds every stochastic system runs with (stability = ARI between them)."""
    yield ctx.seed
    yield ctx.seed + 1
