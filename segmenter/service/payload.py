"""Request bodies of ``POST /v1/assign`` checked against the events contract.

Every problem is a :class:`PayloadError` naming the field (``events[3].amount``), the value and
what is allowed; the service answers it with 422, never 500.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import polars as pl

from segmenter.data import CANONICAL, NUMERIC, EventData, load_events
from segmenter.errors import SegmenterError

#: longest string value accepted in any event field (a review text is well below)
MAX_STRING = 10_000


class PayloadError(ValueError):
    """A client's body that breaks the contract; ``status`` is the HTTP answer (400 or 422)."""

    def __init__(
        self, message: str, *, field: str | None = None, value: Any = None, status: int = 422
    ) -> None:
        super().__init__(message)
        self.field = field
        self.value = value
        self.status = status

    def body(self) -> dict[str, Any]:
        shown = self.value
        if not isinstance(shown, (int, float, bool, type(None))) or (
            isinstance(shown, float) and not math.isfinite(shown)
        ):
            shown = str(shown)
        if isinstance(shown, str) and len(shown) > 80:
            shown = shown[:77] + "..."
        return {"error": {"message": str(self), "field": self.field, "value": shown}}


def parse_json(raw: bytes) -> Any:
    """The body as JSON; a body that is not UTF-8 JSON, or nests absurdly, is a 400."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = type(exc).__name__ if isinstance(exc, RecursionError) else str(exc)[:120]
        raise PayloadError(
            f"body is not valid UTF-8 JSON: {reason}",
            field="body",
            value=raw[:40].decode("utf-8", "replace"),
            status=400,
        ) from None


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def parse_assign(body: Any, *, max_customers: int, max_events: int) -> EventData:
    """``{"events": [{user_id, timestamp, ...}, ...]}`` -> validated :class:`EventData`.

    Parameters
    ----------
    body : object
        The decoded JSON body.
    max_customers, max_events : int
        Limits of one request; more is a :class:`PayloadError` with status 413.
    """
    if not isinstance(body, Mapping):
        raise PayloadError(
            "body must be a JSON object with an 'events' list",
            field="body",
            value=type(body).__name__,
        )
    events = body.get("events")
    if not isinstance(events, list) or not events:
        raise PayloadError(
            "'events' must be a non-empty list of event objects",
            field="events",
            value=type(events).__name__ if not isinstance(events, list) else "[]",
        )
    if len(events) > max_events:
        raise PayloadError(
            f"too many events: {len(events)}; at most {max_events} per request",
            field="events",
            value=len(events),
            status=413,
        )
    columns: dict[str, list[Any]] = {c: [] for c in CANONICAL}
    for i, event in enumerate(events):
        if not isinstance(event, Mapping):
            raise PayloadError(
                "each event must be a JSON object", field=f"events[{i}]", value=type(event).__name__
            )
        for column in CANONICAL:
            columns[column].append(_field(event.get(column), f"events[{i}].{column}", column))
    frame = pl.DataFrame(
        {
            c: pl.Series(c, v, dtype=pl.Float64 if c in NUMERIC else pl.String)
            for c, v in columns.items()
        }
    )
    n_customers = frame["user_id"].n_unique()
    if n_customers > max_customers:
        raise PayloadError(
            f"too many customers: {n_customers}; at most {max_customers} per request",
            field="events",
            value=n_customers,
            status=413,
        )
    try:
        return load_events(frame)
    except SegmenterError as exc:
        raise PayloadError(str(exc), field=_field_of(str(exc)), value=None) from None


def _field(value: Any, name: str, column: str) -> Any:
    required = column in ("user_id", "timestamp")
    if value is None:
        if required:
            raise PayloadError(f"{name} is required", field=name, value=None)
        return None
    if column in NUMERIC:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PayloadError(f"{name} must be a number or null", field=name, value=value)
        if not math.isfinite(value) or abs(value) > 1e15:
            raise PayloadError(
                f"{name} must be a finite number below 1e15", field=name, value=value
            )
        return float(value)
    if column == "user_id" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise PayloadError(f"{name} must be a string", field=name, value=value)
    if len(value) > MAX_STRING:
        raise PayloadError(
            f"{name} is longer than {MAX_STRING} characters", field=name, value=value
        )
    return value


def _field_of(message: str) -> str | None:
    """``events[ROW].COLUMN`` from a :func:`load_events` message (the row it names, if any)."""
    column = next((c for c in CANONICAL if f"'{c}'" in message), None)
    row = re.search(r"\brow (\d+)", message)
    if column is None or row is None:
        return column
    return f"events[{row.group(1)}].{column}"
