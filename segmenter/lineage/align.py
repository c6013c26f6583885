"""Match a new run's segments to the previous run's: stable ids across refits.

The new segments are matched one-to-one to the previous ones (Hungarian assignment) on how
much they share: the Jaccard overlap of the customers both runs place (contingency table),
plus the similarity of their behaviour profiles (what carries a match when few customers are
shared). A matched segment keeps the previous id and name; an unmatched new segment gets a
fresh id (ids are never reused); an unmatched previous segment is retired, recorded as merged
into the new segment that took most of its customers, and an unmatched new segment that drew
most of its shared customers from one matched previous segment is recorded as split from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

#: weight of the profile similarity next to the customer overlap in the match score
PROFILE_WEIGHT = 0.25
#: a pair scoring below this is no match (the new segment is new, the old one retired)
MIN_SCORE = 0.15
#: share of a segment's shared customers that makes it a split from / merge into another
MAJORITY = 0.5


@dataclass(frozen=True)
class Alignment:
    """How the new segments relate to the previous ones.

    Attributes
    ----------
    ids : dict of int to int
        New label -> stable segment id.
    matched : dict of int to int
        New label -> previous id it kept (matched segments only).
    new : list of int
        Stable ids given to segments born in this run.
    retired : list of int
        Previous ids that no new segment carries.
    splits : dict of int to int
        New stable id -> previous id it split from (a new segment whose shared customers
        mostly came from a segment that lives on).
    merges : dict of int to int
        Retired previous id -> stable id of the new segment that took most of its customers.
    scores : dict of int to float
        New label -> match score of its pair (matched segments only).
    """

    ids: dict[int, int]
    matched: dict[int, int]
    new: list[int]
    retired: list[int]
    splits: dict[int, int] = field(default_factory=dict)
    merges: dict[int, int] = field(default_factory=dict)
    scores: dict[int, float] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        """JSON-ready: counts and the events of the run."""
        return {
            "kept": len(self.matched),
            "new": list(self.new),
            "retired": list(self.retired),
            "splits": {str(k): v for k, v in self.splits.items()},
            "merges": {str(k): v for k, v in self.merges.items()},
        }


def contingency(
    prev: np.ndarray, new: np.ndarray, prev_ids: list[int], new_labels: list[int]
) -> np.ndarray:
    """Customer counts, shape (len(prev_ids), len(new_labels)), of the customers both runs
    place: ``prev[i]`` and ``new[i]`` are one customer's previous id and new label."""
    table = np.zeros((len(prev_ids), len(new_labels)), dtype=np.int64)
    row = {s: i for i, s in enumerate(prev_ids)}
    col = {s: j for j, s in enumerate(new_labels)}
    for p, n in zip(prev.tolist(), new.tolist(), strict=True):
        if p in row and n in col:
            table[row[p], col[n]] += 1
    return table


def profile_similarity(prev: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Cosine similarity, shape (n_prev, n_new), of segment profiles (mean behaviour features
    per segment) standardized together, so that both runs are measured on one scale."""
    both = np.vstack([prev, new]).astype(np.float64)
    both = np.nan_to_num(both)
    both = (both - both.mean(axis=0)) / np.where(both.std(axis=0) > 0, both.std(axis=0), 1.0)
    norm = np.linalg.norm(both, axis=1, keepdims=True)
    both = both / np.where(norm > 0, norm, 1.0)
    return both[: len(prev)] @ both[len(prev) :].T


def align(
    table: np.ndarray,
    prev_ids: list[int],
    new_labels: list[int],
    *,
    next_id: int,
    similarity: np.ndarray | None = None,
    sizes: np.ndarray | None = None,
) -> Alignment:
    """Align new segments to previous ones.

    Parameters
    ----------
    table : ndarray of shape (n_prev, n_new)
        Customers shared by previous segment i and new segment j (:func:`contingency`).
    prev_ids : list of int
        Stable ids of the previous segments (rows of ``table``).
    new_labels : list of int
        Labels of the new segments (columns of ``table``).
    next_id : int
        The first id never used before (ids are never reused).
    similarity : ndarray of shape (n_prev, n_new), optional
        Profile similarity in [-1, 1] (:func:`profile_similarity`).
    sizes : ndarray of shape (n_new,), optional
        Customers of each new segment (shared or not): a new segment made mostly of new
        customers is new, not a split, even when its few returning ones came from one segment.
        Default: the shared customers only.

    Returns
    -------
    Alignment
    """
    table = np.asarray(table, dtype=np.float64)
    if table.shape != (len(prev_ids), len(new_labels)):
        raise ValueError(
            f"table of shape {table.shape} does not match {len(prev_ids)} previous and "
            f"{len(new_labels)} new segments"
        )
    rows, cols = table.sum(axis=1, keepdims=True), table.sum(axis=0, keepdims=True)
    union = rows + cols - table
    score = np.divide(table, union, out=np.zeros_like(table), where=union > 0)
    if similarity is not None:
        score = score + PROFILE_WEIGHT * np.clip(similarity, 0.0, 1.0)
    r, c = linear_sum_assignment(score, maximize=True) if score.size else ([], [])
    matched, scores = {}, {}
    for i, j in zip(r, c, strict=True):
        if score[i, j] >= MIN_SCORE:
            matched[new_labels[j]] = prev_ids[i]
            scores[new_labels[j]] = round(float(score[i, j]), 4)
    ids, new = dict(matched), []
    for label in new_labels:
        if label not in ids:
            ids[label] = next_id
            new.append(next_id)
            next_id += 1
    kept = set(matched.values())
    retired = [p for p in prev_ids if p not in kept]
    splits: dict[int, int] = {}
    total = cols[0] if sizes is None else np.maximum(np.asarray(sizes, dtype=np.float64), cols[0])
    for j, label in enumerate(new_labels):
        share = table[:, j] / cols[0, j] if cols[0, j] > 0 else np.zeros(len(prev_ids))
        returning = cols[0, j] / total[j] if total[j] > 0 else 0.0
        if (
            label not in matched
            and share.size
            and share.max() >= MAJORITY
            and returning >= MAJORITY
        ):
            source = prev_ids[int(share.argmax())]
            if source in kept:
                splits[ids[label]] = source
    merges: dict[int, int] = {}
    for i, p in enumerate(prev_ids):
        share = table[i] / rows[i, 0] if rows[i, 0] > 0 else np.zeros(len(new_labels))
        if p in retired and share.size and share.max() >= MAJORITY:
            target = new_labels[int(share.argmax())]
            if target in matched:
                merges[p] = ids[target]
    return Alignment(ids, matched, new, retired, splits, merges, scores)
