"""Does a fine-tuned encoder make better segments? A label-free rule on held-out customers.

The deep head trains on most customers and keeps a seeded share of them out
(:func:`held_out`). On those, :class:`Acceptance` compares the frozen space the segments use
(the taste space) with the fine-tuned embedding:

- ``agreement``: share of each customer's nearest neighbours in the fine-tuned space that are
  also among its nearest neighbours in the frozen space. A fine-tuning that scrambles the
  customers keeps almost none;
- ``separation``: how much of the frozen space's variance the *new* segments (k-means in the
  fine-tuned space) explain, as a share of what the frozen segments explain there. Segments
  that only the fine-tuned encoder can see, unrelated to what the documents say, explain
  little of it;
- ``stability``: adjusted Rand index between two k-means seeds in the fine-tuned space, minus
  the same in the frozen space; sharper segments come out the same whatever the seed.

A fine-tuning is accepted when each stays above its floor (:class:`Rule`); among accepted
checkpoints the one with the highest ``score`` is kept. Once the pipeline has segmented all
customers with the kept checkpoint, :func:`consistency` asks one more question the held-out
checks cannot answer (a more stable, well separated partition is not a more correct one):
do the new segments agree with k-means alternatives of the frozen space about as well as the
frozen segments do? Where frozen k-means already comes out the same whatever the seed there is
little for fine-tuning to fix, and new segments that drift from it are refused. The floors
and the score were chosen because they separate the fine-tunings that gained accuracy from
those that lost it on every labelled set of the deep benchmark (BENCHMARKS.md, "Deep
head acceptance").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score

from segmenter.cluster import KMeansClusterer
from segmenter.finetune.objectives import neighbours

#: Share of the customers kept out of fine-tuning to judge it, and its cap.
HELD_OUT_SHARE = 0.2
MAX_HELD_OUT = 1000
#: Neighbours compared per held-out customer.
NEIGHBOURS = 10
#: Frozen k-means alternatives :func:`consistency` compares with, and its sample cap.
ALTERNATIVES = 4
MAX_CONSISTENCY_SAMPLE = 5000


@dataclass(frozen=True)
class Rule:
    """Floors of :class:`Acceptance`.

    Attributes
    ----------
    min_agreement : float
        Least share of nearest neighbours kept from the frozen space.
    min_separation : float
        Least share of the frozen segments' explained variance (in the frozen space) that the
        new segments explain.
    min_stability : float
        Least change of the seed-to-seed ARI against the frozen space.
    min_consistency : float
        Least :func:`consistency` of the pipeline's fine-tuned segments, required where the
        frozen segments agree at least ``stable_frozen`` (mean ARI) with the frozen space's
        k-means alternatives.
    stable_frozen : float
        Frozen seed-to-seed agreement from which frozen segments count as stable.
    """

    min_agreement: float = 0.3
    min_separation: float = 0.85
    min_stability: float = -0.03
    min_consistency: float = -0.02
    stable_frozen: float = 0.9


def held_out(n: int, seed: int, *, share: float = HELD_OUT_SHARE) -> np.ndarray:
    """Boolean mask of the customers kept out of fine-tuning (seeded; at most
    :data:`MAX_HELD_OUT`).

    Returns
    -------
    ndarray of bool of shape (n,)
    """
    size = min(MAX_HELD_OUT, round(share * n))
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).choice(n, size=size, replace=False)] = True
    return mask


def explained(space: np.ndarray, labels: np.ndarray) -> float:
    """Share of the variance of ``space`` (n, d) explained by the groups ``labels`` (R^2)."""
    total = float(((space - space.mean(axis=0)) ** 2).sum())
    within = 0.0
    for j in np.unique(labels):
        part = space[labels == j]
        within += float(((part - part.mean(axis=0)) ** 2).sum())
    return 1.0 - within / total if total > 0 else 0.0


class Acceptance:
    """Judge fine-tuned embeddings of held-out customers against their frozen space.

    Parameters
    ----------
    k : int
        Segments the k-means runs look for.
    rule : Rule, optional
        Floors; default ``Rule()``.
    seed : int
        Seed of the k-means runs (the second run uses ``seed + 1``).

    Attributes
    ----------
    frozen_ : ndarray of shape (n_held_out, d)
    separation_ : float
        Variance share the frozen segments explain in the frozen space.
    stability_ : float
        Seed-to-seed ARI of the frozen segments.
    neighbours_ : ndarray of int of shape (n_held_out, NEIGHBOURS)
    """

    def __init__(self, k: int, *, rule: Rule | None = None, seed: int = 0) -> None:
        self.k = k
        self.rule = rule
        self.seed = seed

    def _runs(self, space: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return tuple(  # type: ignore[return-value]
            KMeansClusterer(self.k, n_restarts=3, random_state=self.seed + r).fit(space).labels_
            for r in (0, 1)
        )

    def fit(self, frozen: np.ndarray) -> Acceptance:
        """Frozen space of the held-out customers, array of shape (n_held_out, d)."""
        self.frozen_ = np.asarray(frozen, dtype=np.float32)
        first, second = self._runs(self.frozen_)
        self.separation_ = explained(self.frozen_, first)
        self.stability_ = float(adjusted_rand_score(first, second))
        self.neighbours_ = neighbours(self.frozen_, NEIGHBOURS, cosine=False)
        return self

    def judge(self, tuned: np.ndarray) -> dict[str, Any]:
        """Metrics, ``score`` and verdict (``accepted``, ``rejected_because``) of fine-tuned
        embeddings ``tuned`` of shape (n_held_out, dim), rows in the order of ``frozen``."""
        rule = self.rule or Rule()
        z = np.asarray(tuned, dtype=np.float32)
        z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        near = neighbours(z, self.neighbours_.shape[1])
        agreement = float((near[:, :, None] == self.neighbours_[:, None, :]).any(axis=2).mean())
        first, second = self._runs(z)
        separation = explained(self.frozen_, first) / max(self.separation_, 1e-12)
        stability = float(adjusted_rand_score(first, second)) - self.stability_
        failed = [
            f"{name} {value:.3f} < {floor}"
            for name, value, floor in (
                ("neighbour agreement", agreement, rule.min_agreement),
                ("separation in the frozen space", separation, rule.min_separation),
                ("seed stability change", stability, rule.min_stability),
            )
            if value < floor
        ]
        return {
            "agreement": round(agreement, 4),
            "separation": round(separation, 4),
            "stability": round(stability, 4),
            "score": round(stability + separation - 1.0, 4),
            "accepted": not failed,
            "rejected_because": "; ".join(failed),
        }


def consistency(
    frozen_space: np.ndarray,
    frozen_labels: np.ndarray,
    tuned_labels: np.ndarray,
    *,
    seed: int,
    restarts: int = 3,
    rule: Rule | None = None,
) -> dict[str, Any]:
    """Do fine-tuned segments agree with the frozen space's k-means as well as the frozen
    segments do?

    k-means on ``frozen_space`` (n, d) with :data:`ALTERNATIVES` seeds other than ``seed``
    (``restarts`` each: pass the pipeline's, or the alternatives are less stable than the
    segments they are compared with) gives alternative frozen partitions. ``frozen`` is the
    mean ARI of ``frozen_labels`` with them (the frozen segments' own seed-to-seed
    stability), ``tuned`` the same for ``tuned_labels``, and ``consistency`` = tuned -
    frozen. Where frozen k-means is already stable (``frozen`` >= ``Rule.stable_frozen``)
    there is little to fix, and new segments that drift from it (below
    ``Rule.min_consistency``) are refused. Where it is not, fine-tuned segments may settle
    far from the frozen ones (a sharper, truer partition often does). At most
    :data:`MAX_CONSISTENCY_SAMPLE` seeded customers are compared.

    Returns
    -------
    dict with ``frozen``, ``tuned``, ``consistency``, ``accepted``, ``rejected_because``
    """
    rule = rule or Rule()
    floor = rule.min_consistency
    n = len(frozen_labels)
    rows = np.arange(n)
    if n > MAX_CONSISTENCY_SAMPLE:
        rows = np.sort(
            np.random.default_rng(seed).choice(n, size=MAX_CONSISTENCY_SAMPLE, replace=False)
        )
    space = np.asarray(frozen_space, dtype=np.float32)[rows]
    k = int(max(len(np.unique(frozen_labels)), 2))
    others = [
        KMeansClusterer(k, n_restarts=restarts, random_state=seed + 1 + r).fit(space).labels_
        for r in range(ALTERNATIVES)
    ]
    frozen = float(np.mean([adjusted_rand_score(frozen_labels[rows], o) for o in others]))
    tuned = float(np.mean([adjusted_rand_score(tuned_labels[rows], o) for o in others]))
    value = tuned - frozen
    ok = value >= floor or frozen < rule.stable_frozen
    return {
        "frozen": round(frozen, 4),
        "tuned": round(tuned, 4),
        "consistency": round(value, 4),
        "accepted": ok,
        "rejected_because": ""
        if ok
        else (
            f"segment consistency {value:.3f} < {floor} where the frozen segments are stable "
            f"(the new segments agree {tuned:.3f} with the frozen space's k-means, the frozen "
            f"ones {frozen:.3f} >= {rule.stable_frozen})"
        ),
    }
