"""The command-line entry points as a user runs them: run folder, assign, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from segmenter.synthetic import generate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    tables = generate(240, seed=5)
    for name, frame in tables.items():
        frame.write_parquet(root / f"{name}.parquet")
    (root / "cache").mkdir()
    return root


def run(args: list[str], workdir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEGMENTER_CACHE": str(workdir / "cache"), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def run_dir(workdir: Path) -> Path:
    out = workdir / "run"
    proc = run(
        ["pipelines.discover", "--input", str(workdir / "events.parquet"), "--users",
         str(workdir / "users.parquet"), "--k", "6", "--out", str(out), "--quiet"],
        workdir,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "6 segments of 240 customers" in proc.stdout
    return out


@pytest.mark.slow
def test_discover_writes_the_whole_run_folder(run_dir: Path, workdir: Path) -> None:
    names = {p.name for p in run_dir.iterdir()}
    expected = {"assignments.parquet", "segments.parquet", "run.json", "report.html", "model"}
    assert expected <= names
    assert not [n for n in names if n.endswith(".tmp") or n.startswith(".")]
    assignments = pl.read_parquet(run_dir / "assignments.parquet")
    assert assignments.height == 240
    segments = pl.read_parquet(run_dir / "segments.parquet")
    assert segments["size"].sum() == 240
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["seed"] == 0 and meta["config"]["k"] == 6
    assert meta["data"]["customers"] == 240
    assert len(meta["data"]["fingerprint"]) == 64
    assert {"embed", "reduce", "cluster"} <= set(meta["timings_s"])
    assert "silhouette" in meta["quality"] and "davies_bouldin" in meta["quality"]
    assert meta["versions"]["torch"] and meta["peak_rss_mb"] > 0


@pytest.mark.slow
def test_non_empty_out_needs_force(run_dir: Path, workdir: Path) -> None:
    before = (run_dir / "run.json").read_bytes()
    proc = run(["pipelines.discover", "--input", str(workdir / "events.parquet"), "--k", "6",
                "--out", str(run_dir)], workdir)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "exists and is not empty; pass --force" in proc.stderr
    assert (run_dir / "run.json").read_bytes() == before


@pytest.mark.slow
def test_assign_reproduces_training_segments(run_dir: Path, workdir: Path) -> None:
    out = workdir / "assigned.parquet"
    proc = run(
        ["pipelines.assign", "--model", str(run_dir / "model"), "--input",
         str(workdir / "events.parquet"), "--users", str(workdir / "users.parquet"),
         "--out", str(out), "--quiet"],
        workdir,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assigned = pl.read_parquet(out)
    train = pl.read_parquet(run_dir / "assignments.parquet")
    joined = train.join(assigned, on="user_id", suffix="_new")
    assert joined.height == 240
    assert (joined["segment"] == joined["segment_new"]).mean() >= 0.99


def _write_bad_csv(workdir: Path) -> Path:
    path = workdir / "bad.csv"
    path.write_text("customer,when\nu1,2024-01-01\nu2,not a date\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--k", "1"], "--k: '1' should be an integer >= 2 or 'auto'"),
        (["--feature-weight", "-2"], "--feature-weight: -2.0 should be >= 0"),
        (["--input", "nope.parquet"], "input 'nope.parquet' does not exist"),
        (["--input", "BAD"], "missing required column 'user_id'; columns present: [customer, wh"),
        (["--input", "BAD", "--columns", "user_id=customer,timestamp=when"],
         "column 'timestamp': cannot parse 'not a date' (row 1)"),
        (["--input", "BAD", "--columns", "user_id=client"], "mapped to 'client', which is not"),
        (["--preset", "shopify"], "--preset: unknown preset 'shopify'"),
        (["--assign-outliers"], "--assign-outliers only applies to --method hdbscan"),
        (["--deep", "--deep-steps", "0"], "--deep-steps: 0 should be an integer >= 1"),
        (["--deep-lora"], "--deep-lora needs --deep"),
        (["--deep", "--deep-keep-behaviour", "2"], "--deep-keep-behaviour: 2.0 should be in [0,"),
    ],
)  # fmt: skip
def test_bad_arguments_give_one_line_and_exit_2(
    extra: list[str], message: str, workdir: Path
) -> None:
    bad = _write_bad_csv(workdir)
    before = bad.read_bytes()
    extra = [str(bad) if a == "BAD" else a for a in extra]
    out = workdir / "never"
    proc = run(["pipelines.discover", "--out", str(out), *extra], workdir)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert message in lines[0]
    assert not out.exists()
    assert bad.read_bytes() == before


def test_unknown_method_is_rejected_by_the_parser(workdir: Path) -> None:
    proc = run(["pipelines.discover", "--method", "dbscan"], workdir)
    assert proc.returncode == 2
    assert "invalid choice: 'dbscan'" in proc.stderr


def test_assign_refuses_a_folder_that_is_not_a_model(workdir: Path) -> None:
    events, out = str(workdir / "events.parquet"), str(workdir / "x.parquet")
    proc = run(
        ["pipelines.assign", "--model", str(workdir), "--input", events, "--out", out], workdir
    )
    assert proc.returncode == 2
    assert "is not a segmenter model" in proc.stderr
    assert not (workdir / "x.parquet").exists()


def test_commands_set_passive_openmp_threads_unless_the_caller_chose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipelines._cli import passive_threads

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    passive_threads()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    passive_threads()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


@pytest.mark.parametrize("command", ["discover", "assign"])
def test_engine_ray_without_the_ray_package_is_one_line_exit_2(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What a user of the plain install (no ``[ray]`` extra) sees: the missing package named
    with its install command, never a traceback, and no output."""
    import importlib

    from pipelines._cli import run_cli

    for name in [
        m for m in sys.modules if m == "ray" or m.startswith(("ray.", "segmenter.engines.ray"))
    ]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    import segmenter.engines

    # an earlier import leaves the submodule on its package: `from ... import` would find it
    monkeypatch.delattr(segmenter.engines, "ray_engine", raising=False)
    cli = importlib.import_module(f"pipelines.{command}")
    out = tmp_path / ("out.parquet" if command == "assign" else "out")
    argv = ["--engine", "ray", "--out", str(out), "--quiet"]
    if command == "assign":
        argv += ["--model", str(tmp_path / "model")]
    code = run_cli(cli.build_parser(), cli.main, argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "the 'ray' package is not installed; pip install -e '.[ray]'" in err[0]
    assert not out.exists()
