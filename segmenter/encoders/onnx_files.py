"""ONNX files of a sentence-transformers model: exported and quantized once, cached on disk.

The graph holds the whole sentence embedding: the transformer, mean pooling over the attention
mask and L2 normalization (what the packaged model's ``1_Pooling`` and ``2_Normalize`` modules
do), so ONNX Runtime returns the final vectors. Files live in
``<root>/<sha of (encoder identity, backend, opset, versions)>/`` with a ``model.json`` that
records the SHA-256 of ``model.onnx``; a file whose digest does not match (a crash mid-write
by another tool, a disk error, a hand edit) is rebuilt, and a changed encoder gets a new
folder because its identity is part of the key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any

from segmenter.errors import SegmenterError

logger = logging.getLogger(__name__)

OPSET = 17
#: Backends built from ONNX files.
ONNX_BACKENDS: tuple[str, ...] = ("onnx", "onnx-int8")
#: MatMuls kept in float32 by the int8 backend: the down-projection of every feed-forward
#: block (``layer.N/output/dense``). Its input is the GELU output, whose few large values make a
#: per-tensor uint8 activation scale coarse; keeping these 6 of 36 weight MatMuls in fp32 lifts
#: the mean cosine to fp32 from 0.993 to 0.997 on the sample's documents; still below the
#: ``auto`` floor, so int8 runs only when asked for (BENCHMARKS.md).
INT8_FP32_NODES = re.compile(r"layer\.\d+/output/dense/")
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def default_root() -> Path:
    """``$XDG_CACHE_HOME/segmenter/onnx`` (``~/.cache/segmenter/onnx``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "segmenter" / "onnx"


def versions() -> dict[str, str]:
    """Versions that change the exported or quantized graph (part of the cache key)."""
    import onnxruntime
    import torch

    return {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__}


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def artifact_folder(root: Path, identity: str, backend: str) -> Path:
    """Folder of one (encoder identity, backend, opset, library versions)."""
    key = json.dumps([identity, backend, OPSET, versions()], sort_keys=True)
    return Path(root) / hashlib.sha256(key.encode()).hexdigest()[:24]


def cached_model(root: Path, identity: str, backend: str) -> Path | None:
    """The cached ``model.onnx`` when it is there and matches its recorded digest."""
    folder = artifact_folder(root, identity, backend)
    onnx_file, meta_file = folder / "model.onnx", folder / "model.json"
    if not onnx_file.is_file() or not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = {}
    if meta.get("sha256") != file_digest(onnx_file) or meta.get("identity") != identity:
        logger.warning("cached ONNX file %s is damaged or stale; rebuilding it", onnx_file)
        return None
    return onnx_file


def build_model(root: Path, identity: str, backend: str, model_path: str, max_length: int) -> Path:
    """Export (and for ``onnx-int8`` quantize) the model into the cache; return the file."""
    from segmenter.io import atomic_path, write_json

    if backend not in ONNX_BACKENDS:
        raise SegmenterError(f"--encoder-backend: '{backend}' is not one of {list(ONNX_BACKENDS)}")
    folder = artifact_folder(root, identity, backend)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "model.onnx"
    logger.info("building the %s encoder file %s (once per encoder)", backend, target)
    with atomic_path(target) as tmp:
        fp32 = tmp.with_name(tmp.name + ".fp32.onnx")
        try:
            export_onnx(model_path, fp32, max_length)
            if backend == "onnx-int8":
                quantize_int8(fp32, tmp)
            else:
                os.replace(fp32, tmp)
        finally:
            fp32.unlink(missing_ok=True)
    meta = {"identity": identity, "backend": backend, "opset": OPSET, "versions": versions(),
            "sha256": file_digest(target)}  # fmt: skip
    write_json(meta, folder / "model.json")
    return target


def load_model(root: Path, identity: str, backend: str, model_path: str, max_length: int) -> Path:
    """The cached file of ``(identity, backend)``, built first when missing or damaged."""
    found = cached_model(root, identity, backend)
    return found or build_model(root, identity, backend, model_path, max_length)


def export_onnx(model_path: str, out: Path, max_length: int) -> None:
    """Export transformer + mean pooling + L2 normalization with dynamic batch and length."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    check_mean_pooling(model_path)
    local = Path(model_path).exists()
    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=local)
    model = AutoModel.from_pretrained(model_path, local_files_only=local).eval()
    sample = tokenizer(["a short text", "a longer text of a few words"], padding=True,
                       truncation=True, max_length=max_length, return_tensors="pt")  # fmt: skip
    names = [n for n in INPUTS if n in sample]
    axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"embedding": {0: "batch"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shapes the dynamic axes cover
        torch.onnx.export(
            _pooled_module(model, names),
            tuple(sample[n] for n in names),
            str(out),
            input_names=names,
            output_names=["embedding"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: no onnxscript dependency, seconds not minutes
        )


def check_mean_pooling(model_path: str) -> None:
    """The ONNX graph does mean pooling: refuse a folder whose pooling module does not."""
    folder = Path(model_path)
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return  # a plain transformers folder: sentence-transformers mean-pools it too
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    for module in modules:
        if module.get("type", "").endswith("Pooling"):
            config = json.loads((folder / module["path"] / "config.json").read_text("utf-8"))
            modes = sorted(k for k, v in config.items() if k.startswith("pooling_mode") and v)
            if modes != ["pooling_mode_mean_tokens"]:
                raise SegmenterError(
                    f"--encoder-backend: the ONNX backends mean-pool, but '{folder}' pools "
                    f"with {modes}; use --encoder-backend torch"
                )


def quantize_int8(source: Path, out: Path) -> None:
    """Dynamic int8: per-channel int8 weights, per-batch uint8 activations; the feed-forward
    down-projections (:data:`INT8_FP32_NODES`) stay float32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    keep = [n.name for n in graph.node if n.op_type == "MatMul" and INT8_FP32_NODES.search(n.name)]
    # the quantizer logs every tensor through the root logger: filter its records out there
    # rather than change the level of a logger the library does not own
    quiet = _BelowWarning()
    for handler in logging.getLogger().handlers:
        handler.addFilter(quiet)
    try:
        quantize_dynamic(
            str(source),
            str(out),
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=keep,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        for handler in logging.getLogger().handlers:
            handler.removeFilter(quiet)


class _BelowWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name != "root"


def _pooled_module(model: Any, names: list[str]) -> Any:
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            kwargs = dict(zip(names, inputs, strict=True))
            hidden = self.model(**kwargs).last_hidden_state
            mask = kwargs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    return Pooled()
