"""Fine-tuning a sentence encoder: what the deep head and the classifier share.

- :mod:`~segmenter.finetune.runtime`: bf16 autocast on CUDA, a seeded (forked) torch generator;
- :mod:`~segmenter.finetune.lora`: LoRA adapters on the detected attention projections, merged
  back after training;
- :mod:`~segmenter.finetune.encoder`: loading a local sentence-transformers model to train, and
  the :class:`FinetunedEncoder` a refinement returns;
- :mod:`~segmenter.finetune.refine`: the deep head, :func:`refine_encoder`, and its thin
  class :class:`EncoderRefiner` (:mod:`~segmenter.finetune.refiner`), with its options
  :class:`DeepOptions` (a section of :class:`~segmenter.config.SegmenterConfig`), its
  objectives and its acceptance rule (:mod:`~segmenter.finetune.acceptance`).

Nothing here imports torch until it is used.
"""

from __future__ import annotations

from segmenter.finetune.encoder import (
    FinetunedEncoder,
    load_sentence_transformer,
    sentence_transformer_of,
)
from segmenter.finetune.lora import ATTENTION_PROJECTIONS, add_lora, merge_lora
from segmenter.finetune.objectives import auto_neighbours, neighbours
from segmenter.finetune.options import DeepOptions
from segmenter.finetune.refine import Refinement, refine_encoder
from segmenter.finetune.refiner import EncoderRefiner
from segmenter.finetune.runtime import autocast, seeded

__all__ = [
    "ATTENTION_PROJECTIONS",
    "DeepOptions",
    "EncoderRefiner",
    "FinetunedEncoder",
    "Refinement",
    "add_lora",
    "auto_neighbours",
    "autocast",
    "load_sentence_transformer",
    "merge_lora",
    "neighbours",
    "refine_encoder",
    "seeded",
    "sentence_transformer_of",
]
