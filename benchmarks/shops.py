"""Synthetic shops with a planted truth and a simulated future, for the balance benchmark.

Every customer belongs to one planted *segment*: a pair (value archetype, taste archetype).
The value archetype sets how often a customer orders, how large and how dear the baskets are,
and whether the customer lapses (stops buying at a random day before the cut-off). The taste
archetype sets which products the lines come from (plus a personal list of favourites drawn
from the taste's products, and a share of lines from the whole catalogue). Orders are a
Poisson process from the customer's first day to the day they lapse (or to the end of the
future period): the period after the cut-off is generated from the SAME propensities as the
calibration period, so a lapsed customer buys nothing after it, a high-value one spends more,
and taste persists. That makes the future spend (value validity) and the future items (taste
lift) of :mod:`benchmarks.retail` meaningful on synthetic data.

The truth label of a customer is the index of its segment in :attr:`Shop.segments`.
Real-data noise is mixed in: returns (event_type ``return``, negative quantity and amount),
zero-amount lines, and a few huge wholesale accounts (quantities x 40, truth unchanged).

The shapes (:data:`SHAPES`) are built in :mod:`benchmarks.shop_shapes`. This module does not
touch :mod:`segmenter.synthetic` (whose output ``sample_data/`` depends on).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import polars as pl

from segmenter.data import CANONICAL
from segmenter.errors import SegmenterError

START = datetime(2025, 1, 1)
#: The canonical columns a shop can write (no texts, ratings or channels).
EVENT_COLUMNS = tuple(c for c in CANONICAL if c not in ("text", "rating", "channel"))


@dataclass(frozen=True)
class Value:
    """A value archetype.

    Attributes
    ----------
    name : str
    rate : float
        Mean orders per 30 active days (after the first order).
    lines : float
        Mean lines per order (at least 1).
    quantity : float
        Mean extra units per line.
    price : float
        Price multiplier of the lines.
    lapse : float
        Probability that the customer stops buying at a random day before the cut-off.
    """

    name: str
    rate: float
    lines: float
    quantity: float
    price: float
    lapse: float


@dataclass(frozen=True)
class Taste:
    """A taste archetype: the catalogue rows its lines come from, with popularity weights."""

    name: str
    items: np.ndarray  # int indices into the catalogue
    weights: np.ndarray  # same length, positive


@dataclass(frozen=True)
class Shop:
    """How to generate one shop.

    Attributes
    ----------
    name : str
    catalog : polars.DataFrame
        ``item_id``, ``item_name``, ``category``, ``price`` (names/categories may be null).
    values, tastes : tuples of Value and Taste
    segments : tuple of (value index, taste index, weight)
        The planted segments; the truth label is the position in this tuple (or, with
        ``truth="value"``, the value archetype: taste then varies independently of the truth,
        for shops where only item ids could show it).
    columns : tuple of str
        Event columns written (a shape without item names leaves them out).
    favourites : int
        Personal favourite products per customer (drawn from the taste's products).
    favourite_share, noise : float
        Shares of lines from the favourites and from the whole catalogue.
    start_share : float
        First orders fall uniformly in the first ``start_share`` of the calibration period.
    calibration_days, future_days : int
    returns, zero_amount, wholesale : float
        Share of lines returned, of lines with amount 0, of customers who are wholesalers.
    """

    name: str
    catalog: pl.DataFrame
    values: tuple[Value, ...]
    tastes: tuple[Taste, ...]
    segments: tuple[tuple[int, int, float], ...]
    columns: tuple[str, ...] = EVENT_COLUMNS
    favourites: int = 12
    favourite_share: float = 0.4
    noise: float = 0.15
    start_share: float = 0.8
    calibration_days: int = 360
    future_days: int = 120
    returns: float = 0.03
    zero_amount: float = 0.01
    wholesale: float = 0.003
    truth: Literal["segment", "value"] = "segment"
    description: str = field(default="", compare=False)

    @property
    def cutoff(self) -> datetime:
        """First moment of the future period."""
        return START + timedelta(days=self.calibration_days)


@dataclass(frozen=True)
class ShopData:
    """Generated events (calibration and future) and the planted truth.

    Attributes
    ----------
    events : polars.DataFrame
        Canonical events of both periods (columns :attr:`Shop.columns`).
    labels : polars.DataFrame
        ``user_id``, ``segment`` (the truth), ``value``, ``taste`` (archetype names),
        ``wholesale`` (bool).
    cutoff : datetime
    """

    events: pl.DataFrame
    labels: pl.DataFrame
    cutoff: datetime


def pick(rng: np.random.Generator, items: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """``n`` draws from ``items`` with probabilities proportional to ``weights``."""
    cdf = np.cumsum(weights, dtype=np.float64)
    return items[
        np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right").clip(0, len(items) - 1)
    ]


def generate_shop(shop: Shop, n_customers: int, *, seed: int = 0) -> ShopData:
    """Generate ``n_customers`` customers of ``shop`` (the same seed gives identical frames).

    Parameters
    ----------
    shop : Shop
    n_customers : int
        At least 1; every customer orders at least once before the cut-off.
    seed : int
        Seed of every draw.

    Returns
    -------
    ShopData
    """
    if n_customers < 1:
        raise SegmenterError(f"n_customers: {n_customers} should be >= 1")
    rng = np.random.default_rng(seed)
    seg_w = np.array([w for _, _, w in shop.segments], dtype=np.float64)
    seg = rng.choice(len(shop.segments), size=n_customers, p=seg_w / seg_w.sum())
    v_of = np.array([v for v, _, _ in shop.segments])[seg]
    t_of = np.array([t for _, t, _ in shop.segments])[seg]

    def per(attr: str) -> np.ndarray:
        return np.array([getattr(v, attr) for v in shop.values], dtype=np.float64)[v_of]

    cal, horizon = float(shop.calibration_days), float(shop.calibration_days + shop.future_days)
    first = rng.uniform(0.0, shop.start_share * cal, n_customers)
    lapsed = rng.random(n_customers) < per("lapse")
    stop = np.where(lapsed, rng.uniform(first, cal), horizon)
    rate = per("rate") / 30.0 * rng.lognormal(0.0, 0.3, n_customers)
    n_orders = 1 + rng.poisson(rate * (stop - first))

    o_user = np.repeat(np.arange(n_customers), n_orders)
    day = first[o_user] + rng.random(o_user.size) * (stop - first)[o_user]
    heads = np.r_[0, np.cumsum(n_orders)[:-1]]
    day[heads] = first  # the first order opens the customer's history
    order = np.lexsort((day, o_user))
    o_user, day = o_user[order], day[order]
    hour = rng.normal(14.0, 3.0, o_user.size).clip(0, 23.9)
    ts = np.datetime64(START) + ((day.astype(np.int64) * 24 + hour) * 3600).astype("timedelta64[s]")

    n_lines = 1 + rng.poisson(np.maximum(per("lines")[o_user] - 1.0, 0.0))
    l_order = np.repeat(np.arange(o_user.size), n_lines)
    l_user = o_user[l_order]
    item = _line_items(rng, shop, t_of, l_user)
    wholesaler = _wholesalers(rng, shop, n_customers)
    qty = (1 + rng.poisson(per("quantity")[l_user])) * np.where(wholesaler[l_user], 40, 1)
    price = shop.catalog["price"].to_numpy()[item] * per("price")[l_user]
    amount = np.round(price * qty, 2)
    amount[rng.random(amount.size) < shop.zero_amount] = 0.0

    uid = np.array([f"{shop.name[:1].upper()}{i:06d}" for i in range(n_customers)])
    lines = pl.DataFrame(
        {
            "user_id": uid[l_user],
            "timestamp": ts[l_order],
            "event_type": "purchase",
            "order_id": np.char.add("O", l_order.astype(str)),
            "line": np.arange(l_order.size),
            "item": item,
            "quantity": qty.astype(np.float64),
            "amount": amount,
        }
    )
    back = np.flatnonzero(rng.random(l_order.size) < shop.returns)
    returns = lines[back].with_columns(
        pl.col("timestamp") + pl.duration(days=pl.lit(pl.Series(rng.integers(2, 21, back.size)))),
        pl.lit("return").alias("event_type"),
        ("R" + pl.col("order_id")).alias("order_id"),
        -pl.col("quantity"),
        -pl.col("amount"),
    )
    cat = shop.catalog.with_row_index("item").with_columns(pl.col("item").cast(pl.Int64))
    events = (
        pl.concat([lines, returns])
        .join(cat.select("item", "item_id", "item_name", "category"), on="item", how="left")
        .with_columns(pl.col("timestamp").cast(pl.Datetime("us")))
        .sort("user_id", "timestamp", "line", "event_type")
        .select(list(shop.columns))
    )
    labels = pl.DataFrame(
        {
            "user_id": uid,
            "segment": v_of if shop.truth == "value" else seg,
            "value": np.array([v.name for v in shop.values])[v_of],
            "taste": np.array([t.name for t in shop.tastes])[t_of],
            "wholesale": wholesaler,
        }
    )
    return ShopData(events, labels, shop.cutoff)


def _line_items(
    rng: np.random.Generator, shop: Shop, t_of: np.ndarray, l_user: np.ndarray
) -> np.ndarray:
    """Catalogue row of every line: favourites, the taste's products, or anything."""
    n_cat = shop.catalog.height
    fav = np.empty((t_of.size, shop.favourites), dtype=np.int64)
    for t, taste in enumerate(shop.tastes):
        who = np.flatnonzero(t_of == t)
        fav[who] = pick(rng, taste.items, taste.weights, who.size * shop.favourites).reshape(
            who.size, shop.favourites
        )
    item = np.empty(l_user.size, dtype=np.int64)
    r = rng.random(l_user.size)
    anything = r < shop.noise
    favourite = ~anything & (r < shop.noise + shop.favourite_share)
    item[anything] = rng.integers(0, n_cat, int(anything.sum()))
    item[favourite] = fav[l_user[favourite], rng.integers(0, shop.favourites, favourite.sum())]
    for t, taste in enumerate(shop.tastes):
        mine = ~anything & ~favourite & (t_of[l_user] == t)
        item[mine] = pick(rng, taste.items, taste.weights, int(mine.sum()))
    return item


def _wholesalers(rng: np.random.Generator, shop: Shop, n: int) -> np.ndarray:
    """A few huge accounts (at least one when the share is positive and n >= 50)."""
    out = np.zeros(n, dtype=bool)
    count = round(shop.wholesale * n) or int(shop.wholesale > 0 and n >= 50)
    out[rng.choice(n, size=min(count, n), replace=False)] = True
    return out
