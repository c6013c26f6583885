"""Benchmark of the supervised classifier on real data (not part of the test suite).

(a) Banking77 intents: fine-tuned encoder vs frozen encoder + logistic regression, test
    accuracy and macro-F1, with training seconds.
(b) Online Retail: from behaviour before 2011-09-01, does a customer buy again after it?
    ROC AUC of the fine-tuned encoder vs frozen encoder + logistic regression vs gradient
    boosting on the numeric behaviour features.

Called by ``python -m pipelines.benchmark``; data sets live in ``../shared/data`` and a part
whose files are missing is skipped with a warning.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from segmenter.classify import baselines
from segmenter.classify.metrics import classification_metrics
from segmenter.classify.model import CustomerClassifier
from segmenter.classify.workflow import FINE_TUNED, train_on_events
from segmenter.data import EventData, load_events

logger = logging.getLogger(__name__)

CUTOFF = datetime(2011, 9, 1)


def run_classification_benchmark(
    shared_data: Path,
    *,
    quick: bool,
    seed: int,
    device: str = "auto",
    show_progress: bool = False,
) -> dict[str, float]:
    """Measure the classifier on Banking77 and Online Retail.

    Parameters
    ----------
    shared_data : Path
        The shared data folder holding ``banking77/`` and ``online_retail/``.
    quick : bool
        Subsample (20 texts per intent, 800 customers) and train one short epoch: minutes on
        a laptop CPU. Otherwise all of the data and up to three epochs.
    seed : int
        Seed of the subsamples, the splits and the training.
    device : {"auto", "cpu", "cuda"}
        Where the encoder runs.
    show_progress : bool
        tqdm bars.

    Returns
    -------
    dict of str to float
        Flat metrics, keys prefixed ``banking77_`` and ``retail_``.
    """
    results: dict[str, float] = {}
    banking = Path(shared_data) / "banking77"
    retail = Path(shared_data) / "online_retail" / "online_retail.csv.gz"
    options = Options(quick=quick, seed=seed, device=device, show_progress=show_progress)
    if (banking / "banking77_train.tsv").is_file() and (banking / "banking77_test.tsv").is_file():
        results.update(banking77(banking, options))
    else:
        logger.warning("skipping Banking77: %s/banking77_{train,test}.tsv is missing", banking)
    if retail.is_file():
        results.update(online_retail(retail, options))
    else:
        logger.warning("skipping Online Retail: %s is missing", retail)
    return results


@dataclass(frozen=True)
class Options:
    """Benchmark options shared by both parts (see :func:`run_classification_benchmark`)."""

    quick: bool
    seed: int
    device: str
    show_progress: bool

    def classifier(
        self, *, batch_size: int = 16, max_length: int | None = None
    ) -> CustomerClassifier:
        """The classifier both parts fine-tune: one epoch in quick mode, else up to three."""
        return CustomerClassifier(
            epochs=1 if self.quick else 3,
            max_steps=None,
            batch_size=batch_size,
            max_length=max_length,
            validation_fraction=0.1,
            device=self.device,
            seed=self.seed,
            show_progress=self.show_progress,
        )


def _read_tsv(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, separator="\t", quote_char=None, schema_overrides={"label": pl.String})


def _per_class(frame: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    """At most ``n`` random rows of each label."""
    rng = np.random.default_rng(seed)
    shuffled = frame.with_columns(pl.Series("_r", rng.permutation(frame.height)))
    return shuffled.sort("_r").group_by("label", maintain_order=True).head(n).drop("_r")


def banking77(folder: Path, options: Options) -> dict[str, float]:
    """Banking77 intent accuracy and macro-F1: fine-tuned vs frozen encoder + LR."""
    train = _read_tsv(folder / "banking77_train.tsv")
    test = _read_tsv(folder / "banking77_test.tsv")
    if options.quick:
        train = _per_class(train, 20, options.seed)
        test = _per_class(test, 10, options.seed)
    texts, labels = train["text"].to_list(), train["label"].to_list()
    model = options.classifier(batch_size=32, max_length=64)
    model.fit(texts, labels)
    classes = model.classes_
    y_test = np.searchsorted(classes, np.array(test["label"].to_list()))
    started = time.perf_counter()
    fine = classification_metrics(y_test, model.predict_proba(test["text"].to_list()), classes)
    predict_seconds = time.perf_counter() - started
    started = time.perf_counter()
    vectors = baselines.frozen_embeddings(
        texts + test["text"].to_list(), device=options.device, show_progress=options.show_progress
    )
    y_train = np.searchsorted(classes, np.array(labels))
    proba = baselines.logistic_regression(
        vectors[: len(texts)], y_train, vectors[len(texts) :], n_classes=len(classes)
    )
    frozen = classification_metrics(y_test, proba, classes)
    return {
        "banking77_n_train": float(len(texts)),
        "banking77_n_test": float(test.height),
        "banking77_finetuned_accuracy": float(fine["accuracy"]),
        "banking77_finetuned_macro_f1": float(fine["macro_f1"]),
        "banking77_finetuned_train_seconds": model.train_seconds_,
        "banking77_finetuned_steps": float(model.n_steps_),
        "banking77_finetuned_predict_seconds": predict_seconds,
        "banking77_frozen_lr_accuracy": float(frozen["accuracy"]),
        "banking77_frozen_lr_macro_f1": float(frozen["macro_f1"]),
        "banking77_frozen_lr_seconds": time.perf_counter() - started,
    }


def online_retail(path: Path, options: Options) -> dict[str, float]:
    """Online Retail repeat purchase after 2011-09-01: ROC AUC of the three models."""
    data = load_events(path, preset="online-retail")
    before = data.events.filter(pl.col("timestamp") < CUTOFF)
    buyers = data.events.filter(
        (pl.col("timestamp") >= CUTOFF) & (pl.col("event_type") == "purchase")
    )["user_id"].unique()
    customers = before["user_id"].unique().sort()
    if options.quick:
        rng = np.random.default_rng(options.seed)
        customers = customers.gather(np.sort(rng.choice(len(customers), 800, replace=False)))
        before = before.filter(pl.col("user_id").is_in(customers.implode()))
    labels = pl.DataFrame({"user_id": customers}).with_columns(
        pl.when(pl.col("user_id").is_in(buyers.implode()))
        .then(pl.lit("yes"))
        .otherwise(pl.lit("no"))
        .alias("label")
    )
    model = options.classifier()
    run = train_on_events(
        EventData(before, data.users), labels, model, as_of=CUTOFF, source="bought again"
    )
    out = {
        "retail_n_customers": float(labels.height),
        "retail_positive_rate": float(np.mean(labels["label"].to_numpy() == "yes")),
        "retail_n_test": float(run.metrics["task"]["n_test"]),
        "retail_finetuned_train_seconds": model.train_seconds_,
        "retail_finetuned_steps": float(model.n_steps_),
    }
    names = {
        FINE_TUNED: "finetuned",
        baselines.FROZEN_LR: "frozen_lr",
        baselines.FEATURES_HGB: "features_hgb",
    }
    for key, short in names.items():
        result = run.metrics["models"][key]
        out[f"retail_{short}_roc_auc"] = float(result["roc_auc"])
        out[f"retail_{short}_accuracy"] = float(result["accuracy"])
    return out
