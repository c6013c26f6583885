"""The shapes of shop data the balance benchmark is measured on (see :mod:`benchmarks.shops`).

=============== ========== ==================================================================
shape           truth      what the data holds
=============== ========== ==================================================================
retail          8 segments item names + categories (the library's catalogue); taste decides
                           value (each taste has its own value archetype), like today's sample
grocery         8 = 2 x 4  hundreds of lines per household, ~2,500 products; value archetype x
                           taste archetype crossed, drawn independently
amounts_ids     8 values   no names, no categories, no order ids: amounts, quantities, dates
                           and item ids; truth = 8 value archetypes (spend x frequency x
                           lapse); 4 item-id tastes vary independently of the truth
amounts_only    8 values   the same without item ids (taste cannot be scored)
sparse          8 = 2 x 4  few orders per customer before the cut-off (at rates so low that two
                           in three buy once and few buy more than 3 times); one-time /
                           returning value x 4 tastes
=============== ========== ==================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any, Literal

import numpy as np
import polars as pl

from benchmarks.shops import EVENT_COLUMNS, Shop, Taste, Value
from segmenter.synthetic import catalog as retail_catalog

Kind = Literal["items", "no_items", "text"]

GROCERY = {
    "Produce": ["apples", "bananas", "spinach", "tomatoes", "avocados", "carrots", "berries",
                "broccoli", "onions", "lemons"],
    "Dairy": ["whole milk", "greek yogurt", "cheddar", "butter", "oat milk", "mozzarella",
              "cottage cheese", "cream", "kefir", "skyr"],
    "Bakery": ["sourdough loaf", "baguette", "croissants", "bagels", "rye bread", "muffins",
               "pita bread", "brioche", "tortillas", "cinnamon rolls"],
    "Meat": ["chicken breast", "minced beef", "pork chops", "bacon", "lamb shoulder", "sausages",
             "turkey slices", "ribeye steak", "chicken thighs", "meatballs"],
    "Seafood": ["salmon fillet", "prawns", "cod loin", "tuna steak", "mussels", "smoked salmon",
                "sea bass", "scallops", "mackerel", "crab meat"],
    "Frozen": ["frozen pizza", "fish fingers", "ice cream", "frozen peas", "chicken nuggets",
               "frozen berries", "oven chips", "waffles", "frozen lasagne", "ice lollies"],
    "Snacks": ["potato crisps", "chocolate bar", "gummy bears", "popcorn", "cookies",
               "pretzels", "rice cakes", "fruit snacks", "cheese crackers", "candy"],
    "Beverages": ["cola", "sparkling water", "orange juice", "energy drink", "iced tea",
                  "lemonade", "tonic water", "coconut water", "ginger ale", "apple juice"],
    "Wine & Beer": ["red wine", "lager", "prosecco", "craft ipa", "white wine", "cider",
                    "champagne", "rose wine", "stout", "gin"],
    "Baby": ["diapers", "baby wipes", "baby formula", "baby food pouch", "teething rusks",
             "baby shampoo", "nappy cream", "toddler milk", "baby cereal", "sippy cup"],
    "Household": ["dish soap", "laundry detergent", "paper towels", "toilet paper",
                  "trash bags", "sponges", "bleach", "glass cleaner", "fabric softener", "foil"],
    "Pet": ["dry dog food", "cat litter", "cat food pouches", "dog treats", "bird seed",
            "fish flakes", "chew toy", "puppy food", "kitten milk", "flea spray"],
    "Health": ["vitamin c", "protein powder", "chia seeds", "quinoa", "almond butter",
               "kombucha", "green tea", "oat bran", "flax seeds", "tofu"],
    "Deli": ["hummus", "olives", "salami", "prosciutto", "brie", "antipasti", "pesto",
             "guacamole", "sushi box", "quiche"],
    "Pantry": ["spaghetti", "basmati rice", "olive oil", "canned tomatoes", "chickpeas",
               "flour", "stock cubes", "soy sauce", "lentils", "coconut milk"],
    "Breakfast": ["corn flakes", "granola", "porridge oats", "honey", "peanut butter",
                  "strawberry jam", "chocolate spread", "pancake mix", "maple syrup", "muesli"],
}  # fmt: skip
GROCERY_BRANDS = ("FreshCo", "Valley", "Nordic", "Sunny", "Harvest", "Urban", "Green Leaf",
                  "Golden", "Blue Bay", "Old Mill", "Happy", "Prime", "Little", "Kitchen",
                  "Farm", "Select")  # fmt: skip
GROCERY_PRICE = {"Produce": 2, "Dairy": 2, "Bakery": 3, "Meat": 7, "Seafood": 9, "Frozen": 4,
                 "Snacks": 2, "Beverages": 2, "Wine & Beer": 9, "Baby": 8, "Household": 4,
                 "Pet": 9, "Health": 6, "Deli": 5, "Pantry": 2, "Breakfast": 3}  # fmt: skip


@dataclass(frozen=True)
class Shape:
    """A shape of the benchmark: how to build its shop, its default size, its target kind."""

    build: Callable[[int], Shop]
    customers: int
    kind: Kind


def zipf_weights(rng: np.random.Generator, n: int, exponent: float = 0.8) -> np.ndarray:
    """Popularity of ``n`` products: a Zipf curve over a random order."""
    return 1.0 / (1.0 + rng.permutation(n)) ** exponent


def taste_of(
    rng: np.random.Generator, name: str, cat: pl.DataFrame, categories: tuple[str, ...]
) -> Taste:
    """The products of ``categories`` with Zipf popularity."""
    rows = np.flatnonzero(cat["category"].is_in(list(categories)).to_numpy())
    return Taste(name, rows, zipf_weights(rng, rows.size))


def crossed(n_values: int, n_tastes: int) -> tuple[tuple[int, int, float], ...]:
    """Every (value, taste) pair, equally likely: value and taste independent."""
    return tuple((v, t, 1.0) for v, t in product(range(n_values), range(n_tastes)))


def category_shop(
    name: str,
    cat: pl.DataFrame,
    seed: int,
    tastes: Sequence[tuple[str, tuple[str, ...]]],
    values: tuple[Value, ...],
    segments: tuple[tuple[int, int, float], ...],
    **options: Any,
) -> Shop:
    """A shop whose tastes are sets of categories of ``cat`` (Zipf popularity, seeded)."""
    rng = np.random.default_rng(seed)
    return Shop(
        name,
        cat,
        values=values,
        tastes=tuple(taste_of(rng, taste, cat, cats) for taste, cats in tastes),
        segments=segments,
        **options,
    )


def grocery_catalog(seed: int) -> pl.DataFrame:
    """~2,500 products: brand + noun (+ a pack size), 16 departments."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str, str, float]] = []
    sizes = ("", "small", "large", "family pack", "organic", "value pack")
    for dept, nouns in GROCERY.items():
        for noun in nouns:
            for brand in rng.choice(GROCERY_BRANDS, size=16, replace=False):
                size = sizes[int(rng.integers(len(sizes)))]
                name = " ".join(p for p in (brand, size, noun) if p)
                price = GROCERY_PRICE[dept] * rng.lognormal(0, 0.3)
                rows.append((f"G{len(rows):05d}", name, dept, round(float(price), 2)))
    return pl.DataFrame(rows, schema=["item_id", "item_name", "category", "price"], orient="row")


def _retail_items(seed: int) -> pl.DataFrame:
    return retail_catalog(seed).select("item_id", "item_name", "category", "price")


VIP = Value("vip", rate=3.0, lines=4, quantity=1.0, price=1.6, lapse=0.05)
REGULAR = Value("regular", rate=1.2, lines=3, quantity=0.5, price=1.0, lapse=0.15)
OCCASIONAL = Value("occasional", rate=0.35, lines=2, quantity=0.3, price=0.8, lapse=0.3)
LAPSING = Value("lapsing", rate=0.6, lines=2, quantity=0.3, price=0.9, lapse=0.9)


def retail(seed: int) -> Shop:
    """Shape (a): item names and categories; each taste with its own value archetype."""
    tastes = (
        ("family", ("Grocery", "Baby", "Household"), 1),
        ("tech", ("Electronics", "Gaming"), 0),
        ("fashion", ("Fashion", "Shoes", "Beauty"), 1),
        ("home", ("Home > Kitchen", "Garden", "Furniture"), 2),
        ("luxury", ("Jewelry", "Beauty"), 0),
        ("office", ("Office",), 0),
        ("culture", ("Books", "Music"), 2),
        ("sport", ("Sports", "Shoes"), 3),
    )
    return category_shop(
        "retail",
        _retail_items(seed),
        seed,
        [(name, cats) for name, cats, _ in tastes],
        (VIP, REGULAR, OCCASIONAL, LAPSING),
        tuple((v, t, 1.0) for t, (_, _, v) in enumerate(tastes)),
    )


def grocery(seed: int) -> Shop:
    """Shape (b): hundreds of lines per household; value and taste crossed independently."""
    tastes = (
        ("fresh & healthy", ("Produce", "Seafood", "Health", "Dairy")),
        ("family with kids", ("Baby", "Snacks", "Breakfast", "Frozen")),
        ("home cook", ("Meat", "Pantry", "Bakery")),
        ("party & convenience", ("Wine & Beer", "Deli", "Beverages")),
    )
    values = (
        Value("weekly big shop", rate=3.0, lines=11, quantity=0.6, price=1.3, lapse=0.05),
        Value("top-up shopper", rate=2.0, lines=5, quantity=0.2, price=0.9, lapse=0.4),
    )
    return category_shop(
        "grocery",
        grocery_catalog(seed),
        seed,
        tastes,
        values,
        crossed(2, 4),
        favourites=30,
        favourite_share=0.5,
        start_share=0.4,
    )


def _amounts(seed: int, *, item_ids: bool) -> Shop:
    rng = np.random.default_rng(seed)
    n = 1500
    cat = pl.DataFrame(
        {
            "item_id": [f"P{i:05d}" for i in range(n)],
            "item_name": pl.Series([None] * n, dtype=pl.String),
            "category": pl.Series([None] * n, dtype=pl.String),
            "price": np.round(rng.lognormal(np.log(15), 0.6, n), 2),
        }
    )
    pools = rng.permutation(n)[: 4 * 300].reshape(4, 300)
    tastes = tuple(Taste(f"pool {i}", p, zipf_weights(rng, p.size)) for i, p in enumerate(pools))
    values = tuple(
        Value(f"{s} spend, {f}, {a}", rate=r, lines=2, quantity=0.4, price=p, lapse=lapse)
        for (s, p), (f, r), (a, lapse) in product(
            (("low", 0.5), ("high", 2.5)),
            (("rare", 0.4), ("frequent", 2.5)),
            (("active", 0.05), ("lapsing", 0.85)),
        )
    )
    dropped = {"item_name", "category", "order_id"} | (set() if item_ids else {"item_id"})
    return Shop(
        "amounts_ids" if item_ids else "amounts_only",
        cat,
        values=values,
        tastes=tastes,
        segments=crossed(8, 4),
        columns=tuple(c for c in EVENT_COLUMNS if c not in dropped),
        truth="value",
    )


def amounts_ids(seed: int) -> Shop:
    """Shape (c) with item ids: amounts, quantities, dates and item ids only."""
    return _amounts(seed, item_ids=True)


def amounts_only(seed: int) -> Shop:
    """Shape (c) without item ids: amounts, quantities and dates only."""
    return _amounts(seed, item_ids=False)


def sparse(seed: int) -> Shop:
    """Shape (d): few orders at low rates, most customers buy once (no cap: a rare buyer's
    orders spread over the time they are active, as in a real shop)."""
    tastes = (
        ("tech", ("Electronics", "Gaming")),
        ("fashion", ("Fashion", "Shoes", "Beauty")),
        ("home", ("Home > Kitchen", "Garden", "Furniture")),
        ("culture", ("Books", "Music")),
    )
    values = (
        Value("one-time", rate=0.02, lines=2, quantity=0.2, price=0.9, lapse=0.7),
        Value("returning", rate=0.15, lines=2.5, quantity=0.4, price=1.3, lapse=0.1),
    )
    return category_shop(
        "sparse",
        _retail_items(seed),
        seed,
        tastes,
        values,
        crossed(2, 4),
        favourites=4,
        favourite_share=0.3,
        start_share=0.95,
    )


SHAPES: dict[str, Shape] = {
    "retail": Shape(retail, 2500, "items"),
    "grocery": Shape(grocery, 800, "items"),
    "amounts_ids": Shape(amounts_ids, 2500, "no_items"),
    "amounts_only": Shape(amounts_only, 2500, "no_items"),
    "sparse": Shape(sparse, 2500, "items"),
}
