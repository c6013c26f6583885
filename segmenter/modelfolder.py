"""A fitted :class:`~segmenter.model.Segmenter` as a folder of data: ``segmenter.json`` plus one
``.npy`` per fitted array (and ``encoder/`` safetensors when the encoder was fine-tuned).
Loading it runs no code from the folder (see :mod:`segmenter.persist`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segmenter import __version__, io
from segmenter.balance import ValueAxis
from segmenter.cluster import DensityClusterer, KMeansClusterer
from segmenter.cluster.tiered import TieredClusterer
from segmenter.config import SegmenterConfig
from segmenter.documents import DocumentRecipe
from segmenter.embed import (
    DEFAULT_ENCODER,
    Encoder,
    SentenceTransformerEncoder,
    folder_identity,
    onnx_cache_of,
)
from segmenter.encoders.pieces import Catalogue
from segmenter.errors import SegmenterError
from segmenter.fuse import FeatureScaler
from segmenter.lineage.carry import SegmentIds
from segmenter.lineage.drift import DriftReference
from segmenter.persist import FORMAT, MODEL_FILE, load_stage, read_model_file, save_stage
from segmenter.reduce import Reducer

if TYPE_CHECKING:
    from segmenter.model import Segmenter

logger = logging.getLogger(__name__)

#: every fitted stage a model may hold (``Segmenter.<name>_``); absent ones are not saved
STAGES: dict[str, type[Any]] = {
    "scaler": FeatureScaler,
    "value_axis": ValueAxis,
    "text_reducer": Reducer,
    "reducer": Reducer,
    "map": Reducer,
    "clusterer": KMeansClusterer,
    "taste": KMeansClusterer,
    "catalogue": Catalogue,
    "segment_ids": SegmentIds,
    "reference": DriftReference,
}
#: stages a model may lack: the fused reduction (HDBSCAN), the catalogue (whole documents),
#: stable segment ids and the drift reference (models saved before segmenter.lineage)
OPTIONAL = ("reducer", "catalogue", "segment_ids", "reference")
CLUSTERERS: dict[str, type[Any]] = {
    cls.__name__: cls for cls in (KMeansClusterer, DensityClusterer, TieredClusterer)
}


def save_model(model: Segmenter, path: str | Path, encoder: Encoder) -> None:
    """Write ``model`` (placing customers with ``encoder``) into the folder ``path``."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    encoder_ref: dict[str, Any] = {"identity": encoder.identity}
    if getattr(encoder, "finetuned", False):
        encoder.save(str(folder / "encoder"))  # type: ignore[attr-defined]
        encoder_ref = {"path": "encoder", "identity": folder_identity(str(folder / "encoder"))}
    else:
        encoder_ref["path"] = model.config_.encoder or DEFAULT_ENCODER
    stages = {n: getattr(model, f"{n}_", None) for n in STAGES}
    state = {
        "format": FORMAT,
        "segmenter_version": __version__,
        "config": model.config_.to_dict(),
        "documents": model.recipe_.state(),
        "feature_factor": model.feature_factor_,
        "encoder": encoder_ref,
        "k": model.k_,
        "balance": model.balance_,
        "segment_names": {str(k): v for k, v in model.segment_names_.items()},
        "clusterer_kind": type(model.clusterer_).__name__,
        "stages": {n: save_stage(folder, n, s) for n, s in stages.items() if s is not None},
    }
    io.write_json(state, folder / MODEL_FILE)  # last: a model file names complete arrays


def load_model(
    cls: type[Segmenter],
    path: str | Path,
    *,
    encoder: Encoder | None,
    cache: Any,
    device: str,
    progress: bool,
) -> Segmenter:
    """Read a folder written by :func:`save_model`; every damage is a one-line error."""
    folder = Path(path)
    state = read_model_file(folder)
    try:
        config = SegmenterConfig.from_dict(state["config"]).replace(device=device)
        model = cls(config, encoder=encoder, cache=cache, progress=progress)
        _restore(model, state, folder, config)
        ref = state["encoder"]
        if not isinstance(ref.get("path"), str) or not isinstance(ref.get("identity"), str):
            raise ValueError("encoder needs a 'path' and an 'identity'")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, SegmenterError):
            raise
        raise SegmenterError(
            f"--model: '{folder / MODEL_FILE}' is damaged ({type(exc).__name__}: {exc}); "
            f"re-fit the model"
        ) from None
    if model.encoder is None:
        model_path = folder / ref["path"] if ref["path"] == "encoder" else ref["path"]
        model.encoder = SentenceTransformerEncoder(
            None if model_path == DEFAULT_ENCODER else model_path,
            device=device,
            batch_size=config.batch_size,
            show_progress=progress,
            backend=config.encoder_backend,
            onnx_cache=onnx_cache_of(cache),
        )
    if model.encoder.identity != ref["identity"]:
        logger.warning(
            "encoder %s differs from the one the model was fitted with (%s); assignments may drift",
            model.encoder.identity,
            ref["identity"],
        )
    return model


def _restore(model: Segmenter, state: dict[str, Any], folder: Path, config: Any) -> None:
    model.config_ = config
    model.recipe_ = DocumentRecipe.from_state(state["documents"])
    model.feature_factor_ = float(state["feature_factor"])
    model.k_ = int(state["k"])
    model.balance_ = state.get("balance")
    model.segment_names_ = {int(k): v for k, v in state["segment_names"].items()}
    kind = state["clusterer_kind"]
    if kind not in CLUSTERERS:
        raise ValueError(f"clusterer_kind {kind!r} is not one of {list(CLUSTERERS)}")
    classes = {**STAGES, "clusterer": CLUSTERERS[kind]}
    saved = state["stages"]
    for name, cls in classes.items():
        if name in saved or name not in OPTIONAL:
            stage = load_stage(folder, name, saved.get(name), cls)
        else:
            stage = None
        setattr(model, f"{name}_", stage)
    model.timings_ = {}
