"""Losses, batches and checks of the encoder refinement (see :mod:`segmenter.finetune.refine`).

Clustering term, DEC/DCN family (:func:`cluster_loss`); instance term, a multi-positive
NT-Xent over anchors and their positives (:func:`contrastive`, :func:`batch_positives`);
batches of anchors with their nearest neighbours (:func:`sample_batch`, :func:`neighbours`);
collapse guard (:func:`health`) and centre refresh (:func:`lloyd`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from segmenter.finetune.options import DeepOptions


def augment(text: str, rng: np.random.Generator, p_piece: float = 0.2, p_word: float = 0.1) -> str:
    """A view of a document: drop whole phrases and single words at random (keeps >= 1)."""
    pieces = [p for p in text.replace(". ", ".|").replace(", ", ",|").split("|") if p.strip()]
    kept = [p for p in pieces if rng.random() >= p_piece] or pieces[:1]
    words = " ".join(kept).split(" ")
    out = [w for w in words if rng.random() >= p_word] or words[:1]
    return " ".join(out)


def soft_assign(z: Any, centres: Any, alpha: float) -> Any:
    """Student-t kernel q_ij (rows sum to 1), tensor of shape (n, k)."""
    import torch

    d2 = torch.cdist(z, centres).pow(2)
    q = (1.0 + d2 / alpha).pow(-(alpha + 1.0) / 2.0)
    return q / q.sum(dim=1, keepdim=True)


def target_distribution(q: Any) -> Any:
    """DEC's sharpened target p_ij = q_ij^2 / f_j, renormalized per row."""
    weight = q.pow(2) / q.sum(dim=0, keepdim=True)
    return (weight.t() / weight.sum(dim=1)).t()


def cluster_loss(z: Any, centres: Any, options: DeepOptions) -> Any:
    """DEC: KL(P || Q) with Student-t Q; k-means (DCN): squared distance of the normalized
    embedding to its nearest normalized centre."""
    import torch
    import torch.nn.functional as F

    if options.objective == "dec":
        q = soft_assign(z, centres, options.alpha)
        p = target_distribution(q).detach()
        return F.kl_div(q.log(), p, reduction="batchmean")
    zn, cn = F.normalize(z, dim=1), F.normalize(centres, dim=1)
    d2 = torch.cdist(zn, cn).pow(2)
    return d2.min(dim=1).values.mean()


def contrastive(z: Any, positive: np.ndarray, temperature: float) -> Any:
    """Multi-positive NT-Xent (SimCLR's loss; SupCon's when a row has several positives).

    ``positive[i, j]`` marks row ``j`` of ``z`` as a positive of row ``i`` (the diagonal is
    ignored); every other row of the batch is a negative. Rows without positives are skipped.
    """
    import torch
    import torch.nn.functional as F

    zn = F.normalize(z, dim=1)
    sim = zn @ zn.t() / temperature
    sim.fill_diagonal_(float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = torch.as_tensor(positive, device=z.device).clone()
    pos.fill_diagonal_(False)
    count = pos.sum(dim=1)
    if not bool((count > 0).any()):
        return z.sum() * 0.0
    mean = log_prob.masked_fill(~pos, 0.0).sum(dim=1) / count.clamp(min=1)
    return -mean[count > 0].mean()


def batch_positives(ids: np.ndarray, groups: np.ndarray, near: np.ndarray | None) -> np.ndarray:
    """Positive pairs of a batch: same group (an anchor and its partners), same document, and
    (CLNN) any two documents of which one is among the other's nearest neighbours."""
    positive = (groups[:, None] == groups[None, :]) | (ids[:, None] == ids[None, :])
    if near is not None:
        listed = (near[ids][:, :, None] == ids[None, None, :]).any(axis=1)
        positive |= listed | listed.T
    return positive


def lloyd(
    z: np.ndarray, centres: np.ndarray, labels: np.ndarray, iterations: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """A few k-means (Lloyd) steps from ``labels``; an emptied segment keeps its centre."""
    centres = centres.copy()
    for _ in range(iterations):
        for j in range(len(centres)):
            members = labels == j
            if members.any():
                centres[j] = z[members].mean(axis=0)
        d2 = (centres**2).sum(axis=1)[None, :] - 2.0 * z @ centres.T  # + |z|^2, same argmin
        labels = d2.argmin(axis=1)
    return centres.astype(np.float32), labels


def health(labels: np.ndarray, k: int) -> tuple[float, float]:
    """(small-segment share x k, normalized entropy of the segment sizes); 1 = balanced.

    The small-segment share is the 10th percentile of the segment shares (the smallest one
    for k <= 10): with many small segments, one of them emptying is not a collapse.
    """
    share = np.bincount(labels, minlength=k) / max(len(labels), 1)
    nz = share[share > 0]
    entropy = float(-(nz * np.log(nz)).sum() / math.log(k)) if k > 1 else 1.0
    return float(np.quantile(share, 0.1, method="lower") * k), entropy


def auto_neighbours(n: int, k: int) -> int:
    """Neighbours per document when not given: the square root of the average segment size
    (1..20), so that most of them share the document's true segment (Banking77: 4 of 13 texts
    per intent, 6 of 40)."""
    return int(np.clip(round(math.sqrt(n / k)), 1, 20))


def neighbours(z: np.ndarray, n: int, *, cosine: bool = True) -> np.ndarray:
    """Indices of the ``n`` nearest other points of each row.

    Parameters
    ----------
    z : ndarray of shape (n_points, dim)
    n : int
        Neighbours per point (at most ``n_points - 1``).
    cosine : bool
        Cosine similarity (text embeddings); ``False``: Euclidean distance.

    Returns
    -------
    ndarray of int of shape (n_points, min(n, n_points - 1))
    """
    import faiss

    x = np.ascontiguousarray(
        z / np.linalg.norm(z, axis=1, keepdims=True) if cosine else z, dtype=np.float32
    )
    n = min(n, len(x) - 1)
    index = faiss.IndexFlatIP(x.shape[1]) if cosine else faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    _, idx = index.search(x, n + 1)
    # a point is not always its own first hit (identical documents tie): drop it wherever it
    # is, or the farthest hit when it is absent
    own = idx == np.arange(len(x))[:, None]
    own[~own.any(axis=1), -1] = True
    return idx[~own].reshape(len(x), n)


def sample_batch(
    n: int, near: np.ndarray | None, options: DeepOptions, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Documents of one training step and their groups: ``batch_size`` anchors, each with
    (``views``) a second view of itself or (``neighbors``, CLNN, Zhang et al., ACL 2022)
    ``group`` of its nearest neighbours, drawn without repeats."""
    anchors = rng.choice(n, size=options.batch_size, replace=False)
    if near is None:
        partners = anchors[:, None]
    else:
        order = rng.permuted(np.tile(np.arange(near.shape[1]), (len(anchors), 1)), axis=1)
        partners = near[anchors[:, None], order[:, : options.group]]
    ids = np.concatenate([anchors, partners.T.ravel()])
    groups = np.tile(np.arange(len(anchors)), partners.shape[1] + 1)
    return ids, groups
