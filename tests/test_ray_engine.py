"""The Ray engine on a local Ray instance started here (``ray.init(num_cpus=2)``, stopped at the
end): the same segments as the local engine, customers split across shards, a worker killed
mid-embedding, and one-line errors. Skipped cleanly without the ``ray`` package."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from segmenter.config import SegmenterConfig
from segmenter.data import load_events
from segmenter.embed import EmbeddingCache
from segmenter.engines.partition import block_of, in_sample
from segmenter.errors import SegmenterError
from segmenter.model import Segmenter
from segmenter.runfolder import write_run
from segmenter.synthetic import generate

ray = pytest.importorskip("ray")
engine = pytest.importorskip("segmenter.engines.ray_engine")
pytestmark = pytest.mark.ray

N_CUSTOMERS = 160
CONFIG = SegmenterConfig(k=4, seed=5)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with engine.session(engine.RayOptions()):  # joins: leaves the instance running
            yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Events in 3 parquet shards, rows dealt round-robin: every customer is split across
    files."""
    tables = generate(N_CUSTOMERS, seed=11)
    root = tmp_path_factory.mktemp("shards")
    events = tables["events"].with_row_index("_i")
    for shard in range(3):
        part = events.filter(pl.col("_i") % 3 == shard).drop("_i")
        part.write_parquet(root / f"part-{shard}.parquet")
    tables["users"].write_parquet(root.parent / "users.parquet")
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> EmbeddingCache:
    return EmbeddingCache(tmp_path_factory.mktemp("cache"))


def _ray_run(
    shards: Path, cache: EmbeddingCache, options: object, out: Path
) -> tuple[Segmenter, Path]:
    """The Ray engine's run folder (report included) of the shards."""
    source = engine.Source(str(shards), users=str(shards.parent / "users.parquet"))
    run = engine.discover(CONFIG, source, options, cache=cache, root=str(cache.root),
                          progress=False)  # fmt: skip
    write_run(run.model, run.sample, out, assignments=run.write_assignments,
              extra={"engine": run.info})  # fmt: skip
    return run.model, out


def _ray_assignments(
    shards: Path, cache: EmbeddingCache, options: object, out: Path
) -> tuple[Segmenter, pl.DataFrame]:
    model, folder = _ray_run(shards, cache, options, out)
    assert (folder / "assignments.parquet").is_dir()  # shards, one per block at most
    files = list((folder / "assignments.parquet").glob("part-*.parquet"))
    assert 1 <= len(files) <= engine.RayOptions(blocks=2).n_blocks
    assert "Segments" in (folder / "report.html").read_text(encoding="utf-8")
    return model, pl.read_parquet(folder / "assignments.parquet")


@pytest.fixture(scope="module")
def local_assignments(shards: Path, tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """The local engine's segments, embedded apart from the Ray runs' cache."""
    data = load_events(shards, users=shards.parent / "users.parquet")
    own = EmbeddingCache(tmp_path_factory.mktemp("local-cache"))
    return Segmenter(CONFIG, cache=own, progress=False).fit(data).assignments_


def _agreement(a: pl.DataFrame, b: pl.DataFrame) -> float:
    both = a.select("user_id", "segment").join(
        b.select("user_id", pl.col("segment").alias("other")), on="user_id", how="inner"
    )
    assert both.height == a.height == b.height
    return float((both["segment"] == both["other"]).mean())  # type: ignore[arg-type]


def _kill_first(pattern: str, done: threading.Event, killed: list[int]) -> None:
    import psutil

    while not done.is_set() and not killed:
        for proc in psutil.process_iter(["pid", "cmdline"]):
            if pattern in " ".join(proc.info["cmdline"] or []):
                os.kill(proc.info["pid"], signal.SIGKILL)
                killed.append(proc.info["pid"])
                return
        time.sleep(0.05)


def test_ray_gives_the_local_engines_segments_despite_a_killed_worker(
    local_ray: None, shards: Path, cache: EmbeddingCache, local_assignments: pl.DataFrame,
    tmp_path: Path,
) -> None:  # fmt: skip
    """An encoder actor is killed as it starts embedding (the cache is empty): Ray restarts it
    and retries its batch, and the result is complete and the local engine's."""
    done, killed = threading.Event(), list[int]()
    killer = threading.Thread(target=_kill_first, args=("_Embedder", done, killed))
    killer.start()
    try:
        options = engine.RayOptions(actors=2, blocks=2)
        model, placed = _ray_assignments(shards, cache, options, tmp_path / "a")
    finally:
        done.set()
        killer.join()
    assert killed, "no embedding actor was seen to kill"
    assert placed["user_id"].n_unique() == placed.height == N_CUSTOMERS
    assert _agreement(local_assignments, placed) >= 0.995
    assert placed.columns == local_assignments.columns
    assert model.assignments_.height == N_CUSTOMERS  # fewer than --ray-fit-sample: all fitted


def test_a_sample_fit_places_every_customer(
    local_ray: None, shards: Path, cache: EmbeddingCache, tmp_path: Path
) -> None:
    options = engine.RayOptions(actors=1, fit_sample=N_CUSTOMERS * 2 // 3, blocks=2)
    model, placed = _ray_assignments(shards, cache, options, tmp_path / "a")
    assert sorted(placed["user_id"]) == sorted(load_events(shards).events["user_id"].unique())
    assert N_CUSTOMERS // 2 <= model.assignments_.height <= N_CUSTOMERS * 5 // 6  # seeded sample
    # recency is measured from the whole base's last event, not the sample's
    last = load_events(shards).events["timestamp"].max()
    assert model.recipe_.as_of_ == last
    # the sample keeps the fit's segments; the others are placed as Segmenter.predict places
    # new customers (the local engine's assign), block by block on the actors
    fitted = model.assignments_.select("user_id", "segment")
    assert _agreement(fitted, placed.join(fitted, on="user_id", how="semi")) == 1.0
    rest = load_events(shards, users=shards.parent / "users.parquet")
    rest.events = rest.events.join(fitted, on="user_id", how="anti")
    local = model.predict(rest)
    assert _agreement(local, placed.join(local, on="user_id", how="semi")) >= 0.995
    # the profiles are every customer's, not the sample's: sizes and mean spend per segment
    profiles = pl.read_parquet(tmp_path / "a" / "segments.parquet")
    everyone = model.recipe_.features(load_events(shards).events).join(
        placed.select("user_id", "segment"), on="user_id"
    )
    want = everyone.group_by("segment").agg(pl.len().alias("n"), pl.col("monetary").mean())
    got = profiles.select(pl.col("id").alias("segment"), pl.col("size").alias("n"),
                          pl.col("mean_monetary").alias("monetary"))  # fmt: skip
    assert_frame_equal(got.sort("segment"), want.sort("segment"), check_dtypes=False)
    assert profiles["size"].sum() == N_CUSTOMERS > model.assignments_.height


@pytest.mark.parametrize(
    ("actors", "per_actor", "threads"), [(1, None, 2), (2, None, 1), (1, 1, 1)]
)
def test_a_lone_actor_encodes_on_every_cpu(
    local_ray: None, actors: int, per_actor: int | None, threads: int
) -> None:
    """Ray gives an actor one CPU (and one OpenMP thread) unless told otherwise: one encoder
    actor on the 2-CPU instance must use both, as the local engine does."""

    class Threads:  # defined here: Ray's workers get it by value, not by module name
        """Actor: the torch threads it would encode with."""

        def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            import torch

            return {"threads": np.full(len(batch["x"]), torch.get_num_threads())}

    options = engine.RayOptions(actors=actors, cpus_per_actor=per_actor)
    assert engine.actor_cpus(options) == threads
    # blocks already in the object store, as the pipeline's are: with every CPU held by the
    # actor, a read task would have none left
    rows = ray.data.from_items([{"x": i} for i in range(4)]).materialize()
    seen = rows.map_batches(Threads, batch_size=2, **engine.actor_args(options))
    assert {row["threads"] for row in seen.take_all()} == {threads}


def test_bad_block_is_one_line_error(local_ray: None, tmp_path: Path) -> None:
    events = generate(30, seed=2)["events"].with_columns(
        pl.when(pl.col("user_id") == pl.col("user_id").first())
        .then(pl.lit("not a time"))
        .otherwise(pl.col("timestamp").cast(pl.String))
        .alias("timestamp")
    )
    events.write_parquet(tmp_path / "events.parquet")
    source = engine.Source(str(tmp_path / "events.parquet"))
    with pytest.raises(SegmenterError, match="timestamp") as err:
        engine.discover(CONFIG, source, engine.RayOptions(actors=1), cache=None,
                        root=str(tmp_path), progress=False)  # fmt: skip
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--engine", "ray", "--ray-address", "no such host"], "--ray-address: 'no such host'"),
        (["--engine", "ray", "--ray-address", "127.0.0.1:1"], "--ray-address: cannot connect"),
        (["--ray-actors", "3"], "--ray-actors needs --engine ray"),
        (["--engine", "ray", "--ray-actors", "0"], "--ray-actors: 0 should be >= 1"),
        (["--engine", "ray", "--ray-cpus-per-actor", "0"], "--ray-cpus-per-actor: 0 should be"),
        # what only the local engine carries out is refused, never silently skipped
        (
            ["--engine", "ray", "--input", "postgresql://u:secret@h/db", "--table", "events"],
            "--input: a database is not read by --engine ray yet",
        ),
        (["--engine", "ray", "--dedupe"], "--dedupe: not available with --engine ray yet"),
        (["--engine", "ray", "--as-of", "2024-01-01"], "--as-of: not available with --engine ray"),
        (["--engine", "ray", "--previous", "runs/x"], "--previous: not available with --engine"),
    ],
)
def test_bad_ray_options_exit_2_with_one_line(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.discover", "--k", "4", "--out", str(tmp_path / "o"),
         "--quiet", *flags],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "o").exists()


def test_a_retried_block_rewrites_its_own_shard(tmp_path: Path) -> None:
    """A shard is named by its customers: a block placed twice (Ray retried it) leaves one
    file; what a killed writer left beside the folder is swept; the shards join into one file
    with every customer once."""
    folder = tmp_path / "assignments.parquet"
    folder.mkdir()
    block = pl.DataFrame({"user_id": ["c", "a", "b"], "segment": [1, 0, 1]})
    other = pl.DataFrame({"user_id": ["d"], "segment": [2]})
    for frame in (block, other, block.reverse()):
        engine.write_shard(frame, folder)
    assert len(list(folder.iterdir())) == 2
    (tmp_path / ".part-0123.parquet.99.tmp").write_bytes(b"half a shard")
    engine.sweep(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["assignments.parquet"]
    assert pl.read_parquet(folder).sort("user_id")["user_id"].to_list() == ["a", "b", "c", "d"]
    engine.join_shards(folder, tmp_path / "one.parquet")
    assert pl.read_parquet(tmp_path / "one.parquet").height == 4
    # two other blocks whose ids, joined, would read the same: two shards
    for ids in (["a|b", "c"], ["a", "b|c"]):
        engine.write_shard(pl.DataFrame({"user_id": ids, "segment": [0, 0]}), folder)
    assert len(list(folder.iterdir())) == 4


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=40), st.integers(0, 99))
def test_a_customer_has_one_block_and_sample_membership(ids: list[str], seed: int) -> None:
    series = pl.Series(ids)
    blocks = block_of(series, 5, seed)
    assert ((blocks >= 0) & (blocks < 5)).all()
    # order and repetition do not matter: the same id gets the same block and sample flag
    again = block_of(series.reverse(), 5, seed)[::-1]
    np.testing.assert_array_equal(blocks, again)
    picked = in_sample(series, 0.5, seed)
    for i, j in ((i, j) for i in range(len(ids)) for j in range(len(ids)) if ids[i] == ids[j]):
        assert blocks[i] == blocks[j] and picked[i] == picked[j]
    assert in_sample(series, 1.0, seed).all()
