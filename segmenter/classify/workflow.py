"""From events and labels to an evaluated, saved customer classifier, and back to predictions.

``train_on_events`` builds customer documents, holds out a stratified test split, fine-tunes
a :class:`CustomerClassifier`, evaluates it next to two baselines and returns a
:class:`TrainingRun`; ``save_run`` writes the model folder atomically; ``CustomerModel.load``
and ``CustomerModel.predict`` place new customers.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from segmenter import io
from segmenter.classify import baselines
from segmenter.classify.documents import encoder_tokenizer
from segmenter.classify.labels import check_classes, match_users
from segmenter.classify.metrics import classification_metrics
from segmenter.classify.model import CustomerClassifier
from segmenter.classify.persistence import ENCODER_DIR
from segmenter.classify.report import render_metrics_html
from segmenter.classify.split import stratified_split
from segmenter.data import EventData
from segmenter.documents import DocumentRecipe
from segmenter.errors import SegmenterError

logger = logging.getLogger(__name__)

DOCUMENTS_FILE = "documents.json"
METRICS_FILE = "metrics.json"
REPORT_FILE = "metrics.html"
FINE_TUNED = "fine_tuned_encoder"


@dataclass
class CustomerModel:
    """A fitted classifier plus the recipe that turns events into its documents."""

    classifier: CustomerClassifier
    recipe: DocumentRecipe

    def predict(self, data: EventData) -> pl.DataFrame:
        """Classify every customer of ``data``.

        Returns
        -------
        polars.DataFrame
            ``user_id``, ``label``, ``probability`` (of that label) and one ``prob_<class>``
            column per class, one row per customer, sorted by user_id.
        """
        # as the training customers: their as_of, channels and gap between orders
        _, documents = self.recipe.transform(data.events, data.users)
        documents = documents.sort("user_id")
        proba = self.classifier.predict_proba(documents["document"].to_list())
        return predictions_frame(documents["user_id"], proba, self.classifier.classes_)

    def write(self, folder: str | os.PathLike[str]) -> None:
        """Write the classifier and the document recipe into an existing folder."""
        self.classifier.write(folder)
        io.write_json(self.recipe.state(), Path(folder) / DOCUMENTS_FILE)

    @classmethod
    def load(
        cls, folder: str | os.PathLike[str], *, device: str = "auto", show_progress: bool = True
    ) -> CustomerModel:
        """Load a model folder written by :func:`save_run` (or :meth:`write`)."""
        classifier = CustomerClassifier.load(folder, device=device, show_progress=show_progress)
        state = json.loads((Path(folder) / DOCUMENTS_FILE).read_text(encoding="utf-8"))
        tokenizer = Path(folder) / ENCODER_DIR / "tokenizer.json"
        recipe = DocumentRecipe.from_state(
            state, tokenizer_path=tokenizer if tokenizer.is_file() else None
        )
        return cls(classifier, recipe)


@dataclass
class TrainingRun:
    """A trained :class:`CustomerModel` and its evaluation (the content of metrics.json)."""

    model: CustomerModel
    metrics: dict[str, Any] = field(default_factory=dict)


def predictions_frame(user_ids: pl.Series, proba: np.ndarray, classes: np.ndarray) -> pl.DataFrame:
    """``user_id``, ``label``, ``probability``, ``prob_<class>`` from class probabilities."""
    best = proba.argmax(axis=1)
    columns = {
        "user_id": user_ids,
        "label": pl.Series("label", classes[best], dtype=pl.String),
        "probability": pl.Series(proba[np.arange(len(best)), best], dtype=pl.Float64),
    }
    for j, name in enumerate(classes):
        columns[f"prob_{name}"] = pl.Series(proba[:, j], dtype=pl.Float64)
    return pl.DataFrame(columns)


def train_on_events(
    data: EventData,
    labels: pl.DataFrame,
    classifier: CustomerClassifier,
    *,
    test_fraction: float = 0.2,
    max_tokens: int = 128,
    as_of: datetime | None = None,
    source: str = "--labels",
) -> TrainingRun:
    """Fine-tune ``classifier`` on labelled customers and evaluate it on a held-out split.

    Parameters
    ----------
    data : EventData
        Events (and users) of at least the labelled customers.
    labels : polars.DataFrame
        ``user_id``, ``label`` strings (see :func:`~segmenter.classify.read_labels`).
    classifier : CustomerClassifier
        Unfitted classifier with its training options; its ``seed`` also seeds the test split
        and the gradient-boosting baseline.
    test_fraction : float in (0, 0.5]
        Stratified share of the labelled customers held out for evaluation.
    max_tokens : int
        Token budget of each customer document.
    as_of : datetime, optional
        Reference date of recency and tenure; defaults to the last event.
    source : str
        How the labels were given, for messages.

    Returns
    -------
    TrainingRun
    """
    classifier.check_params()
    if not 0 < test_fraction <= 0.5:
        raise SegmenterError(f"test_fraction={test_fraction!r} should be in (0, 0.5]")
    recipe = DocumentRecipe(
        max_tokens=max_tokens, tokenizer_path=encoder_tokenizer(classifier.encoder)
    )
    features, documents = recipe.fit_transform(data.events, data.users, as_of=as_of)
    matched = match_users(labels, documents["user_id"], source=source)
    # polars joins do not promise an order: sort so that the split is reproducible
    table = documents.join(features, on="user_id").join(matched.frame, on="user_id").sort("user_id")
    counts = dict(sorted(table["label"].value_counts().iter_rows()))
    check_classes(counts, source=source)
    classes, y = np.unique(table["label"].to_numpy().astype(str), return_inverse=True)
    train, test = stratified_split(y, test_fraction, seed=classifier.seed)
    texts = table["document"].to_list()
    logger.info(
        "%d labelled customers, %d classes: %d for training, %d held out for testing",
        table.height,
        len(classes),
        len(train),
        len(test),
    )
    classifier.fit([texts[i] for i in train], classes[y[train]])
    proba = classifier.predict_proba([texts[i] for i in test])
    results = {FINE_TUNED: classification_metrics(y[test], proba, classes)}
    results[FINE_TUNED]["train_seconds"] = classifier.train_seconds_
    results.update(_baselines(table, features.columns[1:], y, (train, test), classifier, classes))
    metrics = {
        "task": {
            "labels": source,
            "customers_in_events": documents.height,
            "labelled_customers": table.height,
            "labels_unknown_users": matched.n_unknown,
            "class_counts": counts,
            "n_train": len(train) - classifier.n_validation_,
            "n_validation": classifier.n_validation_,
            "n_test": len(test),
            "test_fraction": test_fraction,
            "seed": classifier.seed,
        },
        "models": results,
        "training": {
            "device": classifier.device_,
            "lora": classifier.lora,
            "params": classifier.get_params(),
            "history": classifier.history_,
            "best_epoch": classifier.best_epoch_,
            "n_steps": classifier.n_steps_,
            "probe_c": classifier.probe_c_,
        },
        "documents": {"max_tokens": max_tokens, "channels": list(recipe.channels_)},
    }
    return TrainingRun(CustomerModel(classifier, recipe), metrics)


def _baselines(
    table: pl.DataFrame,
    feature_columns: list[str],
    y: np.ndarray,
    split: tuple[np.ndarray, np.ndarray],
    classifier: CustomerClassifier,
    classes: np.ndarray,
) -> dict[str, dict[str, Any]]:
    """Frozen-encoder logistic regression and behaviour-feature gradient boosting."""
    train, test = split
    started = time.perf_counter()
    vectors = baselines.frozen_embeddings(
        table["document"].to_list(),
        encoder=classifier.encoder,
        device=classifier.device_,
        show_progress=classifier.show_progress,
    )
    proba = baselines.logistic_regression(
        vectors[train], y[train], vectors[test], n_classes=len(classes)
    )
    frozen = classification_metrics(y[test], proba, classes)
    frozen["train_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    numeric = table.select(feature_columns).to_numpy().astype(np.float64)
    proba = baselines.gradient_boosting(
        numeric[train], y[train], numeric[test], n_classes=len(classes), seed=classifier.seed
    )
    boosted = classification_metrics(y[test], proba, classes)
    boosted["train_seconds"] = time.perf_counter() - started
    return {baselines.FROZEN_LR: frozen, baselines.FEATURES_HGB: boosted}


def save_run(run: TrainingRun, out: str | os.PathLike[str], *, force: bool = False) -> None:
    """Write the model folder (model, documents.json, metrics.json, metrics.html) atomically."""
    with io.atomic_dir(out, force=force) as tmp:
        run.model.write(tmp)
        io.write_json(run.metrics, tmp / METRICS_FILE)
        io.write_text(render_metrics_html(run.metrics), tmp / REPORT_FILE)
