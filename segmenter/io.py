"""File-system side effects: atomic writes of run-folder files and folders."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def is_table(path: str | os.PathLike[str]) -> bool:
    """A file, or a folder of parquet shards (the Ray engine's ``assignments.parquet``:
    polars, pyarrow, pandas and DuckDB read a folder of shards as one table)."""
    path = Path(path)
    return path.is_file() or (path.is_dir() and any(path.glob("*.parquet")))


def write_parquet(frame: pl.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a parquet file atomically."""
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp)


def write_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write pretty JSON atomically (NaN becomes null)."""
    text = json.dumps(_jsonable(obj), indent=2, ensure_ascii=False, sort_keys=False)
    write_text(text + "\n", path)


def write_text(text: str, path: str | os.PathLike[str]) -> None:
    """Write UTF-8 text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _jsonable(obj: Any) -> Any:
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Build a folder in a temporary sibling and move it into place when the block succeeds.

    An existing non-empty ``path`` is replaced only with ``force``; the caller checks that
    first so that the error comes before any work is done.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; a run folder is not
        if target.exists():
            if not force and any(target.iterdir()):
                raise FileExistsError(str(target))
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
