"""The sentence-transformers model a fine-tuning run trains, and the encoder it returns."""

from __future__ import annotations

import copy
import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segmenter.errors import SegmenterError
from segmenter.finetune.lora import merge_lora

logger = logging.getLogger(__name__)


def load_sentence_transformer(path: str | os.PathLike[str], device: str) -> Any:
    """Load a sentence-transformers model from a local folder (checked: no pickles, no code)."""
    from sentence_transformers import SentenceTransformer

    from segmenter.embed import resolve_model_path

    # the one gate of every encoder folder: local, safe
    path = resolve_model_path(path)
    local = Path(path).exists()
    logger.info("loading encoder %s on %s", path, device)
    return SentenceTransformer(str(path), device=device, local_files_only=local)


def sentence_transformer_of(encoder: object, *, option: str = "--deep") -> Any:
    """The trainable ``SentenceTransformer`` behind an :class:`~segmenter.embed.Encoder`.

    Raises
    ------
    SegmenterError
        When the encoder has no sentence-transformers model to train (a user's own
        :class:`~segmenter.embed.Encoder`, say).
    """
    st = getattr(encoder, "st", None)
    if st is None:
        raise SegmenterError(
            f"{option} needs a sentence-transformers encoder (it fine-tunes the model's "
            f"weights); got {type(encoder).__name__}"
        )
    return st


class FinetunedEncoder:
    """An :class:`~segmenter.embed.Encoder` around a fine-tuned ``SentenceTransformer``.

    Parameters
    ----------
    st : sentence_transformers.SentenceTransformer
        The fine-tuned model (LoRA adapters may still be attached; :meth:`save` merges them).
    base_identity : str
        Identity of the encoder it was fine-tuned from.
    batch_size : int
        Texts per forward pass in :meth:`encode`.

    Attributes
    ----------
    identity : str
        ``deep:<base identity>:<digest of the weights>``.
    device : str
    """

    finetuned = True

    def __init__(self, st: Any, *, base_identity: str, batch_size: int = 64) -> None:
        self.st = st
        self.batch_size = batch_size
        digest = hashlib.sha256()
        for name, tensor in sorted(st.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().float().numpy().tobytes()[:4096])
        self.identity = f"deep:{base_identity}:{digest.hexdigest()[:16]}"
        self.device = str(st.device)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings, ndarray of shape (n_texts, dim), float32."""
        vectors = self.st.encode(
            list(texts), batch_size=self.batch_size, convert_to_numpy=True,
            normalize_embeddings=True, show_progress_bar=False,
        )  # fmt: skip
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def save(self, path: str) -> None:
        """Write a plain sentence-transformers folder (LoRA adapters merged into a copy)."""
        st = self.st
        inner = getattr(st[0], "auto_model", None)
        if inner is not None and hasattr(inner, "merge_and_unload"):
            st = copy.deepcopy(st)
            st[0].auto_model = merge_lora(st[0].auto_model)
        st.save(path)
