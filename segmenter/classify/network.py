"""The trainable network: a sentence-transformers encoder, mean pooling and a linear head.

The encoder is the underlying Hugging Face model of the sentence-transformers ``Transformer``
module; LoRA adapters (peft) can be put on its attention projections instead of training
all of its weights.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segmenter.errors import SegmenterError

logger = logging.getLogger(__name__)

#: Names of attention projection layers across common encoder architectures.
ATTENTION_PROJECTIONS = ("query", "key", "value", "q_proj", "k_proj", "v_proj", "q_lin", "k_lin",
                         "v_lin", "q", "k", "v")  # fmt: skip


def load_sentence_transformer(path: str | os.PathLike[str], device: str) -> Any:
    """Load a sentence-transformers model offline when ``path`` is a local folder."""
    from sentence_transformers import SentenceTransformer

    local = Path(path).exists()
    logger.info("loading encoder %s on %s", path, device)
    return SentenceTransformer(str(path), device=device, local_files_only=local)


class EncoderClassifier(nn.Module):
    """Encoder -> masked mean pooling -> L2 normalization -> dropout -> linear head.

    The normalized mean of the token states is exactly the sentence embedding of mean-pooling
    sentence-transformers models such as all-MiniLM-L6-v2, so before fine-tuning the head sees
    the same vectors as a classifier on the frozen encoder's embeddings.

    Parameters
    ----------
    backbone : torch.nn.Module
        A Hugging Face encoder returning ``last_hidden_state`` (possibly wrapped by peft).
    dim : int
        Width of the encoder's hidden states.
    n_classes : int
        Number of output logits.
    dropout : float
        Dropout on the pooled embedding during training.
    """

    def __init__(self, backbone: nn.Module, dim: int, n_classes: int, dropout: float) -> None:
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(dim, n_classes)

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Unit-length mean of the token states over the attention mask, shape (batch, dim)."""
        states = self.backbone(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return nn.functional.normalize(pooled, dim=-1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits of shape (batch, n_classes), in float32."""
        return self.head(self.dropout(self.embed(batch))).float()


def add_lora(backbone: nn.Module, *, rank: int) -> nn.Module:
    """Wrap ``backbone`` with LoRA adapters on its attention projections (peft).

    Only the adapters stay trainable; :func:`merge_lora` folds them back in after training.
    The adapters' initialization draws from torch's global generator (seeded by the caller).
    """
    from peft import LoraConfig, get_peft_model

    names = sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in backbone.named_modules()
            if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in ATTENTION_PROJECTIONS
        }
    )
    if not names:
        raise SegmenterError(
            f"--lora: the encoder has no attention projection layers named like "
            f"{list(ATTENTION_PROJECTIONS[:6])}; train it fully instead (leave out --lora)"
        )
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.1, target_modules=names)
    return get_peft_model(backbone, config)


def merge_lora(backbone: nn.Module) -> nn.Module:
    """Fold LoRA adapters into the base weights; a plain backbone is returned as is."""
    merge = getattr(backbone, "merge_and_unload", None)
    return merge() if callable(merge) else backbone


def batches(order: Sequence[int], size: int) -> Iterator[list[int]]:
    """Consecutive chunks of ``order`` of at most ``size`` items."""
    for start in range(0, len(order), size):
        yield list(order[start : start + size])


def tokenize(
    tokenizer: Any, texts: Sequence[str], *, max_length: int, device: str
) -> dict[str, torch.Tensor]:
    """Tokenize, pad and truncate one batch and move it to ``device``."""
    encoded = tokenizer(
        list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    return {key: value.to(device) for key, value in encoded.items()}


def autocast(device: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA; nothing elsewhere (CPU training stays float32)."""
    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
