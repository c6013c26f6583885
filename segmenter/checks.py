"""Option checks shared by :class:`~segmenter.config.SegmenterConfig` and the public stage
classes that can be used on their own (one message per check, one place to change it).

The pipeline validates its whole config once, before any work; a stage class used
standalone (``KMeansClusterer(k).fit(X)``) runs the same check on its own arguments.
"""

from __future__ import annotations

import numpy as np

from segmenter.errors import SegmenterError


def is_integer(value: object) -> bool:
    """An int (numpy's included), not a bool."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def at_least(option: str, value: object, low: float, *, integer: bool = True) -> None:
    """Raise unless ``value`` is a number (an integer with ``integer``) >= ``low``.

    Parameters
    ----------
    option : str
        How the error names the option (its CLI flag where it has one).
    """
    number = is_integer(value) or (not integer and isinstance(value, float))
    if not number or not value >= low:  # type: ignore[operator]
        kind = "an integer " if integer else ""
        raise SegmenterError(f"{option}: {value!r} should be {kind}>= {low:g}")


def check_k(k: object, *, auto: bool = True) -> None:
    """``k`` is an integer >= 2 (or ``"auto"`` where the pipeline chooses it)."""
    if auto and k == "auto":
        return
    if not is_integer(k) or k < 2:  # type: ignore[operator]
        raise SegmenterError(
            f"--k: '{k}' should be an integer >= 2" + (" or 'auto'" if auto else "")
        )


def check_enough(n: int, k: int) -> None:
    """At least as many customers as segments."""
    if n < k:
        raise SegmenterError(f"n_customers={n} should be >= --k={k}")


def check_k_range(k_range: tuple[int, int]) -> None:
    """``MIN:MAX`` with 2 <= MIN <= MAX."""
    lo, hi = k_range
    if not (is_integer(lo) and is_integer(hi)) or lo < 2 or hi < lo:
        raise SegmenterError(f"--k-range: {lo}:{hi} should satisfy 2 <= min <= max")
