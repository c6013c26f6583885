"""Segments that live over time: stable ids across refits, migrations, history and drift.

:func:`carry_forward` aligns a new fit to a previous run folder (:func:`load_previous`);
:func:`check_drift` compares new events with a saved model's reference without refitting.
"""

from __future__ import annotations

from segmenter.lineage.align import Alignment, align
from segmenter.lineage.carry import Lineage, SegmentIds, carry_forward
from segmenter.lineage.previous import PreviousRun, load_previous

__all__ = [
    "Alignment",
    "Lineage",
    "PreviousRun",
    "SegmentIds",
    "align",
    "carry_forward",
    "load_previous",
]
