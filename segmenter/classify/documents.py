"""The tokenizer of a classifier's encoder, for the budget of its customer documents."""

from __future__ import annotations

import os
from pathlib import Path

from segmenter.embed import resolve_model_path


def encoder_tokenizer(encoder: str | os.PathLike[str] | None) -> Path | None:
    """``tokenizer.json`` of a local encoder folder, or None (the packaged tokenizer)."""
    path = Path(resolve_model_path(encoder)) / "tokenizer.json"
    return path if path.is_file() else None
