"""The thin estimator around :func:`~segmenter.finetune.refine.refine_encoder`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from segmenter.finetune.acceptance import Acceptance
from segmenter.finetune.options import DeepOptions
from segmenter.finetune.refine import Callback, refine_encoder


class EncoderRefiner:
    """Refine a sentence-transformers encoder from frozen segments (:func:`refine_encoder`).

    Parameters
    ----------
    options : DeepOptions, optional
        Default ``DeepOptions()``; checked in :meth:`fit`.
    seed : int
        Seed of every random step.
    progress : bool
        tqdm bar over training steps.

    Attributes
    ----------
    encoder_ : FinetunedEncoder
    report_ : dict
        options, seed, best_step, collapse_guard_triggered and the history of the checks
        (see :class:`Refinement`).
    history_ : list of dict
    best_step_ : int
    collapsed_ : bool
        True when the collapse guard restored an earlier checkpoint.
    verdict_ : dict or None
        The acceptance rule's verdict of the kept weights (with ``held_out``).
    cluster_centers_ : ndarray of shape (k, dim)
    """

    def __init__(
        self, options: DeepOptions | None = None, *, seed: int = 0, progress: bool = True
    ) -> None:
        self.options = options
        self.seed = seed
        self.progress = progress

    def fit(
        self,
        st: Any,
        texts: Sequence[str],
        labels: np.ndarray,
        *,
        base_identity: str = "",
        space: np.ndarray | None = None,
        callback: Callback | None = None,
        held_out: tuple[Sequence[str], Acceptance] | None = None,
    ) -> EncoderRefiner:
        """Refine a copy of ``st`` from segments ``labels`` (see :func:`refine_encoder`)."""
        options = (self.options or DeepOptions()).validate()
        result = refine_encoder(
            st, texts, labels, options, seed=self.seed, base_identity=base_identity,
            space=space, callback=callback, held_out=held_out, progress=self.progress,
        )  # fmt: skip
        self.verdict_ = result.verdict
        self.encoder_ = result.encoder
        self.history_ = result.history
        self.best_step_ = result.best_step
        self.collapsed_ = result.collapsed
        self.cluster_centers_ = result.centres
        self.report_ = result.report()
        return self
