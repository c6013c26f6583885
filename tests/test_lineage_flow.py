"""Segments over time with the real encoder: an evolving synthetic shop through the Python API
and the command lines (discover --previous, drift, refresh)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from pipelines import drift, refresh
from pipelines._cli import run_cli
from segmenter.config import SegmenterConfig
from segmenter.data import EventData, load_events
from segmenter.embed import EmbeddingCache
from segmenter.errors import SegmenterError
from segmenter.evolving import Period, evolve, same_distribution
from segmenter.lineage import carry_forward
from segmenter.lineage.drift import check_drift
from segmenter.model import Segmenter
from segmenter.runfolder import write_run

ROOT = Path(__file__).resolve().parents[1]
N = 200


@pytest.fixture(scope="module")
def shop() -> list[Period]:
    return evolve(N, periods=3, seed=1)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, shop: list[Period]) -> Path:
    root = tmp_path_factory.mktemp("lineage")
    for p in shop:
        p.tables["events"].write_parquet(root / f"events{p.index}.parquet")
        p.tables["users"].write_parquet(root / f"users{p.index}.parquet")
    same = same_distribution(N, seed=1)
    same["events"].write_parquet(root / "same.parquet")
    same["users"].write_parquet(root / "same_users.parquet")
    (root / "cache").mkdir()
    return root


def _data(shop: list[Period], i: int) -> EventData:
    return load_events(shop[i].tables["events"], users=shop[i].tables["users"])


@pytest.fixture(scope="module")
def first_run(shop: list[Period], workdir: Path) -> tuple[Segmenter, Path]:
    """Period 0 fitted and written as a run folder (the previous run of the others)."""
    data = _data(shop, 0)
    model = Segmenter(
        SegmenterConfig(k=7, seed=0), cache=EmbeddingCache(workdir / "cache"), progress=False
    ).fit(data)
    lineage = carry_forward(model, data, None)
    out = workdir / "run0"
    write_run(model, data, out, report=False, tables=lineage.tables(),
              extra={"lineage": lineage.summary})  # fmt: skip
    return model, out


def _cli(args: list[str], workdir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEGMENTER_CACHE": str(workdir / "cache"), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600, check=False)  # fmt: skip


def test_drift_is_stable_on_the_same_distribution_and_drifting_on_a_changed_period(
    first_run: tuple[Segmenter, Path], shop: list[Period], workdir: Path
) -> None:
    model, _ = first_run
    same = same_distribution(N, seed=1)
    stable = check_drift(model, load_events(same["events"], users=same["users"]),
                         previous=model.assignments_)  # fmt: skip
    assert stable.verdict == "stable", stable.reasons
    assert stable.moved_share is not None and stable.moved_share < 0.08
    changed = check_drift(model, _data(shop, 2), previous=model.assignments_)
    assert changed.verdict == "drifting"
    assert any("segment shares moved" in r or "changed segment" in r for r in changed.reasons)


def test_saved_model_keeps_ids_and_reference_and_old_folders_still_load(
    first_run: tuple[Segmenter, Path], shop: list[Period], tmp_path: Path
) -> None:
    model, run = first_run
    loaded = Segmenter.load(run / "model", encoder=model.encoder, progress=False)
    assert loaded.segment_ids_ is not None and loaded.reference_ is not None
    assert loaded.segment_ids_.ids_.tolist() == model.segment_ids_.ids_.tolist()  # type: ignore[union-attr]
    # a folder saved before lineage: no segment_ids / reference stages
    old = tmp_path / "old"
    old.mkdir()
    for f in (run / "model").iterdir():
        if not f.name.startswith(("segment_ids.", "reference.")):
            (old / f.name).write_bytes(f.read_bytes())
    state = json.loads((old / "segmenter.json").read_text())
    del state["stages"]["segment_ids"], state["stages"]["reference"]
    (old / "segmenter.json").write_text(json.dumps(state))
    legacy = Segmenter.load(old, encoder=model.encoder, progress=False)
    assert legacy.segment_ids_ is None
    placed = legacy.predict(_data(shop, 0), map_coords=False)
    assert placed["segment"].to_list() == model.assignments_["segment"].to_list()
    with pytest.raises(SegmenterError, match="no drift reference"):
        check_drift(legacy, _data(shop, 0))


def test_drift_cli_exit_codes(first_run: tuple[Segmenter, Path], workdir: Path) -> None:
    _, run = first_run
    base = ["--model", str(run / "model"), "--cache", str(workdir / "cache"), "--quiet"]
    same = [
        "--input",
        str(workdir / "same.parquet"),
        "--users",
        str(workdir / "same_users.parquet"),
    ]
    assert run_cli(drift.build_parser(), drift.main, [*base, *same]) == 0
    out = workdir / "drift.json"
    changed = ["--input", str(workdir / "events2.parquet"), "--json", str(out)]
    assert run_cli(drift.build_parser(), drift.main, [*base, *changed]) == drift.DRIFTING
    assert json.loads(out.read_text())["verdict"] == "drifting"
    assert run_cli(drift.build_parser(), drift.main, [*base, *same[:2], "--json", "x.txt"]) == 2


def test_drift_json_never_writes_into_the_run_it_reads(
    first_run: tuple[Segmenter, Path], workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, run = first_run
    base = ["--model", str(run / "model"), "--cache", str(workdir / "cache"), "--quiet",
            "--input", str(workdir / "same.parquet")]  # fmt: skip
    for target in (run / "run.json", run / "model" / "segmenter.json"):
        before = target.read_bytes()
        assert run_cli(drift.build_parser(), drift.main, [*base, "--json", str(target)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--json" in err[0] and "never written over" in err[0]
        assert target.read_bytes() == before


def test_refresh_skips_a_stable_period_and_refits_a_changed_one(
    first_run: tuple[Segmenter, Path], workdir: Path
) -> None:
    _, run = first_run
    out = workdir / "refreshed"
    base = ["--previous", str(run), "--out", str(out), "--cache", str(workdir / "cache"),
            "--quiet", "--no-report"]  # fmt: skip
    stable = [
        "--input",
        str(workdir / "same.parquet"),
        "--users",
        str(workdir / "same_users.parquet"),
    ]
    assert run_cli(refresh.build_parser(), refresh.main, [*base, *stable]) == 0
    assert not out.exists()
    assert run_cli(refresh.build_parser(), refresh.main,
                   [*base, "--input", str(workdir / "events2.parquet")]) == 0  # fmt: skip
    meta = json.loads((out / "run.json").read_text())
    assert meta["lineage"]["drift"]["verdict"] == "drifting"
    assert meta["lineage"]["retired"] and meta["lineage"]["new"]  # a segment left, one came
    assert (out / "migrations.parquet").is_file()


@pytest.mark.slow
def test_discover_previous_keeps_ids_and_writes_migrations_and_history(
    first_run: tuple[Segmenter, Path], shop: list[Period], workdir: Path
) -> None:
    model, run = first_run
    out = workdir / "run1"
    proc = _cli(["pipelines.discover", "--input", str(workdir / "events1.parquet"), "--users",
                 str(workdir / "users1.parquet"), "--k", "7", "--out", str(out), "--quiet",
                 "--previous", str(run)], workdir)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((out / "run.json").read_text())["lineage"]
    assert meta["kept"] == 7 and meta["new"] == [] and meta["retired"] == []
    moves = pl.read_parquet(out / "migrations.parquet")
    before, after = model.assignments_["user_id"], pl.read_parquet(out / "assignments.parquet")
    assert int(moves["customers"].sum()) == len(set(before) | set(after["user_id"]))
    assert {"previous_segment", "segment_since"} <= set(after.columns)
    # the planted movers sit mostly off the diagonal, the others on it
    truth = shop[1].truth
    joined = after.join(truth, on="user_id")
    movers = joined.filter(pl.col("moved"))
    assert (movers["segment"] != movers["previous_segment"]).mean() >= 0.8
    stayed = joined.filter(~pl.col("moved") & pl.col("previous_segment").is_not_null())
    assert (stayed["segment"] == stayed["previous_segment"]).mean() >= 0.9
    history = pl.read_parquet(out / "history.parquet")
    assert history["run"].n_unique() == 2 and history.height == 14
    assert "since-previous" in (out / "report.html").read_text()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root / "missing", "--previous: '.*missing' is not a folder"),
        (lambda root: root / "run0" / "model", "is not a run folder .*model folder"),
    ],
)
def test_discover_previous_bad_folder_is_one_line_exit_2(
    first_run: tuple[Segmenter, Path], workdir: Path, make: object, message: str
) -> None:
    import re

    bad = make(workdir)  # type: ignore[operator]
    args = ["pipelines.discover", "--input", str(workdir / "events1.parquet"), "--k", "7",
            "--out", str(workdir / "never"), "--previous", str(bad), "--quiet"]  # fmt: skip
    proc = _cli(args, workdir)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and re.search(message, proc.stderr)
    assert not (workdir / "never").exists()
