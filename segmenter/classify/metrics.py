"""Classification metrics as plain, JSON-able dicts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, classes: Sequence[str] | np.ndarray
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1, confusion matrix and ROC AUC.

    Parameters
    ----------
    y_true : ndarray of int of shape (n_samples,)
        True class codes (indices into ``classes``).
    proba : ndarray of shape (n_samples, n_classes)
        Predicted class probabilities.
    classes : sequence or ndarray of str
        Class names, in column order.

    Returns
    -------
    dict
        ``accuracy``, ``macro_f1``, ``roc_auc`` (binary: of the second class; multi-class:
        macro one-vs-rest; None when a class is missing from ``y_true``), ``per_class``
        ({name: {precision, recall, f1, support}}) and ``confusion_matrix`` (rows: true class,
        columns: predicted class, both in ``classes`` order).
    """
    labels = list(range(len(classes)))
    y_pred = proba.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    per_class = {
        str(name): {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(classes)
    }
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "roc_auc": roc_auc(y_true, proba),
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def roc_auc(y_true: np.ndarray, proba: np.ndarray) -> float | None:
    """ROC AUC (binary: of class 1; else macro one-vs-rest), None when a class has no example."""
    n_classes = proba.shape[1]
    if len(np.unique(y_true)) < n_classes:
        return None
    if n_classes == 2:
        return float(roc_auc_score(y_true, proba[:, 1]))
    return float(roc_auc_score(y_true, proba, multi_class="ovr", average="macro"))
