"""Which block and which fit sample a customer belongs to: seeded hashes of the user id.

Pure functions (no Ray): every event of a customer lands in the same block, and the fit sample
is the same customers for the same seed whatever the order or sharding of the input.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from segmenter.data import PRESETS

#: column the engine adds to the raw events: the block a customer's events go to
PART = "_part"
_SPAN = 1 << 32


def user_column(columns: dict[str, str] | None, preset: str | None) -> str:
    """The input's own name of the ``user_id`` column after ``--preset`` and ``--columns``."""
    mapping = dict(PRESETS.get(preset or "", {}))
    mapping.update(columns or {})
    return mapping.get("user_id", "user_id")


def _unit_hash(ids: pl.Series, seed: int) -> np.ndarray:
    """A number in [0, 2**32) per id, stable for the same id text and seed."""
    text = ids.cast(pl.String).str.strip_chars()
    return (text.hash(seed=seed).to_numpy() % _SPAN).astype(np.int64)


def block_of(ids: pl.Series, n_blocks: int, seed: int) -> np.ndarray:
    """Block index in [0, n_blocks) of each id, shape (n_ids,)."""
    if n_blocks < 1:
        raise ValueError(f"n_blocks={n_blocks} should be >= 1")
    return _unit_hash(ids, seed) % n_blocks


def in_sample(ids: pl.Series, fraction: float, seed: int) -> np.ndarray:
    """Mask of the ids in the seeded fit sample holding ``fraction`` of the customers."""
    if fraction >= 1.0:
        return np.ones(len(ids), dtype=bool)
    # another seed than block_of's: the sample is spread over every block
    return _unit_hash(ids, seed + 1) < int(fraction * _SPAN)
