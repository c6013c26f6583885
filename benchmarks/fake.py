"""A tiny deterministic encoder for smoke runs of the benchmark (no model, no download)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"\w+")


class HashingEncoder:
    """Bag of hashed words, L2-normalized: texts sharing words get close vectors.

    Parameters
    ----------
    dim : int
        Vector length.
    """

    def __init__(self, dim: int = 32) -> None:
        self.dim = dim

    @property
    def identity(self) -> str:
        """Cache key of the vectors: changes with ``dim``."""
        return f"hashing-encoder-{self.dim}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """ndarray of shape (n_texts, dim), float32, rows of unit norm (zero rows stay zero)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "big")
                out[i, h % self.dim] += 1.0 if h & 1 << 31 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)


def hashing_384() -> HashingEncoder:
    """A :class:`HashingEncoder` as wide as all-MiniLM-L6-v2 (384), for the scale run of the
    stages around the encoder: ``--encoder benchmarks.fake:hashing_384``."""
    return HashingEncoder(384)
