"""The Ray engine: discovery and assignment over a Ray cluster's blocks of customers.

The library functions are the local engine's; this module only maps them over blocks:

1. read the events (parquet files or folders with Ray Data; CSV on the driver), hash each
   customer to a block (:mod:`segmenter.engines.partition`) so that a customer's events sit in
   one block, and validate every block with :func:`segmenter.data.load_events`;
2. embed the documents of a seeded sample of customers in an actor pool (one encoder per
   actor, through :meth:`Segmenter.embed`, so pooling and the cache are the model's);
3. fit a :class:`Segmenter` on the sample on the driver (its embeddings come from the cache);
4. place every customer with :meth:`Segmenter.place` in the actor pool (the sample keeps
   the assignments of the fit): each actor writes its block as one shard of the folder
   ``assignments.parquet`` and returns what the block adds to the segment profiles
   (:mod:`segmenter.profile_parts`), which the driver folds together as they arrive; when the
   sample is every customer, the fit's assignments are written as they are, one shard per
   block, and its profiles are every customer's.

The driver holds the sample, the fitted model and the merged profile counts, never all events
or all assignments. The workers write the shards, so the run folder must be on storage every
node sees. Importing this module imports Ray.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import ray

from segmenter.config import SegmenterConfig
from segmenter.data import EventData, fingerprint_paths, load_events, read_table
from segmenter.documents import DocumentRecipe
from segmenter.embed import EmbeddingCache
from segmenter.engines.partition import PART, block_of, in_sample, user_column
from segmenter.errors import SegmenterError
from segmenter.model import Segmenter
from segmenter.profile_parts import (
    KEYS,
    Part,
    fit_grid,
    merge_parts,
    part_from_ipc,
    part_to_ipc,
    profile_from_parts,
    profile_part,
)

logger = logging.getLogger(__name__)

#: Profile parts the driver holds before folding them into the running total.
MERGE_EVERY = 16
_ADDRESS = re.compile(r"^(auto|(ray://)?[A-Za-z0-9_.\-]+:\d{1,5})$")


@dataclass(frozen=True)
class RayOptions:
    """How the pipeline uses Ray.

    Attributes
    ----------
    address : str or None
        ``None``: start a local instance (stopped at the end); ``"auto"``: the cluster running
        on this machine; ``HOST:PORT`` (or ``ray://HOST:PORT``): a cluster's head node.
    actors : int
        Encoder actors (each loads the encoder once).
    gpus_per_actor : float
        GPUs each actor reserves (0: CPU actors; the encoder runs on CUDA when it has one).
    fit_sample : int
        Customers the model is fitted on (a seeded sample; all of them when fewer).
    blocks : int or None
        Blocks the customers are hashed into (default: 4 per actor).
    num_cpus : int or None
        CPUs of a local instance (default: all).
    cpus_per_actor : int or None
        CPUs each encoder actor reserves; its torch uses as many threads (Ray sets
        ``OMP_NUM_THREADS`` to it). Default: the cluster's CPUs shared between the actors, at
        least 1, so that one actor on a 2-core machine encodes on both cores as the local
        engine does (Ray's default of 1 CPU left a lone actor on one thread).
    """

    address: str | None = None
    actors: int = 2
    gpus_per_actor: float = 0.0
    fit_sample: int = 200_000
    blocks: int | None = None
    num_cpus: int | None = None
    cpus_per_actor: int | None = None

    def validate(self) -> RayOptions:
        if self.address is not None and not _ADDRESS.match(self.address):
            raise SegmenterError(
                f"--ray-address: '{self.address}' is not 'auto' or HOST:PORT of a Ray head node"
            )
        lows = (("actors", 1), ("fit_sample", 3), ("blocks", 1), ("num_cpus", 1),
                ("cpus_per_actor", 1))  # fmt: skip
        for name, low in lows:
            value = getattr(self, name)
            if value is not None and value < low:
                flag = "--ray-" + name.replace("_", "-")
                raise SegmenterError(f"{flag}: {value} should be >= {low}")
        if self.gpus_per_actor < 0:
            raise SegmenterError(f"--ray-gpus-per-actor: {self.gpus_per_actor} should be >= 0")
        return self

    @property
    def n_blocks(self) -> int:
        return self.blocks or 4 * self.actors


@dataclass(frozen=True)
class Source:
    """Where the events are and how to read them (the ``load_events`` options)."""

    path: str
    users: str | None = None
    items: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    preset: str | None = None
    drop_invalid: bool = False

    def tables(self) -> dict[str, pl.DataFrame | None]:
        """The users and items tables, read once per process."""
        return {
            name: None if p is None else read_table(p, what=name)
            for name, p in (("users", self.users), ("items", self.items))
        }

    def load(self, batch: pa.Table, tables: dict[str, pl.DataFrame | None]) -> EventData:
        """Validated canonical events of one block (the local engine's checks)."""
        table = batch.drop_columns([PART]) if PART in batch.column_names else batch
        frame = cast(pl.DataFrame, pl.from_arrow(table))  # a Table converts to a DataFrame
        return load_events(
            frame, users=tables["users"], items=tables["items"], columns=self.columns,
            preset=self.preset, drop_invalid=self.drop_invalid,
        )  # fmt: skip


# -- session and errors ----------------------------------------------------------------------
@contextlib.contextmanager
def session(options: RayOptions) -> Iterator[None]:
    """Connect to (or start) Ray for the block; a local instance started here is stopped."""
    if ray.is_initialized():
        yield
        return
    env = {"env_vars": {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
                        "TQDM_DISABLE": "1"}}  # fmt: skip
    if options.address not in (None, "auto"):
        _reachable(options.address)
    try:
        if options.address is None:
            ray.init(num_cpus=options.num_cpus, include_dashboard=False, runtime_env=env,
                     logging_level=logging.WARNING, log_to_driver=False)  # fmt: skip
        else:
            ray.init(address=options.address, runtime_env=env, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SegmenterError(
            f"--ray-address: cannot connect to '{options.address}' ({first}); expected 'auto' "
            "or HOST:PORT of a running Ray head node"
        ) from None
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()


def _reachable(address: str) -> None:
    """Refuse a head node that does not answer within seconds (``ray.init`` retries for
    minutes before it gives up)."""
    host, port = address.removeprefix("ray://").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise SegmenterError(
            f"--ray-address: cannot connect to '{address}' ({exc.strerror or exc}); expected "
            "'auto' or HOST:PORT of a running Ray head node"
        ) from None


def _cause(exc: BaseException) -> SegmenterError | None:
    """The SegmenterError a worker raised, under Ray's wrappers."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if type(e) is SegmenterError:
            return e
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__]
    # a worker's exception may come back as text only (Ray's UserCodeException wrapper)
    lines = [ln for ln in str(exc).splitlines() if "SegmenterError: " in ln]
    return SegmenterError(lines[-1].split("SegmenterError: ", 1)[1].strip()) if lines else None


@contextlib.contextmanager
def worker_errors() -> Iterator[None]:
    """A worker's SegmenterError (bad input in one block) becomes the driver's, one line."""
    try:
        yield
    except SegmenterError:
        raise
    except Exception as exc:
        cause = _cause(exc)
        if cause is None:
            raise
        raise SegmenterError(str(cause)) from None


# -- reading ---------------------------------------------------------------------------------
def _is_parquet(path: str) -> bool:
    p = Path(path)
    return "://" in path or p.is_dir() or p.suffix.lower() in (".parquet", ".pq")


def _with_block(batch: pa.Table, *, user: str, n_blocks: int, seed: int) -> pa.Table:
    ids = cast(pl.Series, pl.from_arrow(batch[user]))
    return batch.append_column(PART, pa.array(block_of(ids, n_blocks, seed), pa.int64()))


def read_blocks(source: Source, options: RayOptions, seed: int) -> ray.data.Dataset:
    """Raw events with the block (``_part``) of each customer; parquet is read by Ray Data."""
    path = source.path
    if "://" not in path and not Path(path).exists():
        raise SegmenterError(f"--input: '{path}' does not exist")
    if _is_parquet(path):
        with worker_errors():
            ds = ray.data.read_parquet(path)
    else:  # CSV has no row groups to split: read here (convert to parquet for big inputs)
        ds = ray.data.from_arrow(read_table(path, what="input").to_arrow())
    user = user_column(source.columns, source.preset)
    names = ds.schema().names
    if user not in names:
        raise SegmenterError(
            f"input is missing required column '{user}' (user_id); columns present: "
            f"{names[:20]}; map yours with --columns user_id=NAME or use --preset"
        )
    hashed = ds.map_batches(
        functools.partial(_with_block, user=user, n_blocks=options.n_blocks, seed=seed),
        batch_format="pyarrow", batch_size=None,
    )  # fmt: skip
    # a hash shuffle on the block key: each customer's events end in one block (kept in the
    # cluster's object store, not on the driver) for the passes that follow
    with worker_errors():
        return hashed.repartition(options.n_blocks, keys=[PART]).materialize()


def _check_block(batch: pa.Table, *, source: Source) -> pa.Table:
    if batch.num_rows == 0:
        return pa.table(
            {"customers": [0], "rows": [0], "last": pa.array([None], pa.timestamp("us"))}
        )
    data = source.load(batch, source.tables())
    last = data.events["timestamp"].max()
    return pa.table({"customers": [data.n_users], "rows": [data.events.height],
                     "last": pa.array([last], pa.timestamp("us"))})  # fmt: skip


def check_blocks(blocks: ray.data.Dataset, source: Source) -> dict[str, Any]:
    """Validate every block; customers, rows and the last event of the whole base."""
    with worker_errors():
        stats = blocks.map_batches(
            functools.partial(_check_block, source=source), batch_format="pyarrow", batch_size=None
        )
        table = pa.concat_tables(ray.get(stats.to_arrow_refs()))
    last = cast(pl.Series, pl.from_arrow(table["last"])).max()
    return {"customers": int(pa.compute.sum(table["customers"]).as_py()),
            "rows": int(pa.compute.sum(table["rows"]).as_py()), "last": last}  # fmt: skip


def _sample_rows(batch: pa.Table, *, user: str, fraction: float, seed: int) -> pa.Table:
    ids = cast(pl.Series, pl.from_arrow(batch[user]))
    return batch.filter(pa.array(in_sample(ids, fraction, seed)))


def sample_events(
    blocks: ray.data.Dataset, source: Source, fraction: float, seed: int
) -> EventData:
    """Every event of the seeded sample of customers, validated, on the driver."""
    user = user_column(source.columns, source.preset)
    picked = blocks.map_batches(
        functools.partial(_sample_rows, user=user, fraction=fraction, seed=seed),
        batch_format="pyarrow", batch_size=None,
    )  # fmt: skip
    with worker_errors():
        table = pa.concat_tables(ray.get(picked.to_arrow_refs()))
    data = source.load(table, source.tables())
    data.source = source.path
    data.fingerprint = fingerprint_paths(source.path, source.users, source.items)
    return data


# -- actors ----------------------------------------------------------------------------------
def embedding_model(config: SegmenterConfig, cache: EmbeddingCache) -> Segmenter:
    """An unfitted model that embeds documents as :meth:`Segmenter.fit` will (same encoder,
    pooling and cache; no catalogue yet)."""
    model = Segmenter(config, cache=cache, progress=False)
    model.config_ = config.validate()
    return model


class _Embedder:
    """Actor: one encoder; embeds documents into the shared cache."""

    def __init__(self, config: SegmenterConfig, cache_root: str) -> None:
        self.model = embedding_model(config, EmbeddingCache(cache_root))

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = batch["document"].to_pylist()
        self.model.embed(texts)
        return pa.table({"n": [len(texts)]})


class _Placer:
    """Actor: the fitted model (sent as its folder's files); places one block of customers,
    writes them as one shard of ``assignments.parquet`` and returns what they add to the
    profiles (:func:`segmenter.profile_parts.profile_part`)."""

    def __init__(self, files: dict[str, bytes], cache_root: str, device: str, source: Source,
                 fitted: pa.Table, folder: str, grid: dict[str, list[float]]) -> None:  # fmt: skip
        unpacked = Path(tempfile.mkdtemp(prefix="segmenter-model-"))
        for name, blob in files.items():
            (unpacked / name).parent.mkdir(parents=True, exist_ok=True)
            (unpacked / name).write_bytes(blob)
        self.model = Segmenter.load(
            unpacked, cache=EmbeddingCache(cache_root), device=device, progress=False
        )
        shutil.rmtree(unpacked, ignore_errors=True)
        self.source, self.tables = source, source.tables()
        self.fitted = cast(pl.DataFrame, pl.from_arrow(fitted))
        self.folder = Path(folder)
        self.grid = {col: np.asarray(edges) for col, edges in grid.items()}

    def __call__(self, batch: pa.Table) -> pa.Table:
        if batch.num_rows == 0:
            return _placed_row(None, None)
        data = self.source.load(batch, self.tables)
        # the fit sample keeps the segments the fit gave it (its profile part is the
        # driver's); only the others are placed
        rows, part = [], None
        if self.fitted.height:
            ids = data.events.select("user_id").unique()
            kept = self.fitted.join(ids, on="user_id", how="semi")
            data.events = data.events.join(kept.select("user_id"), on="user_id", how="anti")
            rows.append(kept)
        if data.events.height:
            assigned, features, documents = self.model.place(data)
            rows.append(assigned)
            if self.grid:
                part = profile_part(features, documents, data.events, assigned, self.grid)
        placed = pl.concat(rows)
        if placed.height == 0:  # --drop-invalid emptied the block: no shard
            return _placed_row(None, part)
        return _placed_row(write_shard(placed, self.folder), part)


def _placed_row(shard: pl.DataFrame | None, part: Part | None) -> pa.Table:
    """What a placer returns for a block: customers per segment (JSON) and its profile part."""
    sizes = {} if shard is None else dict(shard["segment_name"].value_counts().iter_rows())
    blobs = {} if part is None else part_to_ipc(part)
    columns = {f"part_{name}": pa.array([blobs.get(name)], pa.binary()) for name in KEYS}
    return pa.table({"sizes": [json.dumps(sizes)], **columns})


def write_shard(assignments: pl.DataFrame, folder: Path) -> pl.DataFrame:
    """Write one block's assignments (sorted by customer) into ``folder`` as a shard named by
    its customers: a retried block rewrites the same file (atomically)."""
    shard = assignments.sort("user_id")
    ids = shard["user_id"].cast(pl.String)
    # every id, each after its length: no two different sets of customers read the same
    key = (ids.str.len_bytes().cast(pl.String) + ":" + ids).str.join("\n").item()
    path = folder / f"part-{hashlib.sha1(key.encode()).hexdigest()[:20]}.parquet"
    # written beside the folder, not in it: a worker killed mid-write leaves no stray file
    # that readers of the folder would take for a shard (see :func:`sweep`); unique on any node
    tmp = folder.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    shard.write_parquet(tmp)
    os.replace(tmp, path)
    return shard


def sweep(folder: Path) -> None:
    """Remove what workers killed mid-write left beside the shards ``folder``."""
    for stray in folder.parent.glob(".part-*.tmp"):
        stray.unlink(missing_ok=True)


def _model_files(model: Segmenter) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory(prefix="segmenter-model-") as tmp:
        model.save(tmp)
        root = Path(tmp)
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def actor_cpus(options: RayOptions) -> int:
    """CPUs each encoder actor reserves (:attr:`RayOptions.cpus_per_actor`): the cluster's
    shared between the actors, never more than its largest node has (an actor lives on one)."""
    if options.cpus_per_actor is not None:
        return options.cpus_per_actor
    cluster = int(ray.cluster_resources().get("CPU", 1))
    nodes = [n.get("Resources", {}).get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    largest = int(max(nodes, default=cluster)) or cluster
    return max(1, min(cluster // options.actors, largest))


def actor_args(options: RayOptions) -> dict[str, Any]:
    """``map_batches`` arguments of an encoder actor pool: size, CPUs and GPUs per actor."""
    # Ray Data restarts a dead actor and retries its batch: a lost worker costs time only
    return {"compute": ray.data.ActorPoolStrategy(size=options.actors),
            "num_cpus": actor_cpus(options),
            "num_gpus": options.gpus_per_actor or None}  # fmt: skip


def embed_in_actors(
    texts: list[str], config: SegmenterConfig, cache_root: str, options: RayOptions
) -> None:
    """Embed ``texts`` into the cache with the actor pool."""
    batch = max(config.batch_size * 4, -(-len(texts) // (4 * options.actors)))
    table = pa.table({"document": texts})
    docs = ray.data.from_arrow([table.slice(i, batch) for i in range(0, len(texts), batch)])
    done = docs.map_batches(
        _Embedder, batch_format="pyarrow", batch_size=batch,
        fn_constructor_kwargs={"config": config, "cache_root": cache_root},
        **actor_args(options),
    )  # fmt: skip
    with worker_errors():
        done.materialize()


def place(
    blocks: ray.data.Dataset, model: Segmenter, source: Source, cache_root: str,
    options: RayOptions, folder: Path, fitted: pl.DataFrame | None = None,
    grid: dict[str, np.ndarray] | None = None,
) -> ray.data.Dataset:  # fmt: skip
    """Every customer placed and written into ``folder``, one shard per block (lazy): a row
    per block with its customers per segment and, with a ``grid``, its profile part."""
    empty = model.assignments_.clear() if hasattr(model, "assignments_") else pl.DataFrame()
    kwargs = {"files": _model_files(model), "cache_root": cache_root,
              "device": model.config_.device, "source": source,
              "fitted": (fitted if fitted is not None else empty).to_arrow(),
              "folder": str(folder),
              "grid": {col: edges.tolist() for col, edges in (grid or {}).items()}}  # fmt: skip
    return blocks.map_batches(
        _Placer, batch_format="pyarrow", batch_size=None, fn_constructor_kwargs=kwargs,
        **actor_args(options),
    )  # fmt: skip


def collect_placed(
    placed: ray.data.Dataset, part: Part | None
) -> tuple[dict[str, int], Part | None]:
    """Run the placement; customers per segment and the profile part of every customer (the
    blocks' parts folded into ``part`` as they arrive)."""
    sizes: dict[str, int] = {}
    waiting: list[Part] = []  # folded in groups: the merged part is re-sorted once per group
    with worker_errors():
        for block in placed.iter_batches(batch_format="pyarrow", batch_size=None):
            for row in cast(pa.Table, block).to_pylist():
                for name, n in json.loads(row["sizes"]).items():
                    sizes[name] = sizes.get(name, 0) + int(n)
                if row["part_numeric"] is not None and part is not None:
                    waiting.append(part_from_ipc({n: row[f"part_{n}"] for n in KEYS}))
                if part is not None and len(waiting) >= MERGE_EVERY:
                    part, waiting = merge_parts([part, *waiting]), []
    if part is not None and waiting:
        part = merge_parts([part, *waiting])
    if not sizes:
        raise SegmenterError("input has no customers to assign; expected at least one event")
    return _by_size(sizes), part


def _by_size(sizes: dict[str, int]) -> dict[str, int]:
    return dict(sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])))


def write_fitted(
    assignments: pl.DataFrame, folder: Path, n_blocks: int, seed: int
) -> dict[str, int]:
    """The fit's own assignments (the sample was every customer) as :func:`place` writes
    them, one shard per block; customers per segment."""
    block = block_of(assignments["user_id"], n_blocks, seed)
    for b in np.unique(block):
        write_shard(assignments.filter(pl.Series(block == b)), folder)
    sizes = assignments["segment_name"].value_counts().iter_rows()
    return _by_size({str(name): int(n) for name, n in sizes})


@contextlib.contextmanager
def cache_root(cache: EmbeddingCache | None) -> Iterator[str]:
    """The cache folder the actors share (a temporary one with ``--no-cache``)."""
    if cache is not None:
        yield str(cache.root)
        return
    tmp = tempfile.mkdtemp(prefix="segmenter-ray-cache-")
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- the two pipelines -----------------------------------------------------------------------
@dataclass
class RayRun:
    """What :func:`discover` leaves to the caller: the fitted model, its sample, the writer of
    ``assignments.parquet`` (a folder of shards; to call inside the atomic run folder: it
    returns the profile table of every customer when the fit saw a sample of them) and the
    run's figures."""

    model: Segmenter
    sample: EventData
    write_assignments: Callable[[Path], pl.DataFrame | None]
    info: dict[str, Any]


def discover(
    config: SegmenterConfig, source: Source, options: RayOptions, *,
    cache: EmbeddingCache | None, root: str, progress: bool = True,
) -> RayRun:  # fmt: skip
    """Fit on a seeded sample of customers, then (lazily) place every customer.

    Call inside :func:`session` and :func:`cache_root` (``root``)."""
    cfg = config.validate()
    blocks = read_blocks(source, options, cfg.seed)
    stats = check_blocks(blocks, source)
    fraction = min(1.0, options.fit_sample / max(stats["customers"], 1))
    sample = sample_events(blocks, source, fraction, cfg.seed)
    as_of: datetime = stats["last"]
    logger.info("ray: %d customers in %d blocks; fitting on %d", stats["customers"],
                options.n_blocks, sample.n_users)  # fmt: skip
    # the documents Segmenter.fit will build, embedded by the actors into the shared cache
    recipe = DocumentRecipe(max_tokens=cfg.max_tokens)
    features = recipe.fit_features(sample.events, as_of=as_of)
    recipe.fit_documents(sample.events, features, sample.users)
    texts = recipe.documents(sample.events, features, sample.users)["document"].to_list()
    embed_in_actors(texts, cfg, root, options)
    model = Segmenter(cfg, cache=cache or EmbeddingCache(root), progress=progress)
    model.fit(sample, as_of=as_of)
    info: dict[str, Any] = {
        "engine": "ray", "customers": stats["customers"], "rows": stats["rows"],
        "fit_sample_customers": sample.n_users, "blocks": options.n_blocks,
        "actors": options.actors, "gpus_per_actor": options.gpus_per_actor,
    }  # fmt: skip

    def write(path: Path) -> pl.DataFrame | None:
        path.mkdir()
        if sample.n_users == stats["customers"]:  # every customer was fitted: nothing to place
            info["segment_sizes"] = write_fitted(model.assignments_, path, options.n_blocks,
                                                 cfg.seed)  # fmt: skip
            info["profiles"] = "every customer: the fit's own"
            return None
        grid = fit_grid(model.features_)
        part = profile_part(model.features_, model.documents_, sample.events,
                            model.assignments_, grid)  # fmt: skip
        placed = place(blocks, model, source, root, options, path, model.assignments_, grid)
        info["segment_sizes"], merged = collect_placed(placed, part)
        sweep(path)
        info["profiles"] = "every customer: merged from the blocks' parts"
        return profile_from_parts(cast(Part, merged), model.segment_names_,
                                  model.features_.columns)  # fmt: skip

    return RayRun(model, sample, write, info)


def assign(
    model: Segmenter, source: Source, options: RayOptions, out: Path, *, root: str
) -> dict[str, int]:
    """Place every customer of ``source`` in the model's segments; write ``out`` atomically
    (one parquet file, joined from the shards the actors wrote).

    Call inside :func:`session` and :func:`cache_root` (``root``)."""
    from segmenter.io import atomic_path

    blocks = read_blocks(source, options, model.config_.seed)
    check_blocks(blocks, source)  # every block valid before anything is written
    with tempfile.TemporaryDirectory(prefix=".shards-", dir=out.parent) as scratch:
        folder = Path(scratch) / "shards"  # what killed workers leave goes in scratch
        folder.mkdir()
        sizes = collect_placed(place(blocks, model, source, root, options, folder), None)[0]
        with atomic_path(out) as tmp:
            join_shards(folder, tmp)
    return sizes


def join_shards(folder: Path, path: Path) -> None:
    """The shards of ``folder`` as one parquet file, one shard in memory at a time."""
    writer: pq.ParquetWriter | None = None
    try:
        for shard in sorted(folder.glob("part-*.parquet")):
            table = pq.read_table(shard)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
