"""Shared fixtures for the whole test suite (keep these names stable; other test files use them).

Paths
-----
``repo_root`` : Path
    The project root (the folder holding ``pyproject.toml``).
``shared_data`` : Path
    ``<repo_root>/../shared/data``, where the real public data sets live on development and CI
    machines (never copied into the repository). It may not exist.
``require_shared`` : callable ``(relative_path: str) -> Path``
    Returns ``shared_data / relative_path`` when that file or folder exists, otherwise calls
    ``pytest.skip`` with a message naming the missing path, e.g.
    ``path = require_shared("online_retail/online_retail.csv.gz")``.
    The plain function :func:`require_shared_file` does the same outside a fixture.

Synthetic data (session-scoped, built once)
-------------------------------------------
``small_tables`` : dict of str to polars.DataFrame
    ``segmenter.synthetic.generate(400, seed=3)``: keys ``events``, ``users``, ``items``,
    ``labels``. Treat as read-only (polars frames are immutable; do not rebind columns in place).
``small_events_path`` : Path
    A session temporary folder holding ``events.parquet``, ``users.parquet``,
    ``items.parquet`` and ``labels.parquet`` written from ``small_tables``; pass
    ``small_events_path / "events.parquet"`` wherever a file path is expected.
``small_data`` : segmenter.data.EventData
    ``load_events(small_tables["events"], users=small_tables["users"])``.
``small_features`` : polars.DataFrame
    ``segmenter.features.behaviour(small_data.events)``: one row per customer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from segmenter.data import EventData, load_events
from segmenter.features import behaviour
from segmenter.synthetic import generate

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def require_shared_file(relative_path: str) -> Path:
    """``SHARED_DATA / relative_path``, or skip the calling test naming the missing path."""
    path = SHARED_DATA / relative_path
    if not path.exists():
        pytest.skip(
            f"shared data file {relative_path!r} is missing (looked for {path}); these tests "
            f"read the real data sets from ../shared/data next to the project root"
        )
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED_DATA


@pytest.fixture(scope="session")
def require_shared() -> Callable[[str], Path]:
    return require_shared_file


@pytest.fixture(scope="session")
def small_tables() -> dict[str, pl.DataFrame]:
    return generate(400, seed=3)


@pytest.fixture(scope="session")
def small_events_path(
    small_tables: dict[str, pl.DataFrame], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    folder = tmp_path_factory.mktemp("small_events")
    for name in ("events", "users", "items", "labels"):
        small_tables[name].write_parquet(folder / f"{name}.parquet")
    return folder


@pytest.fixture(scope="session")
def small_data(small_tables: dict[str, pl.DataFrame]) -> EventData:
    return load_events(small_tables["events"], users=small_tables["users"])


@pytest.fixture(scope="session")
def small_features(small_data: EventData) -> pl.DataFrame:
    return behaviour(small_data.events)
