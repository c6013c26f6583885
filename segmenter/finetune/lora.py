"""LoRA adapters (peft) on an encoder's attention projections, and folding them back in."""

from __future__ import annotations

from typing import Any

from segmenter.errors import SegmenterError

#: Names of attention projection layers across common encoder architectures.
ATTENTION_PROJECTIONS = ("query", "key", "value", "q_proj", "k_proj", "v_proj", "q_lin", "k_lin",
                         "v_lin", "q", "k", "v")  # fmt: skip


def add_lora(backbone: Any, *, rank: int, option: str = "--lora") -> Any:
    """Wrap ``backbone`` (a Hugging Face model) with LoRA adapters on its attention projections.

    The projections are found by name (:data:`ATTENTION_PROJECTIONS`); only the adapters stay
    trainable, and :func:`merge_lora` folds them back in after training. The adapters'
    initialization draws from torch's global generator (seeded by the caller).

    Parameters
    ----------
    backbone : torch.nn.Module
    rank : int
        Rank of the adapters (``lora_alpha`` = 2 x rank, dropout 0.1).
    option : str
        The option that asked for LoRA, named in the error when the encoder has no
        attention projections.
    """
    from peft import LoraConfig, get_peft_model
    from torch import nn

    names = sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in backbone.named_modules()
            if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in ATTENTION_PROJECTIONS
        }
    )
    if not names:
        raise SegmenterError(
            f"{option}: the encoder has no attention projection layers named like "
            f"{list(ATTENTION_PROJECTIONS[:6])}; train it fully instead (leave out {option})"
        )
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.1, target_modules=names)
    return get_peft_model(backbone, config)


def merge_lora(backbone: Any) -> Any:
    """Fold LoRA adapters into the base weights; a plain backbone is returned as is."""
    merge = getattr(backbone, "merge_and_unload", None)
    return merge() if callable(merge) else backbone
