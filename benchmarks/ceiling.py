"""How much of a planted truth the inputs hold at all: a classifier that is told it.

A segmentation finds groups without labels; no segmentation of the same inputs can be expected
to recover more of the truth than a classifier trained on it. The ceiling of a case is the
recovery (ARI, ACC, NMI) of the out-of-fold predictions of a logistic regression (5 stratified
folds, seeded) on what the systems see: the customers' behaviour features as of the cut-off
(:func:`segmenter.features.behaviour`, signed log, standardized) and, when the case has item
information or texts, the plain-text embedding. Where the ceiling is far under the target
(a shop whose planted groups overlap in everything the data records), the target measures the
generator, not the method; the table shows both.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.preprocessing import StandardScaler

from benchmarks.balance_cases import Case
from benchmarks.metrics import recovery
from segmenter.features import behaviour

FOLDS = 5


def behaviour_block(case: Case) -> np.ndarray | None:
    """Standardized signed-log behaviour features of the case's customers (None: no split)."""
    if case.split is None:
        return None
    features = behaviour(case.data.events, as_of=case.split.cutoff)
    order = pl.DataFrame({"user_id": case.customers})
    X = order.join(features, on="user_id", how="left").drop("user_id").fill_null(0.0).to_numpy()
    X = np.sign(X) * np.log1p(np.abs(X.astype(np.float64)))
    return StandardScaler().fit_transform(X)


def supervised_ceiling(case: Case, emb: np.ndarray | None, seed: int) -> dict[str, float] | None:
    """ARI / ACC / NMI of cross-validated predictions of the truth (None without a truth)."""
    if case.truth is None:
        return None
    blocks = [b for b in (behaviour_block(case), emb) if b is not None]
    if not blocks:
        return None
    _, counts = np.unique(case.truth, return_counts=True)
    folds = int(min(FOLDS, counts.min()))
    if folds < 2:
        return None
    X = np.hstack(blocks)
    model = LogisticRegression(max_iter=3000)
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return recovery(case.truth, cross_val_predict(model, X, case.truth, cv=split))
