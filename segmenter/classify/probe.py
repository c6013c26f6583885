"""Linear probing: start the head from a logistic regression on frozen embeddings (LP-FT).

Fine-tuning from a fitted linear probe rather than a random head distorts the pretrained
features less and needs far fewer steps (Kumar et al., 2022, "Fine-Tuning can Distort
Pretrained Features and Underperform Out-of-Distribution").
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from segmenter.classify.baselines import full_proba
from segmenter.classify.network import EncoderClassifier
from segmenter.classify.training import TrainSettings, infer

logger = logging.getLogger(__name__)

#: Inverse regularization strengths tried; the validation split picks one.
C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def fit_probe_head(
    net: EncoderClassifier,
    tokenizer: Any,
    data: tuple[Sequence[str], np.ndarray],
    validation: tuple[Sequence[str], np.ndarray],
    *,
    class_weight: np.ndarray,
    settings: TrainSettings,
) -> float:
    """Fit a class-weighted logistic regression on the embeddings and copy it into the head.

    Parameters
    ----------
    net : EncoderClassifier
        Network whose head is overwritten.
    tokenizer : transformers tokenizer
    data, validation : (texts, ndarray of int)
        Training and validation texts with class codes. With validation texts, ``C`` is the
        value of :data:`C_GRID` with the lowest class-weighted validation log-loss; without,
        ``C`` is 1.
    class_weight : ndarray of shape (n_classes,)
    settings : TrainSettings

    Returns
    -------
    float
        The ``C`` used.
    """
    n_classes = net.head.out_features

    def embed(texts: Sequence[str]) -> np.ndarray:
        return infer(
            net,
            tokenizer,
            texts,
            batch_size=max(settings.batch_size, 32),
            max_length=settings.max_length,
            device=settings.device,
            output="embedding",
            show_progress=settings.show_progress,
        )

    x, y = embed(data[0]), data[1]
    c = 1.0
    if len(validation[0]):
        x_val, y_val = embed(validation[0]), validation[1]
        losses = []
        for candidate in C_GRID:
            proba = full_proba(_logistic(x, y, candidate, class_weight), x_val, n_classes)
            losses.append(
                log_loss(
                    y_val, proba, labels=list(range(n_classes)), sample_weight=class_weight[y_val]
                )
            )
        c = C_GRID[int(np.argmin(losses))]
        logger.info("linear probe: C=%g (validation log-loss %.4f)", c, min(losses))
    _copy_into_head(net, _logistic(x, y, c, class_weight))
    return c


def _logistic(x: np.ndarray, y: np.ndarray, c: float, weight: np.ndarray) -> LogisticRegression:
    classes = dict(enumerate(weight.tolist()))
    return LogisticRegression(C=c, max_iter=1000, class_weight=classes).fit(x, y)


def _copy_into_head(net: EncoderClassifier, probe: LogisticRegression) -> None:
    n_classes, dim = net.head.out_features, net.head.in_features
    coef, bias = np.zeros((n_classes, dim)), np.zeros(n_classes)
    if len(probe.classes_) == 2:
        # binary: one row for the second class; split it into two symmetric logits
        low, high = probe.classes_
        coef[low], coef[high] = -probe.coef_[0] / 2, probe.coef_[0] / 2
        bias[low], bias[high] = -probe.intercept_[0] / 2, probe.intercept_[0] / 2
    else:
        coef[probe.classes_], bias[probe.classes_] = probe.coef_, probe.intercept_
    with torch.no_grad():
        net.head.weight.copy_(torch.as_tensor(coef, dtype=torch.float32))
        net.head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
