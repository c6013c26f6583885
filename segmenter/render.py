"""Facts -> text: the one renderer of customer documents.

A customer's facts (one row of :func:`segmenter.facts.facts_frame`, or of the plain-Python path
for a few customers) hold numbers, bin indices and the customer's own strings already normalized
and masked; every fixed phrase comes from :mod:`segmenter.vocabulary`. The same function renders
one customer or a million.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from segmenter import vocabulary as V

Section = Literal[
    "value", "categories", "items", "habits", "channels", "attributes", "ratings", "texts"
]
#: Every section, in document order; the default of :class:`~segmenter.documents.DocumentRecipe`.
SECTIONS: tuple[Section, ...] = (
    "value",
    "categories",
    "items",
    "habits",
    "channels",
    "attributes",
    "ratings",
    "texts",
)
#: What a document says by default: what the customer buys and writes (taste). Value and
#: lifecycle are carried exactly by the behaviour features next to the embedding.
TASTE_SECTIONS: tuple[Section, ...] = ("categories", "items", "texts")
#: Value words of each fact of the value sentence.
_VALUE_SCALES: dict[str, tuple[str, ...]] = {
    **V.VALUE_WORDS,
    "frequency": V.FREQUENCY_WORDS,
    "returns": V.RETURNS_WORDS,
}


def render(facts: Mapping[str, Any], sections: Sequence[str] = TASTE_SECTIONS) -> str:
    """The document of one customer.

    Parameters
    ----------
    facts : mapping
        One row of the facts frame (see :func:`segmenter.facts.facts_frame` for its fields).
    sections : sequence of str
        Which of :data:`SECTIONS` to write (in document order whatever their order here).
    """
    on = set(sections)
    pieces = [
        _value(facts) if "value" in on else None,
        _list(V.CATEGORIES, _shares(facts["categories"], facts["category_shares"]))
        if "categories" in on
        else None,
        _list(V.ITEMS, facts["items"]) if "items" in on else None,
        _habits(facts, "habits" in on, "channels" in on),
        _attributes(facts["attributes"]) if "attributes" in on else None,
        _rating(facts["rating"]) if "ratings" in on else None,
    ]
    if "texts" in on and not any(pieces):  # a customer who only wrote: the texts alone
        return " ".join([*(facts["searches"] or []), *(facts["writes"] or [])]) or V.NOTHING_KNOWN
    if "texts" in on:
        pieces.append(_quotes(V.SEARCHES, facts["searches"], V.SEARCH_SEP, ""))
        pieces.append(_quotes(V.WRITES, facts["writes"], V.QUOTE_SEP, V.QUOTE))
    return " ".join(p for p in pieces if p is not None) or V.NOTHING_KNOWN


def render_all(
    facts: Iterable[Mapping[str, Any]], sections: Sequence[str] = TASTE_SECTIONS
) -> list[str]:
    """:func:`render` of every row, in order."""
    return [render(row, sections) for row in facts]


def _value(facts: Mapping[str, Any]) -> str:
    words = [_VALUE_SCALES[name][facts[name]] for name in V.VALUE_ORDER]
    return V.LIST_SEP.join(words) + V.END


def piece(text: str, sep: str) -> str:
    """``text`` without the separator it is listed with (inside or at its ends), so that a
    document splits back into exactly its pieces
    (:func:`segmenter.encoders.pieces.split_pieces`); "" when nothing else is left."""
    while sep in text:
        text = text.replace(sep, " ")
    return text.strip(sep + " ")


def _shares(labels: list[str] | None, shares: list[int] | None) -> list[str] | None:
    if labels is None or shares is None:
        return None
    pairs = [(piece(label, V.LIST_SEP), s) for label, s in zip(labels, shares, strict=True)]
    return [f"{label} ({share}%)" for label, share in pairs if label]


def _list(label: str, values: list[str] | None) -> str | None:
    if not values:
        return None
    kept = [p for p in (piece(v, V.LIST_SEP) for v in values) if p]
    return label + V.LIST_SEP.join(kept) + V.END if kept else None


def _habits(facts: Mapping[str, Any], timing: bool, channels: bool) -> str | None:
    if not (timing or channels):
        return None
    out = V.SHOPS
    if timing:
        names = list(V.DAYPARTS.values())
        daypart = facts["daypart"]
        out += V.VARIED_TIMES if daypart is None else V.MOSTLY_IN_THE + names[daypart]
        out += V.WEEK_WORDS[facts["week"]]
    if channels and facts["channels"]:
        out += V.VIA + V.AND.join(facts["channels"])
    return out + V.END if out != V.SHOPS else None


def _attributes(attributes: list[dict[str, str | None]] | None) -> str | None:
    if attributes is None:  # no users row
        return None
    parts = [
        V.attribute_label(str(a["name"])) + a["value"] for a in attributes if a["value"] is not None
    ]
    return V.ATTRIBUTE_SEP.join(parts) + V.END


def _rating(rating: str | None) -> str | None:
    return None if rating is None else V.RATES + rating + V.ON_AVERAGE


def _quotes(label: str, texts: list[str] | None, sep: str, quote: str) -> str | None:
    if not texts:
        return None
    kept = [p for p in (piece(t, sep) for t in texts) if p]
    return label + quote + sep.join(kept) + quote + V.END if kept else None
