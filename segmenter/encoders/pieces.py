"""Documents embedded as the mean of their pieces: each distinct item, category, search and
review is encoded once, then pooled per customer.

A taste document (:data:`segmenter.render.TASTE_SECTIONS`) is a few lists: categories with
their shares, items, searches, reviews. Encoding the whole document costs ~75 tokens per
customer, and customers of one shop share most of their items, so the same words are encoded
again and again. Encoding each distinct piece once (a few tokens each) and averaging them per
customer gives the same segments on every case of the balance benchmark (BENCHMARKS.md,
"pooled pieces") at a fraction of the tokens. A customer who only wrote (no items or
categories) is one piece: their text, encoded whole, as before.

Pooling: the mean of each block's piece vectors (categories weighted by their share of the
customer's rows, the others equally), then the mean of the blocks, L2-normalized.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from segmenter import vocabulary as V

logger = logging.getLogger(__name__)

#: section label -> (block name, separator between its pieces)
BLOCKS: dict[str, tuple[str, str]] = {
    V.CATEGORIES: ("categories", V.LIST_SEP),
    V.ITEMS: ("items", V.LIST_SEP),
    V.SEARCHES: ("searches", V.SEARCH_SEP),
    V.WRITES: ("writes", V.QUOTE_SEP),
}
#: blocks whose pieces are the shop's catalogue (not what a customer wrote): a fitted model
#: keeps their vectors, so placing a customer encodes only what it has not seen
CATALOGUE = ("categories", "items")
_NEXT = V.END + " "

Block = tuple[str, list[tuple[str, float]]]


def split_pieces(document: str) -> list[Block]:
    """The blocks of a document rendered with the taste sections, each a list of
    ``(piece, weight)``; anything else (a bare text, "No items or texts.") is one piece.

    Inverse of :func:`segmenter.render.render` on the taste sections: the renderer keeps the
    separators out of the pieces (:func:`segmenter.render.piece`).
    """
    starts = [label for label in BLOCKS if document.startswith(label)]
    if not starts:
        return [("whole", [(document, 1.0)])]
    out: list[Block] = []
    rest = document
    while rest:
        label = next((lab for lab in BLOCKS if rest.startswith(lab)), None)
        if label is None:  # text after the known blocks (a section this module does not know)
            out.append(("whole", [(rest, 1.0)]))
            break
        body = rest[len(label) :]
        ends = [body.find(_NEXT + lab) for lab in BLOCKS]
        end = min((e for e in ends if e >= 0), default=-1)
        body, rest = (body, "") if end < 0 else (body[:end], body[end + len(_NEXT) :])
        name, sep = BLOCKS[label]
        out.append((name, _block(name, body.removesuffix(V.END), sep)))
    return [block for block in out if block[1]]


def _block(name: str, body: str, sep: str) -> list[tuple[str, float]]:
    if name == "writes":
        body = body.removeprefix(V.QUOTE).removesuffix(V.QUOTE)
    pieces = [p for p in body.split(sep) if p]
    if name != "categories":
        return [(p, 1.0) for p in pieces]
    out = []
    for p in pieces:  # "label (40%)"
        head, _, share = p.rpartition(" (")
        weight = share.removesuffix("%)")
        if head and weight.isdigit():
            out.append((head, max(float(weight), 1.0)))
        else:
            out.append((p, 1.0))
    return out


class PiecesEncoder:
    """An :class:`~segmenter.embed.Encoder` of documents that pools the embeddings of their
    pieces (:func:`split_pieces`), each distinct piece encoded once by ``base``.

    Parameters
    ----------
    base : Encoder
        Encodes the pieces.
    cache : EmbeddingCache, optional
        Piece vectors are cached under ``base``'s identity (shared with whole texts).
    catalogue : mapping of str to ndarray, optional
        Vectors of known catalogue pieces (items, categories); a fitted model's.

    Attributes
    ----------
    catalogue : dict
        Catalogue pieces seen so far and their vectors; grows with each call until ``frozen``.
    frozen : bool
        Stop remembering new catalogue pieces (a fitted model placing customers).
    """

    def __init__(
        self,
        base: Any,
        cache: Any = None,
        catalogue: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.base = base
        self.cache = cache
        self.catalogue: dict[str, np.ndarray] = dict(catalogue or {})
        self.frozen = catalogue is not None

    @property
    def identity(self) -> str:
        """Cache key of the pooled vectors: the base encoder's, marked as pooled."""
        return f"pieces:{self.base.identity}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """ndarray of shape (n_texts, dim), float32, rows of unit L2 norm."""
        from segmenter.embed import embed_documents

        blocks = [split_pieces(t) for t in texts]
        distinct = list(dict.fromkeys(p for doc in blocks for _, ps in doc for p, _ in ps))
        vectors = {p: self.catalogue[p] for p in distinct if p in self.catalogue}
        todo = [p for p in distinct if p not in vectors]
        if todo:
            fresh, _ = embed_documents(self.base, todo, self.cache)
            vectors.update(zip(todo, fresh, strict=True))
            if not self.frozen:
                seen = {p for doc in blocks for name, ps in doc if name in CATALOGUE for p, _ in ps}
                self.catalogue.update((p, vectors[p]) for p in todo if p in seen)
        logger.debug("pieces: %d distinct, %d encoded", len(distinct), len(todo))
        dim = next(iter(vectors.values())).shape[0] if vectors else 0
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for i, doc in enumerate(blocks):
            pooled = np.mean([_mean(vectors, ps) for _, ps in doc], axis=0)
            out[i] = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
        return out

    def learn(self, texts: Sequence[str]) -> Catalogue:
        """Remember the vectors of every catalogue piece of ``texts`` (those served whole
        from the embedding cache were not split yet), stop remembering, and return them."""
        from segmenter.embed import embed_documents

        seen = dict.fromkeys(
            p for t in texts for name, ps in split_pieces(t) if name in CATALOGUE for p, _ in ps
        )
        todo = [p for p in seen if p not in self.catalogue]
        if todo:
            fresh, _ = embed_documents(self.base, todo, self.cache)
            self.catalogue.update(zip(todo, fresh, strict=True))
        self.frozen = True
        pieces = sorted(self.catalogue)
        vectors = [self.catalogue[p] for p in pieces]
        return Catalogue(pieces, np.stack(vectors) if vectors else np.zeros((0, 0), np.float32))


class Catalogue:
    """A fitted model's catalogue pieces and their vectors (a model-folder stage).

    Parameters
    ----------
    pieces : list of str
    vectors : ndarray of shape (n_pieces, dim), float32
    """

    def __init__(self, pieces: Sequence[str], vectors: np.ndarray) -> None:
        self.pieces = list(pieces)
        self.vectors = np.asarray(vectors, dtype=np.float32)

    def as_dict(self) -> dict[str, np.ndarray]:
        return dict(zip(self.pieces, self.vectors, strict=True))

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"pieces": self.pieces}, {"vectors": self.vectors}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> Catalogue:
        pieces, vectors = params["pieces"], arrays["vectors"]
        if not isinstance(pieces, list) or len(pieces) != len(vectors):
            raise ValueError(f"{len(pieces)} pieces for {len(vectors)} vectors")
        return cls([str(p) for p in pieces], vectors)


def _mean(vectors: Mapping[str, np.ndarray], pieces: list[tuple[str, float]]) -> np.ndarray:
    weights = np.array([w for _, w in pieces], dtype=np.float32)
    stacked = np.stack([vectors[p] for p, _ in pieces])
    return (stacked * weights[:, None]).sum(axis=0) / weights.sum()
