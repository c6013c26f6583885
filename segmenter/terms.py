"""Distinctive terms: a tokenizer for Latin and CJK scripts and class-based TF-IDF."""

from __future__ import annotations

import polars as pl

from segmenter.privacy import PATTERNS, mask_expr
from segmenter.vocabulary import attribute_label, phrases

_CJK = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}"
#: Attributes of the usual users tables, whose labels ("Country: ") fill many documents.
_USUAL_ATTRIBUTES = ("country", "age_band")

_CJK_FUNCTION = "的了很是都也和就我你他她它这那在不有还但吗呢吧啊把被"


def stop_words(extra: tuple[str, ...] = ()) -> frozenset[str]:
    """English stop words, the words of the document template and of the masks, and ``extra``."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    template = [*phrases(), *map(attribute_label, _USUAL_ATTRIBUTES)]
    masks = [replacement for _, replacement in PATTERNS]
    return frozenset(ENGLISH_STOP_WORDS) | frozenset(
        tokenize(" ".join([*template, *masks, *extra]))
    )


def tokens_expr(text: pl.Expr) -> pl.Expr:
    """List of tokens: lowercase words for alphabetic scripts, character bigrams for CJK.

    Pure numbers and one-letter words are dropped (stop words are the caller's business).
    """
    low = text.str.to_lowercase()
    words = low.str.replace_all(f"[{_CJK}]+", " ").str.extract_all(r"[\p{L}\p{N}]+")
    # overlapping bigrams: the pairs of each CJK run, then the pairs after its first character
    pairs = low.str.extract_all(f"[{_CJK}]{{2}}")
    shifted = low.str.replace_all(f"(^|[^{_CJK}])[{_CJK}]", "${1}").str.extract_all(
        f"[{_CJK}]{{2}}"
    )
    keep = (pl.element().str.len_chars() > 1) & ~pl.element().str.contains(r"^\d+$")
    # a bigram with a function character is mostly the seam between two words
    seam = pl.element().str.contains(f"[{_CJK_FUNCTION}]")
    bigrams = pl.concat_list(pairs, shifted).list.eval(pl.element().filter(~seam))
    return pl.concat_list(words.list.eval(pl.element().filter(keep)), bigrams)


def tokenize(text: str) -> list[str]:
    """:func:`tokens_expr` on one string."""
    out = pl.select(tokens_expr(pl.lit(text, dtype=pl.String))).item()
    return list(out)


def class_tfidf(
    texts: pl.DataFrame,
    *,
    top: int = 10,
    stop: frozenset[str] | None = None,
    min_lift: float = 1.2,
    max_texts: int = 20_000,
    seed: int = 0,
) -> pl.DataFrame:
    """Distinctive terms per segment by class-based TF-IDF (as in BERTopic).

    All texts of a segment form one class document; a term's weight is its frequency in the
    class (normalized by the class length) times ``log(1 + A / f)``, with ``A`` the average
    number of words per class and ``f`` the term's frequency over all classes. Terms the
    segment uses less than ``min_lift`` times as often as everybody (a country most customers
    share, say) are left out when there are several segments.

    Parameters
    ----------
    texts : polars.DataFrame
        ``segment`` and ``text`` (customer documents and what customers wrote).
    max_texts : int
        At most this many texts per segment (a seeded sample) are read.

    Returns
    -------
    polars.DataFrame
        ``segment``, ``top_terms`` (list of str), ``top_term_scores`` (list of float).
    """
    counts = term_counts(texts, stop=stop, max_texts=max_texts, seed=seed)
    return score_terms(counts, top=top, min_lift=min_lift)


def term_counts(
    texts: pl.DataFrame,
    *,
    stop: frozenset[str] | None = None,
    max_texts: int | None = None,
    seed: int = 0,
) -> pl.DataFrame:
    """Uses of each term per segment (``segment, term, n``) that :func:`class_tfidf` scores:
    over every text, or a seeded sample of ``max_texts`` per segment; ``stop`` words left out.

    Counts over disjoint sets of texts add up to the counts of their union."""
    stop = stop if stop is not None else stop_words()
    if max_texts is not None:
        texts = texts.filter(pl.int_range(pl.len()).shuffle(seed=seed).over("segment") < max_texts)
    terms = (
        texts.select("segment", tokens_expr(pl.col("text")).alias("term"))
        .explode("term")
        .filter(pl.col("term").is_not_null() & ~pl.col("term").is_in(list(stop)))
    )
    return terms.group_by("segment", "term").agg(pl.len().cast(pl.Int64).alias("n"))


def score_terms(counts: pl.DataFrame, *, top: int = 10, min_lift: float = 1.2) -> pl.DataFrame:
    """:func:`class_tfidf` from the counts of :func:`term_counts`."""
    schema = pl.Schema(
        [
            ("segment", pl.Int64()),
            ("top_terms", pl.List(pl.String)),
            ("top_term_scores", pl.List(pl.Float64)),
        ]
    )
    if counts.height == 0:
        return pl.DataFrame(schema=schema)
    n_classes = counts["segment"].n_unique()
    total = counts["n"].sum()
    f = pl.col("n").sum().over("term")
    tf = pl.col("n") / pl.col("n").sum().over("segment")
    return (
        counts.with_columns(tf.alias("tf"), (1 + total / n_classes / f).log().alias("idf"))
        .filter((pl.col("tf") / (f / total) >= min_lift) | (n_classes < 2))
        .with_columns((pl.col("tf") * pl.col("idf")).alias("score"))
        .sort(["segment", "score", "term"], descending=[False, True, False])
        .group_by("segment", maintain_order=True)
        .head(top)
        .group_by("segment", maintain_order=True)
        .agg(pl.col("term").alias("top_terms"), pl.col("score").alias("top_term_scores"))
        .cast(schema)
    )


def segment_texts(
    documents: pl.DataFrame, events: pl.DataFrame, members: pl.DataFrame
) -> pl.DataFrame:
    """``segment, text``: every customer's document and their own texts, masked."""
    written = events.filter(pl.col("text").is_not_null()).select(
        "user_id", mask_expr(pl.col("text")).alias("text")
    )
    docs = documents.select("user_id", pl.col("document").alias("text"))
    return pl.concat([docs, written]).join(members, on="user_id").select("segment", "text")
