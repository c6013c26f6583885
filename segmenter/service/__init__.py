"""A long-running assignment service: a loaded model folder placing customers in milliseconds.

:mod:`~segmenter.service.payload` validates request bodies, :mod:`~segmenter.service.holder`
loads, warms and hot-swaps the model, :mod:`~segmenter.service.batcher` gathers concurrent
requests into one encoder call, :mod:`~segmenter.service.app` is the Starlette application.
"""

from __future__ import annotations

from segmenter.service.app import ServiceOptions, create_app
from segmenter.service.batcher import MicroBatcher, Overloaded
from segmenter.service.holder import ModelHolder
from segmenter.service.payload import PayloadError, parse_assign

__all__ = [
    "MicroBatcher",
    "ModelHolder",
    "Overloaded",
    "PayloadError",
    "ServiceOptions",
    "create_app",
    "parse_assign",
]
