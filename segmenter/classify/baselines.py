"""Baselines trained next to the fine-tuned classifier, on the same split.

- frozen encoder embeddings (not fine-tuned) + logistic regression;
- HistGradientBoosting on the numeric behaviour features.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from segmenter.embed import SentenceTransformerEncoder, embed_documents

FROZEN_LR = "frozen_encoder_logistic_regression"
FEATURES_HGB = "behaviour_features_hist_gradient_boosting"


def frozen_embeddings(
    texts: Sequence[str],
    *,
    encoder: str | os.PathLike[str] | None = None,
    device: str = "auto",
    show_progress: bool = True,
) -> np.ndarray:
    """Embeddings of the pretrained (not fine-tuned) encoder, shape (n_texts, dim)."""
    model = SentenceTransformerEncoder(encoder, device=device, show_progress=show_progress)
    vectors, _ = embed_documents(model, list(texts))
    return vectors


def logistic_regression(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, *, n_classes: int
) -> np.ndarray:
    """Class-balanced logistic regression; probabilities of shape (n_test, n_classes)."""
    model = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced")
    return full_proba(model.fit(x_train, y_train), x_test, n_classes)


def gradient_boosting(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, *, n_classes: int, seed: int
) -> np.ndarray:
    """Class-balanced HistGradientBoosting; probabilities of shape (n_test, n_classes)."""
    model = HistGradientBoostingClassifier(class_weight="balanced", random_state=seed)
    # one OpenMP thread: in a process that has just run torch, multi-threaded boosting was
    # measured 40x slower on a 2-core machine (OpenMP workers competing for the cores)
    with threadpool_limits(limits=1, user_api="openmp"):
        model.fit(x_train, y_train)
    return full_proba(model, x_test, n_classes)


def full_proba(model: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
    """``predict_proba`` spread over all ``n_classes`` columns (absent classes get 0)."""
    proba = model.predict_proba(x)
    out = np.zeros((len(x), n_classes), dtype=proba.dtype)
    out[:, model.classes_] = proba
    return out
