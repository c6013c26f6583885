"""Data sanity: what loads cleanly but would make the segments mislead, said out loud.

Each finding is a warning in the log, in ``run.json`` (``data.warnings``) and in the report:

* events dated after the run date (or ``--as-of``) are left out, so that one mistyped date
  (9999-12-31) cannot move "as of" for every customer;
* exact duplicate rows are counted (they add to spend twice); ``--dedupe`` drops them;
* customers without a single purchase are counted (their segments are named "No purchases").

Degenerate data, fewer customers with distinct histories than segments asked for, is an error
(:func:`check_segmentable`): k segments of identical customers would be k names for one group.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timezone

import polars as pl

from segmenter.data import EventData
from segmenter.errors import SegmenterError

logger = logging.getLogger(__name__)


def run_date() -> datetime:
    """Now, in UTC, without a time zone (the events' timestamps are naive)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def parse_as_of(value: str) -> datetime:
    """``--as-of``: an ISO-8601 date or datetime."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise SegmenterError(
            f"--as-of: '{value}' is not an ISO-8601 date such as 2011-12-31"
        ) from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


def check_events(
    data: EventData, *, as_of: datetime | None = None, dedupe: bool = False
) -> EventData:
    """``data`` without events after ``as_of`` (default: now) and, with ``dedupe``, without
    exact duplicate rows; every finding added to ``warnings`` and logged."""
    events, warnings, dropped = data.events, list(data.warnings), dict(data.dropped)
    cut = as_of or run_date()
    late = events["timestamp"] > cut
    n_late = int(late.sum())
    if n_late:
        if n_late == events.height:
            raise SegmenterError(
                f"every event is dated after {cut:%Y-%m-%d %H:%M} (the "
                f"{'--as-of date' if as_of else 'run date'}); pass --as-of with a later date"
            )
        latest = str(events["timestamp"].filter(late).max())
        warnings.append(
            f"{n_late} events dated after {cut:%Y-%m-%d} (latest {latest}) were left out; "
            f"pass --as-of to choose the date the data is seen from"
        )
        dropped["dated after as-of"] = n_late
        events = events.filter(~late)
    n_dup = events.height - events.unique(maintain_order=True).height
    if n_dup:
        if dedupe:
            events = events.unique(maintain_order=True)
            dropped["exact duplicate rows (--dedupe)"] = n_dup
            warnings.append(f"{n_dup} exact duplicate rows were dropped (--dedupe)")
        else:
            warnings.append(
                f"{n_dup} rows are exact duplicates of another row and count twice in spend "
                f"and orders; pass --dedupe to drop them"
            )
    buyers = events.filter(pl.col("event_type") == "purchase")["user_id"].n_unique()
    n_none = int(events["user_id"].n_unique()) - int(buyers)
    if n_none:
        warnings.append(
            f"{n_none} customers have no purchases (only views, searches, reviews or returns)"
        )
    for message in warnings[len(data.warnings) :]:
        logger.warning("%s", message)
    return dataclasses.replace(data, events=events, warnings=warnings, dropped=dropped)


def distinct_histories(events: pl.DataFrame) -> int:
    """How many customers differ in something other than their id."""
    rows = events.drop("user_id").hash_rows(seed=0)
    per_user = (
        pl.DataFrame({"user_id": events["user_id"], "h": rows})
        .group_by("user_id")
        .agg(pl.col("h").sort())
    )
    return int(per_user["h"].n_unique())


def check_segmentable(data: EventData, k: int | str, k_range: tuple[int, int]) -> None:
    """Raise :class:`SegmenterError` when the customers cannot make ``k`` segments."""
    n = data.n_users
    want = k_range[0] if k == "auto" else int(k)
    option = "--k-range" if k == "auto" else "--k"
    if n <= want:
        raise SegmenterError(
            f"{option}: {want} segments need more than {want} customers; the input has {n}"
        )
    distinct = distinct_histories(data.events)
    if distinct == 1:
        raise SegmenterError(
            f"all {n} customers have identical events (apart from their ids); there is "
            f"nothing to segment"
        )
    if distinct < want:
        raise SegmenterError(
            f"{option}: {want} segments asked for, but only {distinct} of the {n} customers "
            f"have distinct histories; use --k {distinct} or fewer"
        )
