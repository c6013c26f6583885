"""Documents of a few customers in plain Python: the single-customer latency path.

:meth:`DocumentBuilder.transform <segmenter.documents.DocumentBuilder.transform>` builds
documents with one lazy polars plan; for one customer nearly all of its time is polars'
per-operator overhead (group-bys, joins and sorts of a handful of rows). :func:`small_documents`
builds the same documents, byte for byte, with dictionaries and lists.

Where polars and Python differ, the polars behaviour is reproduced: ``\\s`` and
``strip_chars()`` are Rust's White_Space (Python's also take U+001C..U+001F), ``round(1)`` is
``round_ties_even(x * 10) / 10``, ``$`` is the end of the text, and a text without a timestamp
counts as the newest. Inputs for which plain Python is not known to agree raise :class:`PolarsOnly`,
and :func:`small_documents` then runs the polars plan: characters that Python's Unicode database
does not know (polars may know them as digits or as cased), a capital sigma to lowercase (its
lower case depends on the neighbouring letters), ratings polars writes in another notation,
null or NaN features, duplicate customers, and columns of other types than the loader's.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl

from segmenter.documents import DAYPARTS, REPEAT_WORDS, RETURN_WORDS, VALUE_WORDS
from segmenter.privacy import _MARK, _PROTECT, PATTERNS

if TYPE_CHECKING:
    from segmenter.documents import DocumentBuilder

logger = logging.getLogger(__name__)

#: Rust's White_Space property: what polars' regex ``\s`` and ``strip_chars()`` match.
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_WHITESPACE_RUN = re.compile(f"[{WHITESPACE}]+")
_STRINGS = ("user_id", "event_type", "item_id", "item_name", "category", "text", "channel")
_FEATURES = (
    *VALUE_WORDS,
    "frequency",
    "return_rate",
    *DAYPARTS,
    "share_weekend",
    "n_reviews",
    "mean_rating",
)
#: Larger events or users tables are first narrowed to the customers by polars.
_NARROW_ROWS = 2048


class PolarsOnly(Exception):
    """The input hits a corner where plain Python is not known to match the polars plan."""


def small_documents(
    builder: DocumentBuilder,
    events: pl.DataFrame,
    features: pl.DataFrame,
    users: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The documents of :meth:`DocumentBuilder.transform`, built in plain Python when possible.

    Returns
    -------
    polars.DataFrame
        ``user_id``, ``document``: one row per customer of ``features``, same order.
    """
    try:
        return python_documents(builder, events, features, users)
    except PolarsOnly as corner:
        logger.debug("documents of %d customers by polars: %s", features.height, corner)
        return builder._transform_polars(events, features, users)


def python_documents(
    builder: DocumentBuilder,
    events: pl.DataFrame,
    features: pl.DataFrame,
    users: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """:func:`small_documents` without the fallback: raises :class:`PolarsOnly` instead."""
    ids, rows = _feature_rows(features)
    customers = _events_by_customer(events, ids, builder.n_items > 0)
    cols = [c for c in builder.attributes_ if users is not None and c in users.columns]
    attributes = _user_rows(users, cols, ids) if cols else {}
    docs = []
    for uid, f in zip(ids, rows, strict=True):
        c = customers[uid]
        pieces = [
            _value_sentence(builder, f),
            _tfidf_list(
                builder, c.categories, "category", builder.n_categories, "Categories: ", share=True
            ),
            _tfidf_list(builder, c.items, "_item", builder.n_items, "Items: ", share=False),
            _habits(f, c.channels),
            _attributes(cols, attributes[uid]) if uid in attributes else None,
            _rating(f["mean_rating"]) if f["n_reviews"] > 0 else None,
            _texts(c.searches, 3, 60, "Searches: ", search=True),
            _texts(c.writes, builder.n_texts, builder.text_chars, "Writes: ", search=False),
        ]
        docs.append(" ".join(p for p in pieces if p is not None))
    return pl.DataFrame(
        [
            pl.Series("user_id", ids, dtype=pl.String),
            pl.Series("document", builder.budget_.cut(docs), dtype=pl.String),
        ]
    )


@dataclass
class _Customer:
    categories: Counter[str] = field(default_factory=Counter)
    items: Counter[str] = field(default_factory=Counter)
    channels: Counter[str] = field(default_factory=Counter)
    # (timestamp, text), in the input's order
    searches: list[tuple[int | None, str]] = field(default_factory=list)
    writes: list[tuple[int | None, str]] = field(default_factory=list)


def _feature_rows(features: pl.DataFrame) -> tuple[list[str], list[dict[str, float]]]:
    types = dict(zip(features.columns, features.dtypes, strict=True))
    if types.get("user_id") != pl.String or any(types.get(c) != pl.Float64 for c in _FEATURES):
        raise PolarsOnly("features lack a column or have another type")
    rows = features.rows(named=True)
    ids: list[str] = [row["user_id"] for row in rows]
    if None in ids or len(set(ids)) < len(ids):
        raise PolarsOnly("null or duplicate user_id in features")
    for row in rows:
        if any(row[c] is None or math.isnan(row[c]) for c in _FEATURES):
            raise PolarsOnly("null or NaN feature")
    return ids, rows


def _events_by_customer(
    events: pl.DataFrame, ids: list[str], with_items: bool
) -> dict[str, _Customer]:
    types = dict(zip(events.columns, events.dtypes, strict=True))
    ts_type = types.get("timestamp")
    if any(types.get(c) != pl.String for c in _STRINGS) or ts_type is None:
        raise PolarsOnly("events lack a column or have another type")
    if not (ts_type.is_temporal() or ts_type.is_integer()):
        raise PolarsOnly(f"timestamp of type {ts_type}")
    if events.height > _NARROW_ROWS:
        events = events.filter(pl.col("user_id").is_in(ids))
    customers = {uid: _Customer() for uid in ids}
    columns = [events[c].to_list() for c in _STRINGS]
    ts = events["timestamp"]
    # polars sorts times by their physical integers
    stamps = (ts if ts_type.is_integer() else ts.cast(pl.Int64)).to_list()
    for uid, kind, item_id, name, category, text, channel, stamp in zip(
        *columns, stamps, strict=True
    ):
        c = customers.get(uid)
        if c is None:
            continue
        if channel is not None:
            c.channels[channel] += 1
        if kind is None:  # null event types pass none of the plan's filters
            continue
        if kind != "return":
            if category is not None:
                c.categories[category] += 1
            label = name if name is not None else item_id
            if with_items and label is not None:
                c.items[_squash(label)] += 1
        if text is not None and text.strip(WHITESPACE):
            (c.searches if kind == "search" else c.writes).append((stamp, text))
    return customers


def _user_rows(
    users: pl.DataFrame | None, cols: list[str], ids: list[str]
) -> dict[str, list[str | None]]:
    if users is None:
        return {}
    types = dict(zip(users.columns, users.dtypes, strict=True))
    if types.get("user_id") != pl.String or any(types[c] != pl.String for c in cols):
        raise PolarsOnly("users lack user_id or have attributes of another type")
    if users.height > _NARROW_ROWS:
        users = users.filter(pl.col("user_id").is_in(ids))
    wanted = set(ids)
    out: dict[str, list[str | None]] = {}
    for uid, *values in zip(*(users[c].to_list() for c in ("user_id", *cols)), strict=True):
        if uid in wanted:
            if uid in out:  # the plan's join would repeat the customer
                raise PolarsOnly(f"user_id {uid!r} twice in users")
            out[uid] = values
    return out


# -- pieces (each mirrors the function of the same name in documents.py) ------------------------
def _bin_words(value: float, edges: Sequence[float], words: Sequence[str]) -> str:
    if not edges:
        return words[0]
    if len(edges) != len(words) - 1:
        raise PolarsOnly("fitted edges do not match the words")  # the plan raises
    if any(math.isnan(edge) for edge in edges):
        raise PolarsOnly("NaN edge")  # polars orders NaN above every number
    for edge, word in zip(edges, words[:-1], strict=True):
        if value <= float(edge):
            return word
    return words[-1]


def _value_sentence(builder: DocumentBuilder, f: dict[str, float]) -> str:
    edges = builder.edges_
    words = [_bin_words(f[c], edges[c], labels) for c, labels in VALUE_WORDS.items()]
    freq, ret = f["frequency"], f["return_rate"]
    # the plan builds every branch: the repeat and return edges must fit even when unused
    repeat = _bin_words(freq, edges["frequency"], REPEAT_WORDS)
    returns = _bin_words(ret, edges["return_rate"], RETURN_WORDS)
    words.insert(1, "never bought" if freq <= 0 else "one-time buyer" if freq <= 1 else repeat)
    words.append("never returns" if ret <= 0 else returns)
    return ", ".join(words) + "."


def _tfidf_list(
    builder: DocumentBuilder,
    counts: Counter[str],
    key: str,
    k: int,
    prefix: str,
    *,
    share: bool,
) -> str | None:
    if k == 0 or not counts:
        return None
    idf = builder.idf_[key]
    scored = [
        (math.sqrt(n) * idf.get(label, builder.max_idf_), label) for label, n in counts.items()
    ]
    if any(math.isnan(score) for score, _ in scored):
        raise PolarsOnly("NaN TF-IDF score")
    scored.sort(key=lambda sl: (-sl[0], sl[1]))
    total = sum(counts.values())
    labels = []
    for _, label in scored[:k]:
        text = _lower(label)[:48].strip(WHITESPACE)
        if share:  # share of the customer's rows, half to even like polars' round(0)
            text += f" ({round(counts[label] / total * 100)}%)"
        labels.append(text)
    return prefix + ", ".join(labels) + "."


def _habits(f: dict[str, float], channels: Counter[str]) -> str:
    shares = [f[c] for c in DAYPARTS]
    top = max(shares)
    names = list(DAYPARTS.values())
    out = (
        f"Shops mostly in the {names[shares.index(top)]}" if top >= 0.5 else "Shops at varied times"
    )
    weekend = f["share_weekend"]
    if weekend >= 0.5:
        out += ", mostly at weekends"
    elif weekend <= 0.15:
        out += ", on weekdays"
    else:
        out += ", weekdays and weekends"
    total = sum(channels.values())
    kept = sorted((-n / total, ch) for ch, n in channels.items() if n / total >= 0.25)
    if kept:
        out += " via " + " and ".join(_lower(ch) for _, ch in kept)
    return out + "."


def _attributes(cols: list[str], values: list[str | None]) -> str:
    parts = [
        c.replace("_", " ").capitalize() + ": " + mask(v)
        for c, v in zip(cols, values, strict=True)
        if v is not None
    ]
    return ". ".join(parts) + "."


def _rating(mean: float) -> str:
    rounded = round(mean * 10.0, 0) / 10.0  # polars' round(1), half to even
    # polars writes floats as Python's repr does, except below 1e-4 ("0.00001"); a rating
    # rounded to one decimal is 0 or at least 0.1
    if not (rounded == 0 or 1e-4 <= abs(rounded) < 1e15):
        raise PolarsOnly(f"rating {mean!r}")
    return f"Rates {rounded!r} on average."


def _texts(
    rows: list[tuple[int | None, str]], k: int, chars: int, prefix: str, *, search: bool
) -> str | None:
    if k == 0 or not rows:
        return None
    # newest first (a null timestamp before all), ties by text; both sorts are stable
    rows = sorted(rows, key=lambda r: r[1])
    rows.sort(key=lambda r: (r[0] is None, r[0] or 0), reverse=True)
    picked: list[str] = []
    for _, text in rows:
        if text not in picked:
            picked.append(text)
            if len(picked) == k:
                break
    quote = "" if search else '"'
    sep = "; " if search else '" "'
    cleaned = [mask(_squash(text))[:chars] for text in picked]
    return prefix + quote + sep.join(cleaned) + quote + "."


# -- strings ------------------------------------------------------------------------------------
def _squash(text: str) -> str:
    """``.str.replace_all(r"\\s+", " ").str.strip_chars()``"""
    return _WHITESPACE_RUN.sub(" ", text).strip(WHITESPACE)


def _known(text: str) -> str:
    """``text``, when Python's Unicode database knows all its characters (polars' may be newer)."""
    if not text.isascii() and any(unicodedata.category(ch) == "Cn" for ch in text):
        raise PolarsOnly(f"character unknown to Python's Unicode {unicodedata.unidata_version}")
    return text


def _lower(text: str) -> str:
    """``.str.to_lowercase()``"""
    if "Σ" in text:
        raise PolarsOnly("capital sigma to lowercase")
    return _known(text).lower()


def _python_regex(pattern: str) -> re.Pattern[str]:
    # Rust's `$` is the end of the text; Python's also matches before a final newline
    return re.compile(re.sub(r"(?<!\\)\$", r"\\Z", pattern))


def _python_replacement(replacement: str) -> str:
    return re.sub(r"\$\{(\d+)\}", r"\\g<\1>", replacement.replace("\\", "\\\\"))


_PROTECT_PY = tuple((_python_regex(p), _python_replacement(r)) for p, r in _PROTECT)
_PATTERNS_PY = tuple((_python_regex(p), _python_replacement(r)) for p, r in PATTERNS)
_MAY_MASK = re.compile(r"[\d@]")


def mask(text: str) -> str:
    """:func:`segmenter.privacy.mask_expr` with Python's ``re`` (same rules, same result)."""
    text = _known(text).replace(_MARK, "")
    if not _MAY_MASK.search(text):  # every rule needs a digit or an "@"
        return text
    for _ in range(2):
        for pattern, replacement in _PROTECT_PY:
            text = pattern.sub(replacement, text)
    for pattern, replacement in _PATTERNS_PY:
        text = pattern.sub(replacement, text)
    return text.replace(_MARK, "")
