"""Metrics of the benchmark: value validity, taste lift, stability and label recovery.

Every function takes plain arrays so that it can be checked against hand-computed values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import rankdata
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from segmenter.errors import SegmenterError
from segmenter.quality import eta_squared as eta_squared  # re-exported: the metrics in one place


def rank_eta_squared(values: np.ndarray, labels: np.ndarray) -> float:
    """:func:`eta_squared` of the ranks of ``values`` (average ranks for ties).

    Robust to the heavy tail of spend: one wholesaler cannot carry the score.
    """
    return eta_squared(rankdata(np.asarray(values, dtype=np.float64)), labels)


def top_items(
    pairs: Sequence[tuple[int, str]] | np.ndarray, labels: np.ndarray, n_top: int = 50
) -> dict[int, list[str]]:
    """The ``n_top`` items with the most distinct buyers in each group.

    Parameters
    ----------
    pairs : sequence of (customer index, item) pairs
        Distinct purchases (a customer buying an item several times counts once).
    labels : ndarray of shape (n_customers,)
        Group of each customer.
    n_top : int
        Items kept per group; ties are broken by item key, ascending.

    Returns
    -------
    dict of group -> list of items, most bought first.
    """
    counts: dict[int, dict[str, int]] = {}
    for user, item in {(int(u), str(i)) for u, i in pairs}:
        group = counts.setdefault(int(labels[user]), {})
        group[item] = group.get(item, 0) + 1
    return {
        g: [item for item, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:n_top]]
        for g, c in counts.items()
    }


def hit_rate(
    future: Mapping[int, set[str]],
    recommended: Mapping[int, Sequence[str]],
    labels: np.ndarray,
    *,
    fallback: Sequence[str] = (),
) -> float:
    """Share of the customers' future distinct purchases that are in their group's list.

    Parameters
    ----------
    future : mapping of customer index -> set of items bought after the cut-off
        Customers without future purchases are absent (or map to an empty set).
    recommended : mapping of group -> items
        The list of each group.
    labels : ndarray of shape (n_customers,)
        Group of each customer.
    fallback : sequence of str
        The list of a customer whose group has none (outliers, -1).

    Returns
    -------
    float
        ``sum_u |future_u & list(group_u)| / sum_u |future_u|`` (micro-average over items);
        nan when nobody bought anything after the cut-off.
    """
    lists = {g: set(items) for g, items in recommended.items()}
    other = set(fallback)
    hits = total = 0
    for user, items in future.items():
        total += len(items)
        hits += len(items & lists.get(int(labels[user]), other))
    return hits / total if total else float("nan")


def taste_lift(
    past: Sequence[tuple[int, str]] | np.ndarray,
    future: Mapping[int, set[str]],
    labels: np.ndarray,
    n_top: int = 50,
) -> dict[str, float]:
    """How much better each segment's top items predict its members' future purchases.

    Parameters
    ----------
    past : sequence of (customer index, item)
        Distinct calibration-period purchases.
    future : mapping of customer index -> set of items
        Distinct purchases after the cut-off.
    labels : ndarray of shape (n_customers,)
        Segment of each customer; outliers (-1) get the global list.
    n_top : int
        Length of each list (50 in the benchmark).

    Returns
    -------
    dict with ``segment_hit_rate``, ``global_hit_rate`` and ``lift`` (their ratio).
    """
    labels = np.asarray(labels)
    per_segment = top_items(past, labels, n_top)
    per_segment.pop(-1, None)
    everyone = top_items(past, np.zeros(len(labels), dtype=np.int64), n_top).get(0, [])
    seg = hit_rate(future, per_segment, labels, fallback=everyone)
    glob = hit_rate(future, {}, labels, fallback=everyone)
    lift = seg / glob if glob > 0 else float("nan")
    return {"segment_hit_rate": seg, "global_hit_rate": glob, "lift": lift}


def hungarian_accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Clustering accuracy: the share of points on the best one-to-one cluster-label matching.

    Parameters
    ----------
    truth, predicted : ndarray of shape (n,)
        Any integer (or hashable) labels; the numbers of distinct values may differ (unmatched
        clusters count as errors).
    """
    t = np.unique(np.asarray(truth), return_inverse=True)[1].ravel()
    p = np.unique(np.asarray(predicted), return_inverse=True)[1].ravel()
    if len(t) != len(p) or len(t) == 0:
        raise SegmenterError(
            f"truth ({len(t)}) and predicted ({len(p)}) should have the same non-zero length"
        )
    table = np.zeros((p.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(table, (p, t), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / len(t))


def recovery(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """ARI, NMI and Hungarian ACC of ``predicted`` against ``truth``."""
    return {
        "ari": float(adjusted_rand_score(truth, predicted)),
        "nmi": float(normalized_mutual_info_score(truth, predicted)),
        "acc": hungarian_accuracy(truth, predicted),
    }


def stability(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index between two segmentations of the same customers."""
    return float(adjusted_rand_score(a, b))
