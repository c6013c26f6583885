"""Encoder backends: agreement with fp32, the ONNX file cache, ``auto``, and the CLI option."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from benchmarks.metrics import hungarian_accuracy
from segmenter.config import SegmenterConfig
from segmenter.data import EventData
from segmenter.embed import (
    SMALL_BATCH,
    EmbeddingCache,
    SentenceTransformerEncoder,
    packaged_model_path,
)
from segmenter.encoders import onnx_files
from segmenter.encoders.backends import (
    BF16_FLAGS,
    MEAN_COSINE_FLOOR,
    MIN_COSINE_FLOOR,
    agreement,
    check_documents,
    choose_backend,
    cpu_flags,
)
from segmenter.errors import SegmenterError
from segmenter.model import Segmenter

DOCS = check_documents(24, seed=7)  # not the documents auto checks with


@pytest.fixture(scope="session")
def onnx_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ONNX cache for the module: each backend is exported once."""
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="session")
def fp32() -> np.ndarray:
    return SentenceTransformerEncoder(device="cpu", show_progress=False).encode(DOCS)


def encoder(backend: str, root: Path, model: str | None = None) -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder(
        model, device="cpu", show_progress=False, backend=backend, onnx_cache=root
    )


@pytest.mark.parametrize(
    ("backend", "mean_floor", "min_floor"),
    [
        ("torch-bf16", MEAN_COSINE_FLOOR, MIN_COSINE_FLOOR),
        ("onnx", 0.99999, 0.9999),
        ("onnx-int8", 0.995, 0.98),  # opt-in only: below auto's floors (see backends.py)
    ],
)
def test_backend_agrees_with_fp32(
    backend: str, mean_floor: float, min_floor: float, onnx_root: Path, fp32: np.ndarray
) -> None:
    enc = encoder(backend, onnx_root)
    vectors = enc.encode(DOCS)
    assert vectors.shape == fp32.shape and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    scores = agreement(fp32, vectors)
    assert scores["mean_cosine"] >= mean_floor, scores
    assert scores["min_cosine"] >= min_floor, scores
    # caches never mix vectors of two backends
    assert enc.identity.endswith("+" + backend)
    assert enc.identity.split("+")[0] == encoder("torch", onnx_root).identity


def test_auto_places_a_few_texts_through_the_onnx_fp32_graph(
    onnx_root: Path, fp32: np.ndarray
) -> None:
    enc = encoder("auto", onnx_root)
    few = enc.encode(DOCS[:SMALL_BATCH])  # one customer at a time: no torch overhead
    assert enc._small_onnx is True
    assert agreement(fp32[:SMALL_BATCH], few)["min_cosine"] >= 0.9999  # fp32's vectors
    many = enc.encode(DOCS)  # a batch runs on the backend auto chose
    assert agreement(fp32, many)["mean_cosine"] >= MEAN_COSINE_FLOOR
    # a fixed backend is never swapped
    fixed = encoder("torch-bf16", onnx_root)
    fixed.encode(DOCS[:2])
    assert fixed._small_onnx is None


def test_onnx_file_is_reused_and_rebuilt_when_damaged(
    onnx_root: Path, fp32: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoder("onnx", onnx_root).encode(DOCS[:2])  # built (or already built by the test above)
    identity = encoder("torch", onnx_root).identity
    folder = onnx_files.artifact_folder(onnx_root, identity, "onnx")
    stamp = (folder / "model.onnx").stat().st_mtime_ns

    built: list[str] = []
    real_build = onnx_files.build_model

    def counting(*args: object) -> Path:
        built.append(str(args[2]))
        return real_build(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(onnx_files, "build_model", counting)
    encoder("onnx", onnx_root).encode(DOCS[:2])
    assert built == [] and (folder / "model.onnx").stat().st_mtime_ns == stamp

    with open(folder / "model.onnx", "r+b") as fh:  # flip bytes in the middle of the weights
        fh.seek(1_000_000)
        fh.write(b"\x00garbage\x00")
    assert onnx_files.cached_model(onnx_root, identity, "onnx") is None
    vectors = encoder("onnx", onnx_root).encode(DOCS)
    assert built == ["onnx"]
    assert agreement(fp32, vectors)["min_cosine"] > 0.9999
    meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    assert meta["sha256"] == onnx_files.file_digest(folder / "model.onnx")
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_changed_encoder_gets_its_own_onnx_file(onnx_root: Path, tmp_path: Path) -> None:
    source = packaged_model_path()
    copy = tmp_path / "minilm-changed"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("model.safetensors"))
    (copy / "model.safetensors").symlink_to(source / "model.safetensors")
    extra = json.loads((copy / "config.json").read_text(encoding="utf-8"))
    (copy / "config.json").write_text(json.dumps({**extra, "note": "changed"}), "utf-8")
    base, changed = encoder("onnx", onnx_root), encoder("onnx", onnx_root, str(copy))
    assert base.identity != changed.identity
    changed.encode(DOCS[:2])
    folders = {p.parent for p in onnx_root.glob("*/model.onnx")}
    assert onnx_files.artifact_folder(onnx_root, changed.identity.split("+")[0], "onnx") in folders
    assert onnx_files.artifact_folder(onnx_root, base.identity.split("+")[0], "onnx") in folders


class Noisy:
    """``encode(backend, texts)`` for :func:`choose_backend`: fp32 = a fixed random set;
    ``onnx-int8`` adds noise of a given size; counts the calls."""

    def __init__(self, noise: dict[str, float]) -> None:
        self.noise = noise
        self.calls: list[str] = []

    def __call__(self, backend: str, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(backend)
        rng = np.random.default_rng(0)
        base = rng.normal(size=(len(texts), 16))
        out = base + self.noise.get(backend, 0.0) * np.random.default_rng(1).normal(size=base.shape)
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def test_auto_accepts_only_a_backend_that_agrees(tmp_path: Path) -> None:
    flags = frozenset({"avx512_vnni", "amx_bf16"})
    bad_bf16 = Noisy({"torch-bf16": 0.5, "onnx-int8": 0.005})
    assert choose_backend("enc:a", bad_bf16, tmp_path, flags) == "torch"
    # int8 stays opt-in: auto never exports and quantizes a model only to refuse it
    assert bad_bf16.calls == ["torch", "torch-bf16"]
    # the decision is stored: a second run does not check again
    assert choose_backend("enc:a", bad_bf16, tmp_path, flags) == "torch"
    assert len(bad_bf16.calls) == 2
    # a CPU without the bf16 flags tries nothing
    for name, cpu in (("enc:b", frozenset({"avx2"})), ("enc:c", frozenset({"sse4_2"}))):
        plain = Noisy({})
        assert choose_backend(name, plain, tmp_path, cpu) == "torch"
        assert plain.calls == ["torch"]
    assert choose_backend("enc:d", Noisy({"torch-bf16": 0.001}), tmp_path, flags) == "torch-bf16"

    # a candidate that cannot run here is skipped, not fatal
    def broken(backend: str, texts: list[str]) -> np.ndarray:
        if backend != "torch":
            raise RuntimeError("no bf16 kernels")
        return Noisy({})(backend, texts)

    assert choose_backend("enc:e", broken, tmp_path, flags) == "torch"


def test_bad_backend_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SegmenterError, match=r"--encoder-backend: 'gpu' is not one of \['auto'"):
        SegmenterConfig(encoder_backend="gpu").validate()
    enc = SentenceTransformerEncoder(device="cpu", backend="int4", onnx_cache=tmp_path)
    with pytest.raises(SegmenterError, match=r"--encoder-backend: 'int4' is not one of"):
        enc.encode(["a"])
    # a model file written before backends existed keeps torch fp32
    assert SegmenterConfig.from_dict({"k": 4}).encoder_backend == "torch"
    assert SegmenterConfig().encoder_backend == "auto"


def test_cli_rejects_a_bad_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipelines._cli import run_cli
    from pipelines.discover import build_parser, main

    code = run_cli(build_parser(), main, ["--encoder-backend", "fast", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "--encoder-backend: 'fast' is not one of ['auto', 'torch'" in err[0]


@pytest.mark.skipif(
    not cpu_flags() & BF16_FLAGS,
    reason="no AVX-512-BF16/AMX on this CPU: auto never picks bf16 here (emulated bf16 is slow "
    "and not what users of such CPUs get)",
)
def test_bf16_segments_match_fp32(small_data: EventData, onnx_root: Path, tmp_path: Path) -> None:
    """The fast backend ``auto`` picks on AVX-512-BF16/AMX CPUs keeps the fp32 segments."""
    labels = {}
    for backend in ("torch", "torch-bf16"):
        cache = EmbeddingCache(tmp_path / "embeddings")
        enc = encoder(backend, onnx_root)
        config = SegmenterConfig(
            k=6, seed=0, umap_dims=0, value_tiers=2, n_restarts=5, encoder_backend=backend
        )
        model = Segmenter(config, encoder=enc, cache=cache, progress=False).fit(small_data)
        assert model.embedding_stats_["cached"] == 0  # the two backends never share vectors
        labels[backend] = model.assignments_["segment"].to_numpy()
    assert hungarian_accuracy(labels["torch"], labels["torch-bf16"]) >= 0.98
