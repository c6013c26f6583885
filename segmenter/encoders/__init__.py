"""Encoder backends: torch fp32/bf16 and ONNX Runtime fp32/int8, and how ``auto`` picks one.

The public encoder classes live in :mod:`segmenter.embed`
(``SentenceTransformerEncoder(backend=...)``).
"""

from __future__ import annotations

from segmenter.encoders.backends import BACKENDS, check_backend

__all__ = ["BACKENDS", "check_backend"]
