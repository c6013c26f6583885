"""Documents embedded as the mean of their pieces (segmenter.encoders.pieces)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmenter.config import SegmenterConfig
from segmenter.data import EventData
from segmenter.encoders.pieces import PiecesEncoder, split_pieces
from segmenter.errors import SegmenterError
from segmenter.model import Segmenter
from segmenter.render import piece, render

EMPTY = {"categories": None, "category_shares": None, "items": None}


class CountingEncoder:
    """Seeded random unit vector per whole text; counts what it is asked to encode."""

    identity = "test:counting"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.seen.extend(texts)
        out = np.zeros((len(texts), 8), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
            out[i] = np.random.default_rng(seed).normal(size=8)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def _facts(**kw: object) -> dict[str, object]:
    return {**EMPTY, "searches": None, "writes": None, **kw}


def test_a_rendered_document_splits_back_into_its_pieces_even_with_separators_inside() -> None:
    doc = render(
        _facts(
            categories=["gifts, home", "candles"],
            category_shares=[40, 20],
            items=["mug, red", "heart"],
            searches=["cheap; mugs"],
            writes=['said "a" "b" ok', "fine"],
        )
    )
    assert split_pieces(doc) == [
        ("categories", [("gifts home", 40.0), ("candles", 20.0)]),
        ("items", [("mug red", 1.0), ("heart", 1.0)]),
        ("searches", [("cheap mugs", 1.0)]),
        ("writes", [('said "a b" ok', 1.0), ("fine", 1.0)]),
    ]


def test_a_customer_who_only_wrote_is_encoded_whole() -> None:
    doc = render(_facts(writes=["my card was declined twice"]))
    assert split_pieces(doc) == [("whole", [(doc, 1.0)])]
    base = CountingEncoder()
    pooled = PiecesEncoder(base).encode([doc])
    np.testing.assert_allclose(pooled, CountingEncoder().encode([doc]), atol=1e-6)


_word = st.text(alphabet="abcdefgh ,;.()%", min_size=1, max_size=12).map(str.strip).filter(bool)


@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(_word, min_size=1, max_size=5),
    categories=st.lists(_word, min_size=1, max_size=3),
)
def test_every_listed_item_and_category_comes_back_as_one_piece(
    items: list[str], categories: list[str]
) -> None:
    shares = [10 * (i + 1) for i in range(len(categories))]
    doc = render(_facts(items=items, categories=categories, category_shares=shares))
    blocks = dict(split_pieces(doc))
    listed = [p for p in (piece(i, ", ") for i in items) if p]
    assert [p for p, _ in blocks.get("items", [])] == listed
    named = [(piece(c, ", "), float(s)) for c, s in zip(categories, shares, strict=True)]
    assert blocks.get("categories", []) == [(c, s) for c, s in named if c]


def test_pooled_vector_is_the_share_weighted_mean_of_blocks_and_pieces_are_encoded_once() -> None:
    docs = [
        render(_facts(categories=["a", "b"], category_shares=[75, 25], items=["x", "y"])),
        render(_facts(categories=["a"], category_shares=[100], items=["y", "z"])),
    ]
    base = CountingEncoder()
    out = PiecesEncoder(base).encode(docs)
    assert sorted(base.seen) == ["a", "b", "x", "y", "z"]  # each distinct piece once
    v = dict(zip("abxyz", CountingEncoder().encode(list("abxyz")), strict=True))
    expected = ((0.75 * v["a"] + 0.25 * v["b"]) + (v["x"] + v["y"]) / 2) / 2
    np.testing.assert_allclose(out[0], expected / np.linalg.norm(expected), atol=1e-6)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0)


def test_a_learned_catalogue_encodes_only_what_it_has_not_seen() -> None:
    base = CountingEncoder()
    pieces = PiecesEncoder(base)
    train = render(_facts(items=["x", "y"], writes=["hello there"]))
    catalogue = pieces.learn([train])
    assert catalogue.pieces == ["x", "y"]  # what customers wrote is not kept in a model
    base.seen.clear()
    again = PiecesEncoder(base, catalogue=catalogue.as_dict())
    again.encode([render(_facts(items=["x", "w"], writes=["hello there"]))])
    assert sorted(base.seen) == ["hello there", "w"]
    assert "w" not in again.catalogue  # a fitted model does not grow while it serves


def test_pieces_with_deep_is_a_one_line_error() -> None:
    with pytest.raises(SegmenterError, match=r"--pooling: 'pieces' cannot be combined with --deep"):
        SegmenterConfig(pooling="pieces", deep=True).validate()
    with pytest.raises(SegmenterError, match=r"--pooling: 'mean' is not one of"):
        SegmenterConfig(pooling="mean").validate()
    assert SegmenterConfig(deep=True).resolved_pooling == "document"
    assert SegmenterConfig().resolved_pooling == "document"
    assert SegmenterConfig(pooling="pieces").resolved_pooling == "pieces"


def test_saved_model_places_its_customers_as_fitted_without_encoding_known_items(
    small_data: EventData, tmp_path: Path
) -> None:
    base = CountingEncoder()
    config = SegmenterConfig(k=4, seed=0, pooling="pieces")
    model = Segmenter(config, encoder=base, progress=False).fit(small_data)
    model.save(tmp_path / "model")
    base.seen.clear()
    loaded = Segmenter.load(tmp_path / "model", encoder=base, progress=False)
    again = loaded.predict(small_data)
    assert again["segment"].to_list() == model.assignments_["segment"].to_list()
    known = set(loaded.catalogue_.pieces)  # type: ignore[union-attr]
    assert known and not known & set(base.seen)


def test_pooling_document_keeps_the_whole_document_path(small_data: EventData) -> None:
    base = CountingEncoder()
    model = Segmenter(SegmenterConfig(k=4, seed=0, pooling="document"), encoder=base,
                      progress=False).fit(small_data)  # fmt: skip
    assert model.catalogue_ is None
    assert set(model.documents_["document"].to_list()) <= set(base.seen)
