"""The model a service places customers with: loaded, validated, warmed, swapped whole."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from segmenter.data import EventData, load_events
from segmenter.errors import SegmenterError
from segmenter.model import Segmenter

logger = logging.getLogger(__name__)

#: ``loader(folder) -> Segmenter``; the default is :meth:`Segmenter.load` on the CPU
Loader = Callable[[Path], Segmenter]


@dataclass(frozen=True)
class LoadedModel:
    """One loaded, warmed model folder and what ``GET /v1/segments`` shows of it."""

    model: Segmenter
    folder: Path
    loaded_at: float
    segments: list[dict[str, Any]] = field(default_factory=list)


def warmup_events() -> EventData:
    """One made-up customer: enough to run every stage once (encoder, reducers, clusterer)."""
    events = pl.DataFrame(
        {
            "user_id": ["warmup", "warmup"],
            "timestamp": ["2025-01-01T10:00:00", "2025-01-08T10:00:00"],
            "event_type": ["purchase", "search"],
            "item_name": ["green tea", None],
            "category": ["Grocery > Tea", None],
            "amount": [4.5, None],
            "text": [None, "organic tea"],
        }
    )
    return load_events(events)


def segment_table(model: Segmenter, folder: Path) -> list[dict[str, Any]]:
    """Ids, names, sizes and definitions: the run's ``segments.parquet`` beside ``model/``
    when present, else the ids and names the model holds."""
    table = folder.parent / "segments.parquet"
    if table.is_file():
        try:
            frame = pl.read_parquet(table)
        except Exception as exc:  # a damaged table costs the sizes, not the service
            logger.warning("could not read %s: %s", table, type(exc).__name__)
        else:
            return [_jsonable(row) for row in frame.to_dicts()]
    return [{"id": k, "name": v} for k, v in sorted(model.segment_names_.items())]


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, float) and value != value:
            value = None
        elif not isinstance(value, (str, int, float, bool, list, type(None))):
            value = str(value)
        out[key] = value
    return out


class ModelHolder:
    """Holds the serving model; :meth:`reload` swaps in a new folder only once it has loaded and
    placed a warm-up customer, so a bad folder leaves the old model serving.

    Parameters
    ----------
    folder : path
        The model folder to serve first.
    loader : callable, optional
        ``loader(folder) -> Segmenter``; default :meth:`Segmenter.load` on the CPU.
    """

    def __init__(self, folder: str | Path, *, loader: Loader | None = None) -> None:
        self.folder = Path(folder)
        self.loader = loader
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> LoadedModel | None:
        """The serving model, or ``None`` before the first load finished."""
        return self._current

    @property
    def ready(self) -> bool:
        return self._current is not None

    def load(self) -> LoadedModel:
        """Load :attr:`folder` (the first time); raises :class:`SegmenterError` when invalid."""
        return self.reload(self.folder)

    def reload(self, folder: str | Path | None = None) -> LoadedModel:
        """Load ``folder`` (default: the one serving), warm it, then swap it in.

        Raises
        ------
        SegmenterError
            The folder fails validation; the model serving before keeps serving.
        """
        target = Path(folder) if folder is not None else self.folder
        with self._lock:  # one reload at a time; requests keep reading the old model meanwhile
            start = time.perf_counter()
            loaded = self._load(target)
            self._current, self.folder = loaded, target
            logger.info(
                "model %s serving (loaded and warmed in %.1f s)",
                target,
                time.perf_counter() - start,
            )
            return loaded

    def _load(self, folder: Path) -> LoadedModel:
        if not folder.is_dir():
            raise SegmenterError(f"--model: '{folder}' is not a folder; expected a run's model/")
        if self.loader is not None:
            model = self.loader(folder)
        else:
            model = Segmenter.load(folder, device="cpu", progress=False)
        try:
            placed = model.predict(warmup_events(), map_coords=False)
        except SegmenterError:
            raise
        except Exception as exc:
            raise SegmenterError(
                f"--model: '{folder}' loaded but could not place a customer "
                f"({type(exc).__name__}: {str(exc)[:200]}); re-fit the model"
            ) from None
        if placed.height != 1:
            raise SegmenterError(f"--model: '{folder}' placed {placed.height} rows for 1 customer")
        return LoadedModel(model, folder, time.time(), segment_table(model, folder))
