"""Synthetic e-commerce events with planted customer archetypes.

Eight archetypes differ in category mix, value, frequency, recency, timing, channel and review
language. Customers mix their archetype with the global behaviour (``noise``) and get their own
jitter on every rate, so archetypes overlap and recovering them is not trivial.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

CATEGORIES = (
    "Grocery", "Baby", "Household", "Electronics", "Gaming", "Fashion", "Shoes", "Beauty",
    "Home > Kitchen", "Garden", "Furniture", "Jewelry", "Office", "Books", "Music", "Sports",
)  # fmt: skip
NOUNS = {
    "Grocery": ["pasta", "olive oil", "coffee beans", "rice", "cereal", "tea bags", "snack bars"],
    "Baby": ["diapers", "baby wipes", "baby bottle", "pacifier", "baby formula", "teether"],
    "Household": ["detergent", "paper towels", "dish soap", "trash bags", "sponges", "bleach"],
    "Electronics": ["wireless earbuds", "4k monitor", "usb-c charger", "mechanical keyboard",
                    "smartwatch", "bluetooth speaker", "ssd drive"],
    "Gaming": ["game controller", "gaming mouse", "rpg video game", "headset", "gaming chair"],
    "Fashion": ["summer dress", "denim jacket", "silk blouse", "wool coat", "linen shirt"],
    "Shoes": ["running sneakers", "leather boots", "sandals", "high heels", "loafers"],
    "Beauty": ["face serum", "lipstick", "moisturizer", "perfume", "eye shadow palette"],
    "Home > Kitchen": ["chef knife", "cast iron pan", "espresso machine", "blender",
                       "dutch oven"],
    "Garden": ["garden hose", "pruning shears", "flower seeds", "planter pot", "lawn mower"],
    "Furniture": ["oak dining table", "sofa", "bookshelf", "armchair", "bed frame"],
    "Jewelry": ["gold necklace", "diamond earrings", "silver bracelet", "luxury watch"],
    "Office": ["printer paper", "ballpoint pens", "toner cartridge", "stapler", "desk organizer",
               "sticky notes"],
    "Books": ["mystery novel", "cookbook", "history book", "poetry collection", "sci-fi novel"],
    "Music": ["vinyl record", "guitar strings", "jazz cd", "concert dvd"],
    "Sports": ["yoga mat", "dumbbells", "football", "tennis racket", "cycling helmet"],
}  # fmt: skip
ADJECTIVES = ["classic", "premium", "eco", "compact", "deluxe", "basic", "family size", "mini"]
BASE_PRICE = {
    "Grocery": 4, "Baby": 12, "Household": 6, "Electronics": 90, "Gaming": 45, "Fashion": 40,
    "Shoes": 60, "Beauty": 25, "Home > Kitchen": 55, "Garden": 30, "Furniture": 220,
    "Jewelry": 300, "Office": 8, "Books": 14, "Music": 18, "Sports": 30,
}  # fmt: skip
CHANNELS = ("web", "app", "store")
COUNTRIES = ("United Kingdom", "Germany", "France", "China", "United States", "Spain")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")

EN_REVIEWS = {
    "value": ["great value for money", "cheap and does the job", "good price for the family",
              "bought again, best deal around"],
    "tech": ["fast shipping, the specs are exactly as described", "battery life is impressive",
             "firmware update fixed the latency", "solid build quality, works with my setup"],
    "style": ["fits perfectly and looks stylish", "the colour was different, returned it",
              "lovely fabric, will order another size", "too small, sending back"],
    "home": ["sturdy and beautiful in our kitchen", "assembly took an hour but worth it",
             "the garden looks amazing now", "heavy duty, good for years"],
    "office": ["bulk order arrived on time for the office", "invoice please, company purchase",
               "reliable supplies for our team"],
    "books": ["a wonderful read, could not put it down", "the recording quality is superb",
              "great story and beautiful print"],
    "luxury": ["elegant gift, beautifully packaged", "authentic and luxurious",
               "my wife loved the necklace"],
}  # fmt: skip
ZH_REVIEWS = {
    "value": ["性价比很高，家里人都喜欢", "价格便宜，质量还可以"],
    "tech": ["发货很快，参数和描述一致", "电池续航很好，推荐购买"],
    "style": ["尺码合适，款式好看", "颜色不对，已经退货"],
    "home": ["厨房用着很顺手，质量很好", "安装有点麻烦但是很结实"],
    "office": ["公司批量采购，按时到货"],
    "books": ["故事很精彩，印刷精美"],
    "luxury": ["包装精美，送礼很有面子", "正品，非常高档，老婆很喜欢"],
}  # fmt: skip
SEARCHES = {
    "value": ["cheap diapers", "bulk pasta", "discount detergent"],
    "tech": ["gaming mouse", "4k monitor deal", "noise cancelling earbuds"],
    "style": ["summer dress sale", "white sneakers", "new lipstick"],
    "home": ["cast iron pan", "garden hose 30m", "oak table"],
    "office": ["toner cartridge hp", "printer paper 5000 sheets"],
    "books": ["new mystery novel", "jazz vinyl"],
    "luxury": ["diamond earrings", "luxury watch gift"],
}  # fmt: skip


@dataclass(frozen=True)
class Archetype:
    name: str
    weight: float
    categories: dict[str, float]
    orders: float  # mean repeat orders
    lines: float  # mean extra lines per order
    quantity: float  # mean extra units per line
    price: float  # price multiplier
    recency: float  # mean days since last order
    tenure: float  # mean days between first and last order
    hour: float  # peak hour
    weekend: float
    channels: tuple[float, float, float]
    review: float  # reviews per order
    theme: str
    zh: float  # share of reviews in Chinese
    returns: float


ARCHETYPES = (
    Archetype("Budget family", 0.18, {"Grocery": 4, "Baby": 3, "Household": 3}, 9, 3, 1.0,
              0.8, 20, 300, 11, 0.2, (0.7, 0.2, 0.1), 0.15, "value", 0.05, 0.02),
    Archetype("Tech enthusiast", 0.13, {"Electronics": 5, "Gaming": 3}, 4, 0.6, 0.1,
              1.3, 30, 250, 23, 0.35, (0.2, 0.75, 0.05), 0.4, "tech", 0.05, 0.05),
    Archetype("Weekend fashion", 0.15, {"Fashion": 4, "Shoes": 2, "Beauty": 2}, 5, 1.5, 0.1,
              1.0, 25, 200, 15, 0.8, (0.25, 0.7, 0.05), 0.3, "style", 0.05, 0.3),
    Archetype("Home & garden", 0.12, {"Home > Kitchen": 3, "Garden": 3, "Furniture": 2}, 2, 1,
              0.2, 1.4, 60, 300, 10, 0.75, (0.8, 0.1, 0.1), 0.25, "home", 0.05, 0.05),
    Archetype("Lapsed one-timer", 0.14, {c: 1 for c in CATEGORIES}, 0.15, 0.8, 0.2, 0.7, 280,
              20, 14, 0.4, (0.6, 0.2, 0.2), 0.02, "value", 0.0, 0.08),
    Archetype("Chinese luxury", 0.08, {"Jewelry": 3, "Beauty": 3, "Fashion": 1}, 3, 0.5, 0.05,
              1.8, 30, 220, 21, 0.5, (0.1, 0.85, 0.05), 0.5, "luxury", 0.85, 0.05),
    Archetype("Office bulk buyer", 0.08, {"Office": 6, "Household": 1}, 10, 4, 12, 1.0, 12,
              330, 10, 0.02, (0.95, 0.03, 0.02), 0.08, "office", 0.05, 0.01),
    Archetype("Book & music lover", 0.12, {"Books": 4, "Music": 2, "Sports": 1}, 7, 0.5, 0.05,
              0.9, 35, 280, 19, 0.45, (0.35, 0.15, 0.5), 0.35, "books", 0.05, 0.02),
)  # fmt: skip


def catalog(seed: int = 0) -> pl.DataFrame:
    """Items: item_id, item_name, category, brand, price (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for category in CATEGORIES:
        for noun in NOUNS[category]:
            for adjective in rng.choice(ADJECTIVES, size=4, replace=False):
                rows.append(
                    {
                        "item_id": f"I{len(rows):05d}",
                        "item_name": f"{adjective} {noun}",
                        "category": category,
                        "brand": f"{category.split()[0][:3].upper()}-{rng.integers(1, 6)}",
                        "price": round(float(BASE_PRICE[category] * rng.lognormal(0, 0.35)), 2),
                    }
                )
    return pl.DataFrame(rows)


def generate(
    n_customers: int = 3000,
    *,
    seed: int = 0,
    noise: float = 0.25,
    end: datetime = datetime(2026, 6, 30, 23, 59),
    archetypes: tuple[Archetype, ...] = ARCHETYPES,
    labels: np.ndarray | None = None,
) -> dict[str, pl.DataFrame]:
    """Generate events, users, items and the planted labels.

    Parameters
    ----------
    n_customers : int
        Number of customers.
    seed : int
        Seed of every random draw; the same seed gives identical tables.
    noise : float in [0, 1]
        Share of each customer's category draws taken from the global mix instead of the
        archetype's.
    end : datetime
        The last possible event time.
    archetypes : tuple of Archetype
        The planted archetypes (default :data:`ARCHETYPES`).
    labels : ndarray of shape (n_customers,), optional
        Each customer's archetype index (drawn by weight when omitted; -1 = no events, the
        customer is absent): with it, periods of one evolving shop share customers.

    Returns
    -------
    dict with keys ``events``, ``users``, ``items``, ``labels``.
    """
    rng = np.random.default_rng(seed)
    items = catalog(seed)
    arche = archetypes
    weights = np.array([a.weight for a in arche])
    label = rng.choice(len(arche), size=n_customers, p=weights / weights.sum())
    uid = np.array([f"C{i:07d}" for i in range(n_customers)])
    if labels is not None:
        present = np.asarray(labels) >= 0
        label, uid, n_customers = np.asarray(labels)[present], uid[present], int(present.sum())

    def per(attr: str) -> np.ndarray:
        return np.array([getattr(a, attr) for a in arche], dtype=float)[label]

    jitter = lambda: rng.lognormal(0.0, 0.35, n_customers)  # noqa: E731
    n_orders = 1 + rng.poisson(per("orders") * jitter())
    recency = rng.exponential(per("recency")) * jitter()
    tenure = rng.gamma(2.0, per("tenure") / 2.0)
    last_day = np.clip(recency, 0, 700)
    first_day = np.clip(last_day + tenure, 0, 720)

    # orders
    o_user = np.repeat(np.arange(n_customers), n_orders)
    n_o = o_user.size
    frac = rng.random(n_o)
    days_ago = last_day[o_user] + frac * (first_day - last_day)[o_user]
    # each customer's first listed order is exactly their last one (recency is planted)
    first_of = np.r_[0, np.cumsum(n_orders)[:-1]]
    days_ago[first_of] = last_day
    day = np.floor(days_ago)
    weekday = ((end - timedelta(days=0)).weekday() - day) % 7
    want_weekend = rng.random(n_o) < per("weekend")[o_user]
    is_weekend = weekday >= 5
    shift = np.where(want_weekend & ~is_weekend, weekday - 5, 0)
    shift = np.where(~want_weekend & is_weekend, weekday - 4, shift)
    day = np.clip(day + shift, 0, None)
    hour = (per("hour")[o_user] + rng.normal(0, 2.0, n_o)) % 24
    ts_order = (
        np.datetime64(end.replace(hour=0, minute=0))
        - (day * 86400).astype("timedelta64[s]")
        + (hour * 3600).astype("timedelta64[s]")
    )
    ch_p = np.array([a.channels for a in arche])[label][o_user]
    channel = (rng.random(n_o)[:, None] > np.cumsum(ch_p, axis=1)).sum(axis=1).clip(0, 2)
    order_id = np.array([f"O{i:08d}" for i in range(n_o)])

    # lines
    n_lines = 1 + rng.poisson(per("lines")[o_user])
    l_order = np.repeat(np.arange(n_o), n_lines)
    l_user = o_user[l_order]
    cat_p = np.zeros((len(arche), len(CATEGORIES)))
    for i, a in enumerate(arche):
        for c, w in a.categories.items():
            cat_p[i, CATEGORIES.index(c)] = w
    cat_p /= cat_p.sum(axis=1, keepdims=True)
    global_p = np.full(len(CATEGORIES), 1.0 / len(CATEGORIES))
    from_global = rng.random(l_order.size) < noise
    probs = np.where(from_global[:, None], global_p, cat_p[label[l_user]])
    cat = (rng.random(l_order.size)[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
    cat = cat.clip(0, len(CATEGORIES) - 1)
    item_cat = items["category"].to_numpy()
    # the catalog lists items category by category: pick uniformly inside each block
    start = np.array([np.flatnonzero(item_cat == c)[0] for c in CATEGORIES])
    count = np.array([(item_cat == c).sum() for c in CATEGORIES])
    pick = start[cat] + (rng.random(cat.size) * count[cat]).astype(np.int64)
    qty = 1 + rng.poisson(per("quantity")[l_user])
    price = items["price"].to_numpy()[pick] * per("price")[l_user]
    amount = np.round(price * qty, 2)

    events = {
        "user_id": uid[l_user],
        "timestamp": ts_order[l_order],
        "event_type": np.full(l_order.size, "purchase", dtype=object),
        "order_id": order_id[l_order],
        "item_id": items["item_id"].to_numpy()[pick],
        "quantity": qty.astype(float),
        "amount": amount,
        "channel": np.array(CHANNELS)[channel[l_order]],
    }
    frames = [pl.DataFrame(events)]

    # returns
    ret = rng.random(l_order.size) < per("returns")[l_user]
    if ret.any():
        frames.append(
            pl.DataFrame(
                {
                    "user_id": uid[l_user[ret]],
                    "timestamp": ts_order[l_order[ret]] + np.timedelta64(3, "D"),
                    "event_type": np.full(int(ret.sum()), "return", dtype=object),
                    "order_id": np.char.add("R", order_id[l_order[ret]].astype(str)),
                    "item_id": events["item_id"][ret],
                    "quantity": -qty[ret].astype(float),
                    "amount": -amount[ret],
                    "channel": events["channel"][ret],
                }
            )
        )
    frames.append(_reviews(rng, arche, label, uid, o_user, ts_order, channel, events, l_order))
    frames.append(_searches(rng, arche, label, uid, n_customers, end))
    all_events = pl.concat(frames, how="diagonal_relaxed")
    all_events = all_events.join(
        items.select("item_id", "item_name", "category"), on="item_id", how="left"
    ).with_columns(pl.col("timestamp").cast(pl.Datetime("us")))
    all_events = all_events.sort(["user_id", "timestamp", "event_type", "item_id"])
    users = _users(rng, arche, label, uid, first_day, end)
    planted = pl.DataFrame(
        {"user_id": uid, "segment": label, "archetype": np.array([a.name for a in arche])[label]}
    )
    cols = ["user_id", "timestamp", "event_type", "order_id", "item_id", "item_name", "category",
            "quantity", "amount", "text", "rating", "channel"]  # fmt: skip
    return {"events": all_events.select(cols), "users": users, "items": items, "labels": planted}


def _reviews(
    rng: np.random.Generator,
    arche: tuple[Archetype, ...],
    label: np.ndarray,
    uid: np.ndarray,
    o_user: np.ndarray,
    ts_order: np.ndarray,
    channel: np.ndarray,
    events: dict[str, np.ndarray],
    l_order: np.ndarray,
) -> pl.DataFrame:
    review_p = np.array([a.review for a in arche])[label[o_user]]
    has = rng.random(o_user.size) < review_p
    idx = np.flatnonzero(has)
    first_line = np.searchsorted(l_order, idx)
    texts, ratings = [], []
    for i in idx:
        a = arche[label[o_user[i]]]
        pool = ZH_REVIEWS[a.theme] if rng.random() < a.zh else EN_REVIEWS[a.theme]
        text = str(pool[rng.integers(len(pool))])
        if rng.random() < 0.03:
            text += " - contact me at shopper" + str(rng.integers(100, 999)) + "@example.com"
        elif rng.random() < 0.03:
            text += " call +44 20 7946 " + str(rng.integers(1000, 9999))
        texts.append(text)
        bad = "returned" in text or "退货" in text or "too small" in text
        ratings.append(float(np.clip(np.round(rng.normal(2.5 if bad else 4.4, 0.7)), 1, 5)))
    return pl.DataFrame(
        {
            "user_id": uid[o_user[idx]],
            "timestamp": ts_order[idx] + np.timedelta64(5, "D"),
            "event_type": np.full(idx.size, "review", dtype=object),
            "item_id": events["item_id"][first_line],
            "text": np.array(texts, dtype=object),
            "rating": np.array(ratings),
            "channel": np.array(CHANNELS)[channel[idx]],
        }
    )


def _searches(
    rng: np.random.Generator,
    arche: tuple[Archetype, ...],
    label: np.ndarray,
    uid: np.ndarray,
    n: int,
    end: datetime,
) -> pl.DataFrame:
    n_search = rng.poisson(1.2, n)
    s_user = np.repeat(np.arange(n), n_search)
    themes = sorted(SEARCHES)
    width = max(len(v) for v in SEARCHES.values())
    pools = np.array([[SEARCHES[t][i % len(SEARCHES[t])] for i in range(width)] for t in themes])
    theme = np.array([themes.index(a.theme) for a in arche])[label[s_user]]
    queries = pools[theme, rng.integers(0, width, s_user.size)]
    days = rng.uniform(0, 400, s_user.size)
    ts = np.datetime64(end) - (days * 86400).astype("timedelta64[s]")
    return pl.DataFrame(
        {
            "user_id": uid[s_user],
            "timestamp": ts,
            "event_type": np.full(s_user.size, "search", dtype=object),
            "text": np.array(queries, dtype=object),
            "channel": np.array(CHANNELS)[rng.integers(0, 2, s_user.size)],
        }
    )


def _users(
    rng: np.random.Generator,
    arche: tuple[Archetype, ...],
    label: np.ndarray,
    uid: np.ndarray,
    first_day: np.ndarray,
    end: datetime,
) -> pl.DataFrame:
    n = uid.size
    country = rng.choice(len(COUNTRIES), size=n, p=[0.5, 0.15, 0.12, 0.05, 0.12, 0.06])
    zh = np.array([a.zh for a in arche])[label] > 0.5
    country = np.where(zh & (rng.random(n) < 0.8), COUNTRIES.index("China"), country)
    signup = np.datetime64(end) - ((first_day + rng.uniform(0, 30, n)) * 86400).astype(
        "timedelta64[s]"
    )
    return pl.DataFrame(
        {
            "user_id": uid,
            "country": np.array(COUNTRIES)[country],
            "age_band": np.array(AGE_BANDS)[rng.integers(0, len(AGE_BANDS), n)],
            "signup_date": signup.astype("datetime64[D]"),
        }
    )
