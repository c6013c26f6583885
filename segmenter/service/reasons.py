"""Top reasons for each placed customer (``pipelines.serve --reasons``): the explanation of
:mod:`segmenter.explain` written as a few short lines per customer."""

from __future__ import annotations

from typing import Any

import polars as pl

from segmenter.data import EventData
from segmenter.explain.customer import Explainer
from segmenter.explain.decision import check_explainable


def explain_placed(model: Any, data: EventData, placed: pl.DataFrame) -> dict[str, list[str]]:
    """``{user_id: [reason, ...]}`` for the customers of ``data`` that ``model`` placed: why
    this segment rather than the nearest other one (exact for behaviour), the text parts that
    pull most towards it (occlusion, approximate) and the smallest behaviour change that would
    move the customer, when there is one. A model the explainer cannot write out (HDBSCAN)
    gives no reasons."""
    try:
        check_explainable(model)
    except Exception:
        return {}
    features = model.recipe_.features(data.events)
    documents = model.recipe_.documents(data.events, features, data.users)
    customers = features.join(documents, on="user_id", how="inner")
    explainer = Explainer(model, progress=False).fit(customers)
    ids = [u for u in placed["user_id"].cast(pl.String).to_list() if u in explainer.index_]
    if not ids:
        return {}
    return {
        e.user_id: e.text().splitlines()[1:] for e in explainer.explain_rows(explainer.rows(ids))
    }
