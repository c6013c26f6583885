"""Every phrase of a customer document, in one place.

The renderer (:mod:`segmenter.render`) writes documents only from these phrases and the
customer's own facts (their items, categories, channels, attributes and texts); the stop words of
distinctive terms (:mod:`segmenter.terms`) are derived from the same phrases, so that a wording
changed here changes both.
"""

from __future__ import annotations

#: (feature, words from low to high); bins are quantiles of the training customers.
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
#: Words of the repeat buyers' order counts, from low to high (quantiles of the repeat buyers).
REPEAT_WORDS = ("occasional buyer", "regular buyer", "frequent buyer", "very frequent buyer")
#: A customer's order count: never, once, then :data:`REPEAT_WORDS` (fact ``frequency``).
FREQUENCY_WORDS = ("never bought", "one-time buyer", *REPEAT_WORDS)
#: Returns of customers who return at all, from low to high.
RETURN_WORDS = ("sometimes returns", "often returns")
#: A customer's returns: none, then :data:`RETURN_WORDS` (fact ``returns``).
RETURNS_WORDS = ("never returns", *RETURN_WORDS)
#: Order of the value sentence's words; the frequency goes second, the returns last.
VALUE_ORDER = ("monetary", "frequency", *tuple(VALUE_WORDS)[1:], "returns")

#: Daypart feature -> its words (fact ``daypart``: index of the customer's main daypart).
DAYPARTS = {
    "share_morning": "mornings",
    "share_afternoon": "afternoons",
    "share_evening": "evenings",
    "share_night": "late nights",
}
SHOPS = "Shops"
MOSTLY_IN_THE = " mostly in the "
VARIED_TIMES = " at varied times"
#: Fact ``week``: 0 mostly at weekends, 1 on weekdays, 2 both.
WEEK_WORDS = (", mostly at weekends", ", on weekdays", ", weekdays and weekends")
VIA = " via "
AND = " and "

#: Section labels.
CATEGORIES = "Categories: "
ITEMS = "Items: "
SEARCHES = "Searches: "
WRITES = "Writes: "
#: The document of a customer of whom nothing is known but numbers (no items, no texts).
NOTHING_KNOWN = "No items or texts."
RATES = "Rates "
ON_AVERAGE = " on average."

#: Connectives.
LIST_SEP = ", "
SEARCH_SEP = "; "
QUOTE = '"'
QUOTE_SEP = '" "'
ATTRIBUTE_SEP = ". "
END = "."


def attribute_label(column: str) -> str:
    """How a user attribute is introduced: ``age_band`` -> ``"Age band: "``."""
    return column.replace("_", " ").capitalize() + ": "


def phrases() -> list[str]:
    """Every fixed phrase a document can contain (for the stop words of distinctive terms)."""
    return [
        *FREQUENCY_WORDS,
        *RETURNS_WORDS,
        *(w for words in VALUE_WORDS.values() for w in words),
        *DAYPARTS.values(),
        SHOPS + MOSTLY_IN_THE + VARIED_TIMES,
        *WEEK_WORDS,
        VIA,
        AND,
        CATEGORIES,
        ITEMS,
        SEARCHES,
        WRITES,
        NOTHING_KNOWN,
        RATES + ON_AVERAGE,
    ]
