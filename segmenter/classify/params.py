"""Checks and resolved defaults of :class:`~segmenter.classify.CustomerClassifier` options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from segmenter.classify.training import TrainSettings
from segmenter.embed import resolve_device, resolve_model_path
from segmenter.errors import SegmenterError

#: Options that must be integers >= 1 (``max_steps`` and ``max_length`` may also be None).
COUNTS = ("lora_rank", "epochs", "batch_size", "n_iter_no_change", "max_steps", "max_length")
#: Options bounded to a closed interval.
RANGES = {
    "weight_decay": (0.0, 1.0),
    "warmup_fraction": (0.0, 0.99),
    "validation_fraction": (0.0, 0.5),
    "dropout": (0.0, 0.99),
}
CHOICES: dict[str, tuple[str | None, ...]] = {
    "head_init": ("probe", "random"),
    "class_weight": ("balanced", None),
}


def check_params(params: Mapping[str, Any]) -> None:
    """Raise :class:`SegmenterError` naming the first bad option, its value and what is allowed.

    Parameters
    ----------
    params : mapping
        ``CustomerClassifier.get_params()``.
    """
    for name in COUNTS:
        value = params[name]
        if value is None and name in ("max_steps", "max_length"):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SegmenterError(f"{name}={value!r} should be an integer >= 1")
    for name in ("lr", "head_lr"):
        value = params[name]
        if value is not None and not (isinstance(value, int | float) and value > 0):
            raise SegmenterError(f"{name}={value!r} should be a number > 0")
    for name, (low, high) in RANGES.items():
        value = params[name]
        if not (isinstance(value, int | float) and low <= value <= high):
            raise SegmenterError(f"{name}={value!r} should be between {low} and {high}")
    for name, allowed in CHOICES.items():
        if params[name] not in allowed:
            raise SegmenterError(f"{name}={params[name]!r} should be one of {list(allowed)}")
    seed = params["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SegmenterError(f"seed={seed!r} should be an integer >= 0")
    resolve_device(params["device"])
    resolve_model_path(params["encoder"])


def resolve_settings(
    params: Mapping[str, Any], *, max_seq_length: int, device: str
) -> TrainSettings:
    """Training settings with the defaults resolved.

    ``lr``: 5e-5 (5e-4 with LoRA); ``head_lr``: the encoder's rate with a probed head, else
    1e-2 (the head sees unit-length embeddings); ``max_length``: the encoder's ``max_seq_length``.
    """
    lr = params["lr"] if params["lr"] is not None else (5e-4 if params["lora"] else 5e-5)
    head_lr = params["head_lr"]
    if head_lr is None:
        head_lr = lr if params["head_init"] == "probe" else 1e-2
    return TrainSettings(
        epochs=params["epochs"],
        lr=lr,
        head_lr=head_lr,
        weight_decay=params["weight_decay"],
        warmup_fraction=params["warmup_fraction"],
        batch_size=params["batch_size"],
        max_steps=params["max_steps"],
        n_iter_no_change=params["n_iter_no_change"],
        max_length=params["max_length"] or max_seq_length,
        device=device,
        show_progress=params["show_progress"],
    )
