"""Options of the encoder refinement (the ``--deep`` head): a typed, frozen config section.

Torch-free, so that :class:`~segmenter.config.SegmenterConfig` can hold and validate it
without importing the training stack.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from segmenter.errors import SegmenterError

Objective = Literal["kmeans", "dec"]
Positives = Literal["neighbors", "views"]
OBJECTIVES: tuple[str, ...] = ("kmeans", "dec")
POSITIVES: tuple[str, ...] = ("neighbors", "views")

#: Options a command-line flag sets; errors name the flag, others the config path.
FLAGS = {"steps": "--deep-steps", "lora": "--deep-lora"}


def option_name(field: str) -> str:
    """How an error names option ``field``: its CLI flag, else ``deep_options.<field>``."""
    return FLAGS.get(field, f"deep_options.{field}")


@dataclass(frozen=True)
class DeepOptions:
    """How the encoder is refined from the frozen segments (see :mod:`segmenter.finetune.refine`).

    The seed is the pipeline's one ``seed``; whether the pipeline keeps the refined segments
    is its own decision (``SegmenterConfig.deep_keep_behaviour``).

    Attributes
    ----------
    objective : {"kmeans", "dec"}
        Clustering term: DCN's distance to the nearest centre, or DEC's KL divergence.
    steps : int
        Cap on optimizer steps.
    batch_size : int
        Anchors per step (each with ``group`` neighbours, or a second view).
    lr, head_lr : float
        Learning rates of the encoder and of the learnable centres.
    weight_decay : float
        AdamW weight decay.
    warmup : float
        Share of the steps with a linear warm-up (then a linear decay).
    alpha : float
        Degrees of freedom of the Student-t kernel.
    eta : float
        Weight of the clustering term against the contrastive one.
    temperature : float
        Temperature of the NT-Xent term.
    positives : {"neighbors", "views"}
        Positives of an anchor: its nearest neighbours (CLNN) or a second view (SCCL).
    refresh : bool
        Re-estimate the centres with a few Lloyd steps at each check.
    neighbors : int
        Neighbours looked up per document; 0 = :func:`~segmenter.finetune.auto_neighbours`.
    group : int
        Neighbours drawn per anchor in a batch.
    update_interval : int
        Steps between checks on the evaluation sample.
    tol : float
        A check is calm when fewer than this share of assignments changed.
    patience : int
        Calm checks in a row before stopping.
    min_share, min_entropy : float in [0, 1)
        Collapse guard, relative to the start's small-segment share and size entropy.
    train_embeddings : bool
        Also train the token-embedding table (frozen by default).
    eval_size : int
        Documents of the fixed evaluation sample.
    max_length : int
        Token cap per document while training.
    lora : bool
        Train LoRA adapters on the attention projections instead of the encoder's weights.
    lora_rank : int
        Rank of the LoRA adapters.
    """

    objective: Objective = "kmeans"
    steps: int = 120
    batch_size: int = 16
    lr: float = 2e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.1
    alpha: float = 1.0
    eta: float = 1.0
    temperature: float = 0.1
    positives: Positives = "neighbors"
    refresh: bool = False
    neighbors: int = 0
    group: int = 3
    update_interval: int = 20
    tol: float = 0.005
    patience: int = 2
    min_share: float = 0.25
    min_entropy: float = 0.9
    train_embeddings: bool = False
    eval_size: int = 512
    max_length: int = 128
    lora: bool = False
    lora_rank: int = 8

    def validate(self) -> DeepOptions:
        """Raise :class:`SegmenterError` naming the first bad option; return self."""
        minimum = {"steps": 1, "batch_size": 4, "update_interval": 1, "eval_size": 1,
                   "max_length": 1, "group": 1, "patience": 1, "lora_rank": 1,
                   "neighbors": 0}  # fmt: skip
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SegmenterError(
                    f"{option_name(name)}: {value!r} should be an integer >= {low}"
                    + (" (0 = auto)" if name == "neighbors" else "")
                )
        for name in ("lr", "head_lr", "alpha", "temperature"):
            if not _number(getattr(self, name)) or not getattr(self, name) > 0:
                raise SegmenterError(f"{option_name(name)}: {getattr(self, name)!r} should be > 0")
        for name in ("weight_decay", "eta", "tol"):
            if not _number(getattr(self, name)) or getattr(self, name) < 0:
                raise SegmenterError(f"{option_name(name)}: {getattr(self, name)!r} should be >= 0")
        for name in ("warmup", "min_share", "min_entropy"):
            if not _number(getattr(self, name)) or not 0 <= getattr(self, name) < 1:
                raise SegmenterError(
                    f"{option_name(name)}: {getattr(self, name)!r} should be in [0, 1)"
                )
        for name, allowed in (("objective", OBJECTIVES), ("positives", POSITIVES)):
            if getattr(self, name) not in allowed:
                raise SegmenterError(
                    f"{option_name(name)}: {getattr(self, name)!r} is not one of {list(allowed)}"
                )
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeepOptions:
        """Options from a mapping (run.json, a model folder); an unknown key is an error."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise SegmenterError(f"deep option '{unknown[0]}' is unknown; allowed: {known}")
        return cls(**data)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
