"""Model folder of a :class:`~segmenter.classify.CustomerClassifier`.

``encoder/`` (the fine-tuned sentence-transformers model, safetensors), ``head.safetensors``
(the linear head) and ``classifier.json`` (format, parameters, classes, training record).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from segmenter import io
from segmenter.classify.network import EncoderClassifier
from segmenter.embed import resolve_device
from segmenter.errors import SegmenterError
from segmenter.finetune import load_sentence_transformer

if TYPE_CHECKING:
    from segmenter.classify.model import CustomerClassifier

    Classifier = TypeVar("Classifier", bound=CustomerClassifier)

FORMAT = "segmenter.classify/1"
CONFIG_FILE = "classifier.json"
HEAD_FILE = "head.safetensors"
ENCODER_DIR = "encoder"
#: Fitted attributes saved in classifier.json besides the classes.
RECORD = ("history_", "best_epoch_", "n_steps_", "n_validation_", "probe_c_", "train_seconds_")


def write_classifier(model: CustomerClassifier, folder: str | os.PathLike[str]) -> None:
    """Write a fitted classifier's files into an existing folder."""
    from safetensors.torch import save_file

    folder = Path(folder)
    model.encoder_.save(str(folder / ENCODER_DIR), create_model_card=False)
    head = {k: v.detach().cpu().contiguous() for k, v in model.network_.head.state_dict().items()}
    with io.atomic_path(folder / HEAD_FILE) as tmp:
        save_file(head, str(tmp))
    config: dict[str, Any] = {
        "format": FORMAT,
        "params": model.get_params(),  # io.write_json turns paths into strings
        "classes": model.classes_.tolist(),
        "fitted": {name.rstrip("_"): getattr(model, name) for name in RECORD},
    }
    io.write_json(config, folder / CONFIG_FILE)


def read_classifier(
    cls: type[Classifier], path: str | os.PathLike[str], *, device: str, show_progress: bool
) -> Classifier:
    """Load a folder written by :func:`write_classifier` onto ``device``."""
    from safetensors.torch import load_file

    folder = Path(path)
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise SegmenterError(
            f"--model: '{folder}' is not a classifier model folder (no {CONFIG_FILE}); "
            f"expected the --out folder of python -m pipelines.classify train"
        )
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("format") != FORMAT:
        raise SegmenterError(
            f"--model: '{config_path}' has format {config.get('format')!r}; expected {FORMAT!r}"
        )
    model = cls(**{**config["params"], "device": device, "show_progress": show_progress})
    model.device_ = resolve_device(device)
    model.encoder_ = load_sentence_transformer(folder / ENCODER_DIR, model.device_)
    model.classes_ = np.array(config["classes"], dtype=str)
    dim = int(model.encoder_.get_embedding_dimension())
    net = EncoderClassifier(model.encoder_[0].auto_model, dim, len(model.classes_), model.dropout)
    net.head.load_state_dict(load_file(str(folder / HEAD_FILE)))
    model.network_ = net.to(model.device_).eval()
    for name in RECORD:
        setattr(model, name, config["fitted"][name.rstrip("_")])
    return model
