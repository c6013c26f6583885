"""Supervised customer classification: fine-tune the sentence encoder on labelled customers.

:class:`CustomerClassifier` works on texts (sklearn-style ``fit`` / ``predict_proba`` /
``save`` / ``load``); :func:`train_on_events` builds customer documents from events, holds
out a stratified test split, trains, evaluates against two baselines and returns a
:class:`TrainingRun` whose :class:`CustomerModel` classifies new customers; :func:`save_run`
writes the model folder.
"""

from __future__ import annotations

from segmenter.classify.labels import LabelSet, labels_from_run, read_labels
from segmenter.classify.model import CustomerClassifier
from segmenter.classify.workflow import CustomerModel, TrainingRun, save_run, train_on_events

__all__ = [
    "CustomerClassifier",
    "CustomerModel",
    "LabelSet",
    "TrainingRun",
    "labels_from_run",
    "read_labels",
    "save_run",
    "train_on_events",
]
