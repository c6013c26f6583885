"""Text evidence: which parts of a customer's document move it towards its segment.

Occlusion, LIME-style: each part of the document (an item, a category, a search, a review; the
words of a bare text) is left out in turn, all the occluded documents of a batch of customers are
embedded in one call through :meth:`Segmenter.embed` (the model's own pooling and cache), and
each part's evidence is how much the taste margin drops without it. This is an approximation:
parts interact (the pooled vector is a normalized mean), so the effects need not add up to the
margin.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from segmenter import vocabulary as V
from segmenter.encoders.pieces import BLOCKS

#: Longest bare text cut into words; beyond it, the words past this many are kept together.
MAX_PARTS = 40
#: block name -> the separator between its parts ("text": words)
_SEPARATORS = {name: sep for name, sep in BLOCKS.values()}
#: A block whose every part was left out ("Items: ." or 'Writes: "".'), removed whole.
_EMPTY_BLOCK = re.compile(
    "(?:" + "|".join(re.escape(lab) for lab in BLOCKS) + ')(?:"")?' + re.escape(V.END) + " ?"
)
#: What a left-out part reads as in the masked document.
MASK = "[…]"


@dataclass(frozen=True)
class Part:
    """One occludable part of a document: its text and where it sits."""

    block: str  # categories, items, searches, writes, or "text" for a bare text
    text: str
    start: int  # character span in the document
    end: int


def parts(document: str) -> list[Part]:
    """The parts of ``document``, in order, as character spans (see the module docstring)."""
    out: list[Part] = []
    labels = sorted(BLOCKS, key=lambda lab: document.find(lab))
    found = [(document.find(lab), lab) for lab in labels if document.find(lab) >= 0]
    found = [(pos, lab) for pos, lab in found if pos == 0 or document[pos - 2 : pos] == V.END + " "]
    if not found:
        return _words(document)
    found.sort()
    for i, (pos, label) in enumerate(found):
        start = pos + len(label)
        stop = found[i + 1][0] - 1 if i + 1 < len(found) else len(document)
        body_end = stop - len(V.END) if document[:stop].endswith(V.END) else stop
        name, sep = BLOCKS[label]
        if name == "writes":
            start, body_end = start + len(V.QUOTE), body_end - len(V.QUOTE)
        at = start
        for piece in document[start:body_end].split(sep):
            if piece:
                out.append(Part(name, piece, at, at + len(piece)))
            at += len(piece) + len(sep)
    return out


def _words(document: str) -> list[Part]:
    out: list[Part] = []
    at = 0
    for word in document.split(" "):
        if word:
            out.append(Part("text", word, at, at + len(word)))
        at += len(word) + 1
    if len(out) > MAX_PARTS:
        last = out[MAX_PARTS - 1]
        out = [
            *out[: MAX_PARTS - 1],
            Part("text", document[last.start :], last.start, len(document)),
        ]
    return out


def without(document: str, drop: list[Part]) -> str:
    """``document`` with the parts ``drop`` left out (their separators too)."""
    text = document
    for part in sorted(drop, key=lambda p: -p.start):
        start, end = part.start, part.end
        sep = _SEPARATORS.get(part.block, " ")
        if text[end:].startswith(sep):
            end += len(sep)
        elif text[:start].endswith(sep):  # last of its list: take the separator before it
            start -= len(sep)
        text = text[:start] + text[end:]
    return _EMPTY_BLOCK.sub("", text).strip()


def masked(document: str, shown: list[Part]) -> str:
    """``document`` with the parts ``shown`` replaced by :data:`MASK`."""
    text = document
    for part in sorted(shown, key=lambda p: -p.start):
        text = text[: part.start] + MASK + text[part.end :]
    return text


def occlusion(
    documents: list[str],
    margin: Callable[[np.ndarray, np.ndarray], np.ndarray],
    embed: Callable[[list[str]], np.ndarray],
) -> tuple[list[list[Part]], list[np.ndarray]]:
    """Parts of each document and each part's evidence (drop in margin when left out).

    Parameters
    ----------
    documents : list of str
    margin : callable
        ``margin(embeddings, rows)``: the taste margin of the customers ``rows`` (indices into
        ``documents``) when their documents embed as ``embeddings`` (one row per entry).
    embed : callable
        Documents -> embeddings (:meth:`Segmenter.embed`), called once for the whole batch.

    Returns
    -------
    parts : list of list of Part
    evidence : list of ndarray
        One value per part; positive: the part pulls the customer towards its segment.
    """
    split = [parts(doc) for doc in documents]
    texts = list(documents)
    rows = list(range(len(documents)))
    for i, (doc, ps) in enumerate(zip(documents, split, strict=True)):
        for p in ps:
            texts.append(without(doc, [p]) or V.NOTHING_KNOWN)
            rows.append(i)
    vectors = embed(texts)
    margins = margin(vectors, np.asarray(rows, dtype=np.int64))
    base = margins[: len(documents)]
    out: list[np.ndarray] = []
    at = len(documents)
    for i, ps in enumerate(split):
        out.append(base[i] - margins[at : at + len(ps)])
        at += len(ps)
    return split, out
