"""The cases of the balance benchmark: Online Retail, the synthetic shops, labelled texts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.baselines import item_key, plain_texts, rfm_matrix
from benchmarks.recovery import BANKING_FILE, read_banking77
from benchmarks.retail import (
    CUTOFF,
    RETAIL_FILE,
    TemporalSplit,
    load_online_retail,
    span_cutoff,
    temporal_split,
)
from benchmarks.shop_shapes import SHAPES, Kind
from benchmarks.shops import START, generate_shop
from segmenter.data import EventData, load_events

logger = logging.getLogger(__name__)

BANKING_TRAIN = "banking77/banking77_train.tsv"


@dataclass
class Case:
    """One data set as every system of the balance benchmark sees it.

    Attributes
    ----------
    name : str
    kind : {"items", "no_items", "text"}
        Which target applies: behaviour and items (B), behaviour only (value vs RFM), text
        only (accuracy vs plain text).
    k : int
        Number of segments.
    data : EventData
        What the systems see (calibration events).
    customers : list of str
        Row order of every label array.
    split : TemporalSplit or None
        Future spend and items (behaviour cases).
    truth : ndarray of shape (n_customers,) or None
        Planted segment or intent.
    texts : list of str or None
        The plain-text baseline's string of each customer (None: no item information).
    rfm : ndarray of shape (n_customers, 4) or None
        Standardized RFM (None: no purchases, text-only data).
    note : str
        What the case holds, for the table.
    """

    name: str
    kind: Kind
    k: int
    data: EventData
    customers: list[str]
    split: TemporalSplit | None
    truth: np.ndarray | None
    texts: list[str] | None
    rfm: np.ndarray | None
    note: str


def behaviour_case(
    name: str,
    kind: Kind,
    split: TemporalSplit,
    *,
    k: int,
    truth: np.ndarray | None = None,
    note: str = "",
) -> Case:
    """A case of purchase events split in time; the baselines' inputs computed once."""
    events = split.calibration.events
    key = item_key(events)
    texts = plain_texts(events, split.customers, key) if key is not None else None
    return Case(
        name,
        kind,
        k,
        split.calibration,
        split.customers,
        split,
        truth,
        texts,
        rfm_matrix(events, split.customers, split.cutoff),
        note + (f"; plain text of {key}" if key else "; no item column"),
    )


def shop_case(shape: str, n_customers: int, *, k: int, seed: int) -> Case:
    """A synthetic shop of :data:`benchmarks.shop_shapes.SHAPES` split at its cut-off."""
    spec = SHAPES[shape]
    shop = spec.build(seed)
    generated = generate_shop(shop, n_customers, seed=seed)
    split = temporal_split(load_events(generated.events), generated.cutoff)
    truth = (
        pl.DataFrame({"user_id": split.customers})
        .join(generated.labels, on="user_id", how="left")["segment"]
        .to_numpy()
    )
    events = split.calibration.events.height
    note = (
        f"{len(split.customers):,} customers, {events / len(split.customers):.0f} events "
        f"each before the cut-off, {int(split.bought_again.sum()):,} buy after it; "
        f"truth: {len(np.unique(truth))} planted groups"
    )
    return behaviour_case(shape, spec.kind, split, k=k, truth=truth, note=note)


def retail_case(
    shared_data: Path, *, k: int, max_customers: int | None, seed: int, data: EventData | None
) -> Case | None:
    """Online Retail split at 2011-09-01 (``data`` replaces it, split at 75% of its span)."""
    if data is None:
        path = shared_data / RETAIL_FILE
        if not path.exists():
            logger.warning("balance: %s is missing, Online Retail skipped", path)
            return None
        data, cutoff = load_online_retail(path), CUTOFF
    else:
        cutoff = span_cutoff(data)
    split = temporal_split(data, cutoff, max_customers=max_customers, seed=seed)
    note = f"{len(split.customers):,} customers before {cutoff:%Y-%m-%d}; no planted truth"
    return behaviour_case("online_retail", "items", split, k=k, note=note)


def text_case(
    name: str, frame: pl.DataFrame, *, k: int | None = None, event_type: str = "search"
) -> Case:
    """One text per customer (``label``, ``text`` rows) as events; truth = the labels.

    ``k`` defaults to the number of labels present.
    """
    n = frame.height
    ids = [f"T{i:06d}" for i in range(n)]
    events = pl.DataFrame(
        {
            "user_id": ids,
            "timestamp": [START + timedelta(minutes=i) for i in range(n)],
            "event_type": [event_type] * n,
            "text": frame["text"].to_list(),
        }
    )
    truth = np.unique(frame["label"].to_numpy(), return_inverse=True)[1].ravel()
    n_labels = len(np.unique(truth))
    return Case(
        name,
        "text",
        k or n_labels,
        load_events(events),
        ids,
        None,
        truth,
        frame["text"].to_list(),
        None,
        f"{n:,} texts ({event_type} events), {n_labels} intents",
    )


def banking_cases(
    shared_data: Path, *, sample: int, intents_8: int | None, seed: int
) -> list[Case]:
    """Banking77 test texts: a seeded sample (k = intents present) and 8 sampled intents.

    The 8-intent case takes every test and train text of 8 seeded intents (at most
    ``intents_8`` of them), so that k = 8 applies as in the issue's "8 topics".
    """
    test = shared_data / BANKING_FILE
    if not test.exists():
        logger.warning("balance: %s is missing, text cases skipped", test)
        return []
    cases = [text_case("banking77", read_banking77(test, sample, seed))]
    frames = [pl.read_csv(test, separator="\t", quote_char=None)]
    train = shared_data / BANKING_TRAIN
    if train.exists():
        frames.append(pl.read_csv(train, separator="\t", quote_char=None))
    both = pl.concat(frames)
    labels = sorted(both["label"].unique().to_list())
    chosen = np.random.default_rng(seed).choice(labels, size=8, replace=False).tolist()
    eight = both.filter(pl.col("label").is_in(chosen))
    if intents_8 is not None and eight.height > intents_8:
        eight = eight.sample(intents_8, seed=seed)
    cases.append(text_case("banking77_8_intents", eight.sort("label", "text"), k=8))
    return cases
