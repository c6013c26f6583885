"""Every customer's top reasons, as a table (``explanations.parquet``)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import polars as pl
from tqdm.auto import tqdm

from segmenter.explain.customer import Explainer, Explanation

logger = logging.getLogger(__name__)

#: Customers explained per embedding call.
BATCH = 256

SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "user_id": pl.String,
    "segment": pl.Int64,
    "against": pl.Int64,
    "margin_kind": pl.String,
    "margin": pl.Float64,
    "top_features": pl.List(pl.String),
    "top_contributions": pl.List(pl.Float64),
    "evidence": pl.List(pl.String),
    "evidence_effect": pl.List(pl.Float64),
    "masked_document": pl.String,
    "counterfactual": pl.String,
    "counterfactual_target": pl.Int64,
    "counterfactual_valid": pl.Boolean,
    "summary": pl.String,
}


def row(x: Explanation, top: int = 3) -> dict[str, Any]:
    """One row of :data:`SCHEMA` from an explanation."""
    contrib = x.contributions if x.margin_kind == "value" else x.tier_contributions
    ranked = sorted(contrib.items(), key=lambda kv: -abs(kv[1]))[:top]
    c = x.counterfactual
    change = None
    if c is not None:
        change = ", ".join(f"{k} {c['before'][k]:g} -> {v:g}" for k, v in c["change"].items())
    return {
        "user_id": x.user_id,
        "segment": x.segment,
        "against": x.against,
        "margin_kind": x.margin_kind,
        "margin": x.margin,
        "top_features": [f for f, _ in ranked],
        "top_contributions": [float(v) for _, v in ranked],
        "evidence": [e["text"] for e in x.evidence],
        "evidence_effect": [float(e["effect"]) for e in x.evidence],
        "masked_document": x.masked_document,
        "counterfactual": change,
        "counterfactual_target": None if c is None else c["target"],
        "counterfactual_valid": None if c is None else c["landed"] == c["target"],
        "summary": x.text(),
    }


def explain_all(
    explainer: Explainer, *, batch_size: int = BATCH, user_ids: list[str] | None = None
) -> pl.DataFrame:
    """Explain every fitted customer (or ``user_ids``), in batches, with a progress bar.

    Returns
    -------
    polars.DataFrame
        One row per customer, columns of :data:`SCHEMA`.
    """
    n = len(explainer.customers_)
    rows = np.arange(n) if user_ids is None else explainer.rows(user_ids)
    out: list[dict[str, Any]] = []
    bar = tqdm(total=len(rows), desc="explain", unit="customer", disable=not explainer.progress)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        out.extend(row(x, explainer.top) for x in explainer.explain_rows(chunk))
        bar.update(len(chunk))
    bar.close()
    logger.info("explained %d customers", len(out))
    return pl.DataFrame(out, schema=SCHEMA)
