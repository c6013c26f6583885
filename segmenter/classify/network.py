"""The trainable network: a sentence-transformers encoder, mean pooling and a linear head.

The encoder is the underlying Hugging Face model of the sentence-transformers ``Transformer``
module; LoRA adapters (:func:`segmenter.finetune.add_lora`) can be put on its attention
projections instead of training all of its weights.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn


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
