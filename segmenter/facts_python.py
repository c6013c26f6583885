"""Facts of a few customers in plain Python: the single-customer latency path.

For one customer nearly all the time of the polars plan (:func:`segmenter.facts.facts_frame`)
is per-operator overhead (group-bys, joins and sorts of a handful of rows). :func:`python_facts`
computes the same facts, field for field, with dictionaries and lists; both go through the same
renderer. Where polars and Python differ, :mod:`segmenter.textops` reproduces polars; inputs where
plain Python is not known to agree raise :class:`~segmenter.textops.PolarsOnly` (the caller then
runs the polars plan): besides the string corners of :mod:`segmenter.textops`, ratings polars
writes in another notation, null or NaN features, duplicate customers, and columns of other types
than the loader's.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from segmenter.facts import CHANNEL_SHARE, FEATURES, SEARCHES, FittedFacts
from segmenter.privacy import mask_python
from segmenter.textops import WHITESPACE, PolarsOnly, lower, round_rating, squash
from segmenter.vocabulary import DAYPARTS, VALUE_WORDS

__all__ = ["PolarsOnly", "python_facts"]

_STRINGS = ("user_id", "event_type", "item_id", "item_name", "category", "text", "channel")
#: Larger events or users tables are first narrowed to the customers by polars.
NARROW_ROWS = 2048


def python_facts(
    recipe: FittedFacts,
    events: pl.DataFrame,
    features: pl.DataFrame,
    users: pl.DataFrame | None = None,
) -> list[dict[str, Any]]:
    """The rows of :func:`~segmenter.facts.facts_frame`, or :class:`PolarsOnly`."""
    ids, rows = _feature_rows(features)
    customers = _events_by_customer(events, ids, recipe.n_items > 0)
    cols = [c for c in recipe.attributes_ if users is not None and c in users.columns]
    attributes = _user_rows(users, cols, ids) if cols else {}
    out = []
    for uid, f in zip(ids, rows, strict=True):
        c = customers[uid]
        categories = _tfidf(recipe, c.categories, "category", recipe.n_categories)
        items = _tfidf(recipe, c.items, "_item", recipe.n_items)
        total = sum(c.categories.values())
        out.append(
            {
                "user_id": uid,
                **_value(recipe, f),
                "categories": [lower(label)[:48].strip(WHITESPACE) for label in categories]
                if categories
                else None,
                # share of the customer's rows, half to even like polars' round(0)
                "category_shares": [round(c.categories[lb] / total * 100) for lb in categories]
                if categories
                else None,
                "items": [lower(label)[:48].strip(WHITESPACE) for label in items]
                if items
                else None,
                **_habits(f),
                "channels": _channels(c.channels),
                "attributes": [
                    {"name": n, "value": None if v is None else mask_python(v)}
                    for n, v in zip(cols, attributes[uid], strict=True)
                ]
                if uid in attributes
                else None,
                "rating": round_rating(f["mean_rating"]) if f["n_reviews"] > 0 else None,
                "searches": _texts(c.searches, SEARCHES, recipe.text_chars),
                "writes": _texts(c.writes, recipe.n_texts, recipe.text_chars),
            }
        )
    return out


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
    if types.get("user_id") != pl.String or any(types.get(c) != pl.Float64 for c in FEATURES):
        raise PolarsOnly("features lack a column or have another type")
    rows = features.rows(named=True)
    ids: list[str] = [row["user_id"] for row in rows]
    if None in ids or len(set(ids)) < len(ids):
        raise PolarsOnly("null or duplicate user_id in features")
    for row in rows:
        if any(row[c] is None or math.isnan(row[c]) for c in FEATURES):
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
    if events.height > NARROW_ROWS:
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
                c.items[squash(label)] += 1
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
    if users.height > NARROW_ROWS:
        users = users.filter(pl.col("user_id").is_in(ids))
    wanted = set(ids)
    out: dict[str, list[str | None]] = {}
    for uid, *values in zip(*(users[c].to_list() for c in ("user_id", *cols)), strict=True):
        if uid in wanted:
            if uid in out:  # the plan's join would repeat the customer
                raise PolarsOnly(f"user_id {uid!r} twice in users")
            out[uid] = values
    return out


# -- facts (each mirrors the function of the same name in facts.py) -----------------------------
def _bin_index(value: float, edges: Sequence[float]) -> int:
    return sum(value > float(edge) for edge in edges)


def _value(recipe: FittedFacts, f: dict[str, float]) -> dict[str, int]:
    edges = recipe.edges_
    out = {c: _bin_index(f[c], edges[c]) for c in VALUE_WORDS}
    freq, ret = f["frequency"], f["return_rate"]
    out["frequency"] = (
        0 if freq <= 0 else 1 if freq <= 1 else 2 + _bin_index(freq, edges["frequency"])
    )
    out["returns"] = 0 if ret <= 0 else 1 + _bin_index(ret, edges["return_rate"])
    return out


def _tfidf(recipe: FittedFacts, counts: Counter[str], key: str, k: int) -> list[str]:
    """The ``k`` labels of the highest TF-IDF (ties by label)."""
    if k == 0 or not counts:
        return []
    idf = recipe.idf_[key]
    by_count = recipe.weighting == "count"
    scored = [
        (float(n) if by_count else math.sqrt(n) * idf.get(label, recipe.max_idf_), label)
        for label, n in counts.items()
    ]
    if any(math.isnan(score) for score, _ in scored):
        raise PolarsOnly("NaN TF-IDF score")
    scored.sort(key=lambda sl: (-sl[0], sl[1]))
    return [label for _, label in scored[:k]]


def _habits(f: dict[str, float]) -> dict[str, int | None]:
    shares = [f[c] for c in DAYPARTS]
    top = max(shares)
    weekend = f["share_weekend"]
    return {
        "daypart": shares.index(top) if top >= 0.5 else None,
        "week": 0 if weekend >= 0.5 else 1 if weekend <= 0.15 else 2,
    }


def _channels(channels: Counter[str]) -> list[str] | None:
    total = sum(channels.values())
    kept = sorted((-n / total, ch) for ch, n in channels.items() if n / total >= CHANNEL_SHARE)
    return [lower(ch) for _, ch in kept] or None


def _texts(rows: list[tuple[int | None, str]], k: int, chars: int) -> list[str] | None:
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
    return [mask_python(squash(text))[:chars] for text in picked]
