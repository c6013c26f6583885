"""Explanations of a run folder: load its model and customers, write what was explained."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import polars as pl

from segmenter import io
from segmenter.errors import SegmenterError
from segmenter.explain.batch import explain_all
from segmenter.explain.customer import Explainer
from segmenter.explain.surrogate import Surrogates, fit_surrogates, readable_features

logger = logging.getLogger(__name__)

EXPLANATIONS = "explanations.parquet"
DEFINITIONS = "definitions.json"


def load_explainer(run_dir: str | Path, *, cache: Any = None, progress: bool = True) -> Explainer:
    """An :class:`Explainer` of a run folder's model and customers (customers.parquet)."""
    from segmenter.model import Segmenter

    run = Path(run_dir)
    for name in ("model", "customers.parquet"):
        if not (run / name).exists():
            raise SegmenterError(
                f"RUN_DIR '{run}' has no {name}; expected a run folder written by "
                f"python -m pipelines.discover"
            )
    model = Segmenter.load(run / "model", cache=cache, progress=progress)
    try:
        customers = pl.read_parquet(run / "customers.parquet")
    except Exception as exc:  # polars raises several kinds for a damaged file
        raise SegmenterError(f"'{run / 'customers.parquet'}' cannot be read: {exc}") from exc
    return Explainer(model, progress=progress).fit(customers)


def segment_definitions(explainer: Explainer, *, seed: int = 0) -> Surrogates:
    """The surrogates of the explainer's segmentation (labels: where the model places each
    customer)."""
    model, customers = explainer.model, explainer.customers_
    score = model.value_axis_.transform(customers)
    taste = model.text_reducer_.transform(model.embed(customers["document"].to_list()))
    labels, _, _ = model.clusterer_.predict(taste, score)
    ids = getattr(model, "segment_ids_", None)
    if ids is not None:  # the segment ids the run shows (stable ids of an aligned run)
        labels = ids.map(labels)
    X, columns = readable_features(customers, score)
    return fit_surrogates(X, labels, columns, seed=seed)


def write_explanations(run_dir: str | Path, explainer: Explainer, *, seed: int = 0) -> list[Path]:
    """Write explanations.parquet (every customer's top reasons) and definitions.json (the
    segments' rules, fidelity and SHAP importance) into the run folder, each atomically."""
    run = Path(run_dir)
    table = explain_all(explainer)
    definitions = segment_definitions(explainer, seed=seed).to_dict()
    io.write_parquet(table, run / EXPLANATIONS)
    io.write_json(definitions, run / DEFINITIONS)
    return [run / EXPLANATIONS, run / DEFINITIONS]
