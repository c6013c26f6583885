"""Seeded stratified hold-out splits that also work with very small classes."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split


def stratified_split(y: np.ndarray, fraction: float, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into a kept part and a stratified hold-out of about ``fraction``.

    Classes with at least two members go through scikit-learn's stratified
    ``train_test_split`` (every such class gets at least one hold-out member when the size
    allows); members of singleton classes always stay in the kept part.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Integer class codes.
    fraction : float in [0, 1)
        Share of the samples to hold out; 0 holds out nothing.
    seed : int
        ``random_state`` of the split.

    Returns
    -------
    keep, holdout : ndarray of int
        Sorted sample indices.
    """
    everything = np.arange(len(y))
    empty = np.zeros(0, dtype=np.int64)
    if fraction <= 0:
        return everything, empty
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    eligible = np.flatnonzero(counts[inverse] >= 2)
    n_classes = int((counts >= 2).sum())
    n_hold = max(round(fraction * len(eligible)), n_classes)
    n_hold = min(n_hold, len(eligible) - n_classes)
    if n_classes == 0 or n_hold < n_classes:
        return everything, empty
    keep, hold = train_test_split(
        eligible, test_size=n_hold, stratify=y[eligible], random_state=seed
    )
    singles = np.setdiff1d(everything, eligible)
    return np.sort(np.concatenate([keep, singles])), np.sort(hold)
