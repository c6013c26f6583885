"""Output locations: checked before any work, claimed by one run at a time, never an input.

A run writes a folder (``discover --out``) or a file (``assign --out``). Before any work starts,
:func:`claim` checks that the location

* is not, does not contain and does not lie inside any input file or folder;
* has no file among its parents, and its nearest existing parent is writable;
* is empty or absent, or, with ``force``, is something the tool itself wrote (a run folder
  holding ``run.json`` and ``model/``; a parquet file of assignments);

then takes a lock file ``.NAME.lock`` next to it (a second run on the same location gets a
one-line error while the first runs) and removes the temporary ``.NAME.*.tmp`` siblings that
a killed run left behind. Every refusal is a :class:`~segmenter.errors.SegmenterError`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from segmenter.errors import SegmenterError

logger = logging.getLogger(__name__)

Kind = Literal["run", "assignments", "classifier", "predictions"]
#: What marks a folder as one the tool wrote (``--force`` replaces nothing else).
FOLDER_MARKERS: dict[str, tuple[str, ...]] = {
    "run": ("run.json", "model"),  # pipelines.discover
    "classifier": ("metrics.json", "classifier.json"),  # pipelines.classify train
}
#: Columns that mark a parquet file as one the tool wrote.
FILE_COLUMNS: dict[str, tuple[str, ...]] = {
    "assignments": ("user_id", "segment", "segment_name"),  # pipelines.assign
    "predictions": ("user_id", "label", "probability"),  # pipelines.classify predict
}


def resolved(path: str | os.PathLike[str]) -> Path:
    return Path(path).expanduser().resolve()


def _related(out: Path, other: Path, *, inside: bool = True) -> str | None:
    """How ``out`` and an input relate, or None when they are apart (or, without ``inside``,
    when ``out`` merely lies inside it)."""
    if out == other:
        return "is"
    if other.is_relative_to(out):
        return "contains"
    if inside and out.is_relative_to(other):
        return "is inside"
    return None


def check_location(
    out: str | os.PathLike[str],
    *,
    option: str,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    kind: Kind = "run",
    force: bool = False,
    models: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """Raise :class:`SegmenterError` unless ``out`` may be written; return it resolved.

    ``out`` may not be, contain or lie inside an input (a new file in a folder of parquet
    shards would change the input); it may lie inside one of ``models`` (a model folder), but
    not be or contain it.
    """
    given = Path(out)
    path = resolved(given)
    for above in (path.parent, *path.parent.parents):
        if above.exists() and not above.is_dir():
            raise SegmenterError(f"{option}: '{given}' is under '{above}', which is a file")
    sources = [(s, True) for s in inputs if s is not None] + [(m, False) for m in models]
    for source, inside in sources:
        relation = _related(path, resolved(source), inside=inside)
        if relation is not None:
            raise SegmenterError(
                f"{option}: '{given}' {relation} the input '{source}'; the input is never "
                f"written over, choose another {option}"
            )
    cwd = Path.cwd().resolve()
    if kind in FOLDER_MARKERS and cwd.is_relative_to(path):
        raise SegmenterError(
            f"{option}: '{given}' is the current folder or one of its parents; name a new folder"
        )
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SegmenterError(
            f"{option}: cannot write under '{parent}' (read-only or no permission)"
        )
    if path.exists() or path.is_symlink():
        _check_existing(given, path, option=option, kind=kind, force=force)
    return path


def _check_existing(given: Path, path: Path, *, option: str, kind: Kind, force: bool) -> None:
    if kind in FOLDER_MARKERS:
        if not path.is_dir():
            raise SegmenterError(f"{option}: '{given}' exists and is a file; expected a folder")
        if not any(path.iterdir()):
            return
        if not force:
            raise SegmenterError(
                f"{option}: '{given}' exists and is not empty; pass --force to replace it"
            )
        markers = FOLDER_MARKERS[kind]
        if not all((path / marker).exists() for marker in markers):
            what = "a run folder" if kind == "run" else "a classifier folder"
            raise SegmenterError(
                f"{option}: '{given}' is not {what} (no {' and '.join(markers)}); --force only "
                f"replaces a folder this tool wrote"
            )
        return
    if path.is_dir():
        raise SegmenterError(f"{option}: '{given}' is a folder; expected a .parquet file name")
    if not force:
        raise SegmenterError(f"{option}: '{given}' exists; pass --force to overwrite it")
    import polars as pl

    try:
        columns = set(pl.read_parquet_schema(path))
    except Exception:  # any unreadable file: not ours
        columns = set()
    if not set(FILE_COLUMNS[kind]) <= columns:
        raise SegmenterError(
            f"{option}: '{given}' is not {kind} written by this tool (no columns "
            f"{list(FILE_COLUMNS[kind])}); --force only overwrites those"
        )


def check_cache(cache: str | os.PathLike[str] | None, *, option: str = "--cache") -> None:
    """A cache folder must be a folder we can write in (or create)."""
    if cache is None:
        return
    path = resolved(cache)
    if path.exists() and not path.is_dir():
        raise SegmenterError(f"{option}: '{cache}' is a file; expected a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise SegmenterError(f"{option}: '{cache}' is under '{existing}', which is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SegmenterError(
            f"{option}: cannot write in '{existing}' (read-only or no permission); choose a "
            f"writable folder or pass --no-cache"
        )


def lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _take_lock(path: Path, option: str) -> Path:
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid = int(lock.read_text(encoding="utf-8").strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and pid != os.getpid() and _alive(pid):
                raise SegmenterError(
                    f"{option}: '{path}' is being written by another run (pid {pid}); wait for "
                    f"it to finish or choose another {option}"
                ) from None
            logger.info("removing stale lock %s (pid %s is gone)", lock, pid)
            lock.unlink(missing_ok=True)
            continue
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise SegmenterError(
                f"{option}: cannot write under '{path.parent}' ({reason})"
            ) from None
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()}\n")
        return lock
    raise SegmenterError(f"{option}: could not lock '{path}'; remove '{lock}' if no run is active")


def remove_stale(path: Path) -> int:
    """Remove ``.NAME.XXXXXXXX.tmp`` and ``.NAME.old-PID`` siblings left by killed runs.

    Called with the lock held, so no live run of this name owns them.
    """
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(?:[a-z0-9_]{{8}}\.tmp|old-\d+)$")
    removed = 0
    if not path.parent.is_dir():
        return 0
    for entry in path.parent.iterdir():
        if not pattern.match(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    if removed:
        logger.warning(
            "removed %d temporary leftover(s) of an interrupted run next to %s", removed, path
        )
    return removed


@contextlib.contextmanager
def claim(
    out: str | os.PathLike[str],
    *,
    option: str = "--out",
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    kind: Kind = "run",
    force: bool = False,
    models: Iterable[str | os.PathLike[str]] = (),
) -> Iterator[Path]:
    """Check ``out``, lock it for this run, clear stale temporaries; release the lock after."""
    inputs, models = list(inputs), list(models)
    path = check_location(out, option=option, inputs=inputs, kind=kind, force=force, models=models)
    lock = _take_lock(path, option)
    try:
        # checked again under the lock: another run may have finished writing it meanwhile
        check_location(out, option=option, inputs=inputs, kind=kind, force=force, models=models)
        remove_stale(path)
        yield path
    finally:
        lock.unlink(missing_ok=True)
