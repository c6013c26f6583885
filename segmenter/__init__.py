"""segmenter: customer segmentation for e-commerce driven by a pretrained language encoder."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["EventData", "Segmenter", "SegmenterConfig", "SegmenterError", "load_events"]


def __getattr__(name: str) -> Any:
    # heavy imports (torch, umap, faiss) only when asked for
    if name == "Segmenter":
        from segmenter.model import Segmenter

        return Segmenter
    if name == "SegmenterConfig":
        from segmenter.config import SegmenterConfig

        return SegmenterConfig
    if name in ("EventData", "load_events"):
        from segmenter import data

        return getattr(data, name)
    if name == "SegmenterError":
        from segmenter.errors import SegmenterError

        return SegmenterError
    raise AttributeError(f"module 'segmenter' has no attribute {name!r}")
