"""A model folder from someone else is data: load only what cannot run code.

Every loader of a sentence-transformers folder (``--encoder``, a fine-tuned encoder inside a
model folder, a classify model's encoder) goes through
:func:`segmenter.embed.resolve_model_path`, which calls :func:`check_safe_folder`: pickle-format
files (``*.bin``, ``*.pt``, ``*.pkl``, ...) and code references (a ``modules.json`` type outside
sentence-transformers, a ``config.json`` ``auto_map``) are refused with a one-line error.
"""

from __future__ import annotations

import json
from pathlib import Path

from segmenter.errors import SegmenterError

#: Weight and object formats that unpickle (and so may run code) when loaded.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".joblib", ".ckpt")


def check_safe_folder(folder: Path, *, option: str = "--encoder") -> None:
    """Raise :class:`SegmenterError` when loading ``folder`` could run code from it."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix.lower() in PICKLE_SUFFIXES:
            raise SegmenterError(
                f"{option}: '{folder}' holds '{path.relative_to(folder)}', a pickle-format file "
                f"that could run code when loaded; only safetensors weights are accepted"
            )
    modules = _json(folder / "modules.json", option)
    for module in modules if isinstance(modules, list) else []:
        kind = str(module.get("type", "")) if isinstance(module, dict) else ""
        if not kind.startswith("sentence_transformers."):
            raise SegmenterError(
                f"{option}: '{folder}/modules.json' names module type {kind!r}; only "
                f"sentence_transformers modules are loaded"
            )
    config = _json(folder / "config.json", option)
    if isinstance(config, dict) and "auto_map" in config:
        raise SegmenterError(
            f"{option}: '{folder}/config.json' asks for custom model code (auto_map); only "
            f"built-in architectures are loaded"
        )


def _json(path: Path, option: str) -> object:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SegmenterError(f"{option}: '{path}' is not valid JSON ({exc})") from None
