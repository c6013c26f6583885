"""Atomic writes: all or nothing, and files others can read like any file the user writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from segmenter.io import atomic_dir, atomic_path, write_text


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture()
def umask_022() -> object:
    before = os.umask(0o022)
    yield
    os.umask(before)


def test_atomic_dir_gets_the_umask_permissions(tmp_path: Path, umask_022: object) -> None:
    with atomic_dir(tmp_path / "run") as tmp:
        (tmp / "model").mkdir()
        write_text("x", tmp / "a.txt")
    assert _mode(tmp_path / "run") == 0o755
    assert _mode(tmp_path / "run" / "a.txt") == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_failed_block_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), atomic_dir(tmp_path / "run") as tmp:
        write_text("partial", tmp / "a.txt")
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(tmp_path / "f.txt") as t:
        t.write_text("partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_non_empty_folder_is_replaced_only_with_force(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(FileExistsError, match="run"), atomic_dir(out) as tmp:
        write_text("new", tmp / "new.txt")
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    with atomic_dir(out, force=True) as tmp:
        write_text("new", tmp / "new.txt")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
