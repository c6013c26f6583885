"""The Encoder protocol, the embedding cache, and the packaged sentence encoder."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from segmenter.embed import (
    EmbeddingCache,
    Encoder,
    SentenceTransformerEncoder,
    embed_documents,
    resolve_device,
    resolve_model_path,
    text_keys,
)
from segmenter.errors import SegmenterError


class FakeEncoder:
    """Deterministic pseudo-random unit vectors per text; records what it was asked to encode."""

    def __init__(self, identity: str = "fake:v1", dim: int = 8) -> None:
        self._identity = identity
        self.dim = dim
        self.calls: list[list[str]] = []

    @property
    def identity(self) -> str:
        return self._identity

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).normal(size=self.dim)
            rows.append(v / np.linalg.norm(v))
        return np.array(rows, dtype=np.float32).reshape(len(texts), self.dim)

    @property
    def encoded(self) -> list[str]:
        return [t for call in self.calls for t in call]


TEXTS = [f"customer {i}: buys tea and mugs" for i in range(6)]


def test_fake_is_an_encoder() -> None:
    assert isinstance(FakeEncoder(), Encoder)
    assert isinstance(SentenceTransformerEncoder(show_progress=False), Encoder)


def test_second_call_encodes_nothing(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "cache")
    enc = FakeEncoder()
    first, stats = embed_documents(enc, TEXTS, cache)
    assert stats == {"encoded": 6, "cached": 0}
    assert first.shape == (6, 8) and first.dtype == np.float32
    assert np.allclose(first, enc.encode(TEXTS))

    again = FakeEncoder()  # a fresh process: only the files remember
    second, stats = embed_documents(again, TEXTS, EmbeddingCache(tmp_path / "cache"))
    assert stats == {"encoded": 0, "cached": 6}
    assert again.calls == []
    np.testing.assert_array_equal(second, first)


def test_changing_one_text_encodes_exactly_one(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    enc = FakeEncoder()
    before, _ = embed_documents(enc, TEXTS, cache)
    changed = [*TEXTS[:3], "customer 3: now buys garden tools", *TEXTS[4:]]
    enc.calls.clear()
    after, stats = embed_documents(enc, changed, cache)
    assert stats == {"encoded": 1, "cached": 5}
    assert enc.encoded == ["customer 3: now buys garden tools"]
    unchanged = [0, 1, 2, 4, 5]
    np.testing.assert_array_equal(after[unchanged], before[unchanged])
    assert not np.allclose(after[3], before[3])
    # and the order of texts does not matter to the cache
    enc.calls.clear()
    shuffled, stats = embed_documents(enc, changed[::-1], cache)
    assert stats["encoded"] == 0
    np.testing.assert_array_equal(shuffled, after[::-1])


def test_duplicates_are_encoded_once(tmp_path: Path) -> None:
    enc = FakeEncoder()
    texts = ["same", "other", "same", "same", "other", "third"]
    vectors, stats = embed_documents(enc, texts, EmbeddingCache(tmp_path))
    assert stats == {"encoded": 3, "cached": 0}
    assert sorted(enc.encoded) == ["other", "same", "third"]
    np.testing.assert_array_equal(vectors[0], vectors[2])
    np.testing.assert_array_equal(vectors[0], vectors[3])
    np.testing.assert_array_equal(vectors[1], vectors[4])
    # also without a cache
    enc2 = FakeEncoder()
    no_cache, stats = embed_documents(enc2, texts)
    assert stats == {"encoded": 3, "cached": 0} and len(enc2.encoded) == 3
    np.testing.assert_array_equal(no_cache, vectors)


def test_changed_identity_misses_the_cache(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    embed_documents(FakeEncoder("fake:v1"), TEXTS, cache)
    other = FakeEncoder("fake:v2")
    _, stats = embed_documents(other, TEXTS, cache)
    assert stats == {"encoded": 6, "cached": 0}
    assert len(other.encoded) == 6
    # both versions are kept side by side; v1 still hits
    _, stats = embed_documents(FakeEncoder("fake:v1"), TEXTS, cache)
    assert stats == {"encoded": 0, "cached": 6}


def test_cache_files_are_complete_shards(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    embed_documents(FakeEncoder(), TEXTS[:3], cache)
    embed_documents(FakeEncoder(), TEXTS, cache)
    (folder,) = tmp_path.iterdir()
    names = sorted(p.name for p in folder.iterdir())
    assert names.count("encoder.txt") == 1
    assert len([n for n in names if n.endswith(".npz")]) == 2  # 3 texts, then the 3 new ones
    assert not [n for n in names if n.endswith(".tmp")]
    assert (folder / "encoder.txt").read_text().strip() == "fake:v1"
    keys = text_keys(TEXTS)
    vectors, hits = cache.lookup("fake:v1", keys)
    assert hits.all() and vectors is not None
    np.testing.assert_allclose(vectors, FakeEncoder().encode(TEXTS))


def test_encoder_returning_the_wrong_array_is_an_error() -> None:
    class Float64Encoder(FakeEncoder):
        def encode(self, texts: Sequence[str]) -> np.ndarray:
            return super().encode(texts).astype(np.float64)

    with pytest.raises(SegmenterError, match=r"dtype float64; expected \(2, dim\) float32"):
        embed_documents(Float64Encoder(), ["a", "b"])


def test_option_errors(tmp_path: Path) -> None:
    with pytest.raises(SegmenterError, match=r"--device: 'gpu' is not one of"):
        resolve_device("gpu")
    with pytest.raises(SegmenterError, match=r"--encoder: '\./no/such/model' is not a local"):
        resolve_model_path("./no/such/model")
    with pytest.raises(SegmenterError, match=r"is not a sentence-transformers folder"):
        resolve_model_path(tmp_path)
    # offline is a promise: a hub name is refused, never fetched
    with pytest.raises(SegmenterError, match=r"'sentence-transformers/all-MiniLM-L6-v2' is not a"):
        resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")


def test_packaged_encoder_on_three_texts() -> None:
    enc = SentenceTransformerEncoder(device="cpu", show_progress=False)
    texts = [
        "Buys running shoes and sneakers for jogging.",
        "Often orders trainers and sports shoes to run in.",
        "The invoice for the office printer toner was paid late.",
    ]
    vectors = enc.encode(texts)
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.2
    assert sims[0, 1] > sims[1, 2] + 0.2
    assert enc.identity == SentenceTransformerEncoder(show_progress=False).identity
    assert enc.identity.startswith(Path(enc.path).name + ":")
