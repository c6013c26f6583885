"""Refine a sentence encoder from frozen segments: a clustering and a contrastive objective.

This is the ``--deep`` head of the pipeline. The loss is an instance-level contrastive term
plus ``eta`` x a clustering term (:mod:`segmenter.finetune.objectives`).

Clustering term, DEC/DCN family:

- ``kmeans`` (default, DCN-style): squared distance of each normalized embedding to its
  nearest learnable centre; it pulls customers towards their segment's centre and the
  encoder towards what separates segments.
- ``dec``: Student-t soft assignments to the centres, DEC's sharpened target distribution and
  the KL divergence between them (targets computed per batch, as SCCL does).

Instance term, a multi-positive NT-Xent (SupCon) over a batch of anchors and their positives:

- ``neighbors`` (default): each anchor comes with ``group`` (3) of its nearest neighbours
  (CLNN, Zhang et al., ACL 2022), and any two documents of the batch of which one lists the
  other as a neighbour are positives too; this pulls whole neighbourhoods together.
  Neighbours are looked up in the frozen text embedding, or in the space the pipeline found
  its segments in (text + behaviour features), so that fine-tuning does not trade the value
  features away for taste;
- ``views``: a second view (phrase and word dropout) of the anchor itself (SCCL, Zhang et al.,
  NAACL 2021).

On Banking77 the neighbour positives are what gains accuracy (two views of the same text
alone lowered it), and a light clustering term adds to them while a heavy one anchors the
encoder to the frozen segments' mistakes (figures in BENCHMARKS.md, "Deep clustering head").

Training starts from the frozen segments (centres = mean embedding of each segment), is
capped in steps, checks every ``update_interval`` steps on a fixed evaluation sample how many
assignments changed (stop after ``patience`` checks below ``tol``), and guards against
collapse (small-segment share and assignment entropy, relative to the start): an unhealthy
checkpoint restores the best healthy one (best = highest cosine silhouette on the evaluation
sample, or the acceptance rule's score on held-out customers). ``refresh`` re-estimates the
centres on the evaluation sample at each check (a few Lloyd steps) instead of only learning
them by gradient. Published reproductions of SCCL
report that long training degrades results.

With held-out customers (``held_out``), each check is judged instead by the label-free rule
of :mod:`segmenter.finetune.acceptance`: the best accepted check is kept and training stops
at the first check the rule rejects. Whether the refined segments are kept is the pipeline's
decision (:class:`segmenter.model.Segmenter`: that rule on its held-out customers, and the
behaviour separation where segments use behaviour, ``SegmenterConfig.deep_keep_behaviour``).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from segmenter.errors import SegmenterError
from segmenter.finetune.acceptance import Acceptance
from segmenter.finetune.encoder import FinetunedEncoder
from segmenter.finetune.lora import add_lora
from segmenter.finetune.objectives import (
    augment,
    auto_neighbours,
    batch_positives,
    cluster_loss,
    contrastive,
    health,
    lloyd,
    neighbours,
    sample_batch,
    soft_assign,
)
from segmenter.finetune.options import DeepOptions, option_name
from segmenter.finetune.runtime import autocast, seeded

logger = logging.getLogger(__name__)

#: ``callback(step, eval_index, assignments, embeddings) -> extra history fields``
Callback = Callable[[int, np.ndarray, np.ndarray, np.ndarray], dict[str, float]]


@dataclass
class Refinement:
    """What :func:`refine_encoder` gives.

    Attributes
    ----------
    encoder : FinetunedEncoder
        The refined encoder (weights of the best healthy check).
    history : list of dict
        One record per check: step, loss, cluster_loss, contrastive_loss, changed (share of
        evaluation assignments that changed since the last check), min_share, entropy,
        healthy, seconds, and what the callback added.
    best_step : int
        Step whose weights were kept (0 = the starting weights).
    verdict : dict or None
        With held-out customers: the acceptance rule's verdict of the kept weights
        (:meth:`~segmenter.finetune.acceptance.Acceptance.judge`); at step 0 it accepts them.
    collapsed : bool
        True when the collapse guard restored an earlier checkpoint.
    centres : ndarray of shape (k, dim)
        The learnable centres at ``best_step``.
    options : DeepOptions
    seed : int
    """

    encoder: FinetunedEncoder
    history: list[dict[str, float]]
    best_step: int
    collapsed: bool
    centres: np.ndarray
    options: DeepOptions
    seed: int
    verdict: dict[str, Any] | None = None

    def report(self) -> dict[str, Any]:
        """JSON-ready summary (run.json's ``deep`` section)."""
        return {
            "options": self.options.to_dict(),
            "seed": self.seed,
            "best_step": self.best_step,
            "collapse_guard_triggered": self.collapsed,
            "acceptance": self.verdict,
            "history": self.history,
        }


def refine_encoder(
    st: Any,
    texts: Sequence[str],
    labels: np.ndarray,
    options: DeepOptions | None = None,
    *,
    seed: int = 0,
    base_identity: str = "",
    space: np.ndarray | None = None,
    callback: Callback | None = None,
    held_out: tuple[Sequence[str], Acceptance] | None = None,
    progress: bool = True,
) -> Refinement:
    """Train a copy of ``st`` (a SentenceTransformer) starting from segments ``labels``.

    Parameters
    ----------
    st : sentence_transformers.SentenceTransformer
        The encoder to start from; it is copied, never changed.
    texts : sequence of str of length n_docs
        One document per customer.
    labels : ndarray of int of shape (n_docs,)
        Frozen segments; -1 (outliers) are left out of training.
    options : DeepOptions, optional
        Validated options (``SegmenterConfig.validate`` or :class:`EncoderRefiner` checks
        them); default ``DeepOptions()``.
    seed : int
        Seeds torch (in a forked generator), the batches and the evaluation sample.
    base_identity : str
        Identity of ``st``'s encoder, kept in the refined encoder's identity.
    space : ndarray of shape (n_docs, d), optional
        Where nearest neighbours are looked up (Euclidean); default: the frozen text
        embedding (cosine). The pipeline passes the space its segments were found in, so that
        neighbours also agree on the behaviour features.
    callback : callable, optional
        ``callback(step, eval_index, assignments, embeddings)`` is called at every check with
        the evaluation sample's positions among the kept texts, their current segments and
        their current pooled embeddings; what it returns is added to that step's record.
    held_out : (texts, Acceptance), optional
        Customers kept out of training and the rule fitted on their frozen space: each check
        is judged on them, the best accepted check is kept (none: the starting weights) and
        training stops at the first check the rule rejects. Default: keep the check with the
        highest cosine silhouette of the evaluation sample.
    progress : bool
        tqdm bar over training steps.
    """
    options = options or DeepOptions()
    labels = np.asarray(labels)
    keep = labels >= 0
    texts = [t for t, ok in zip(texts, keep, strict=True) if ok]
    labels = labels[keep]
    if space is not None:
        space = np.asarray(space, dtype=np.float32)[keep]
    k = int(labels.max()) + 1 if len(labels) else 0
    if k < 2 or len(texts) < options.batch_size:
        raise SegmenterError(
            f"deep clustering needs >= 2 segments and >= {option_name('batch_size')}="
            f"{options.batch_size} customers; got {k} segments and {len(texts)} customers"
        )
    with seeded(seed, st.device):
        return _train(
            st, texts, labels, k, options, seed=seed, base_identity=base_identity,
            space=space, callback=callback, held_out=held_out, progress=progress,
        )  # fmt: skip


def _train(
    st: Any,
    texts: list[str],
    labels: np.ndarray,
    k: int,
    options: DeepOptions,
    *,
    seed: int,
    base_identity: str,
    space: np.ndarray | None,
    callback: Callback | None,
    held_out: tuple[Sequence[str], Acceptance] | None,
    progress: bool,
) -> Refinement:
    import torch
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    model = copy.deepcopy(st)
    device = model.device
    if options.lora:
        model[0].auto_model = add_lora(
            model[0].auto_model, rank=options.lora_rank, option=option_name("lora")
        )
    elif not options.train_embeddings:
        # the token-embedding table is half of MiniLM's weights; few steps barely move it
        getattr(model[0].auto_model, "embeddings", model[0].auto_model).requires_grad_(False)
    eval_idx = np.sort(
        rng.choice(len(texts), size=min(options.eval_size, len(texts)), replace=False)
    )
    eval_texts = [texts[i] for i in eval_idx]
    z0 = _pooled(model, texts, options)
    centres = np.stack(
        [z0[labels == j].mean(axis=0) if (labels == j).any() else z0.mean(axis=0) for j in range(k)]
    )
    head = torch.nn.Parameter(torch.as_tensor(centres, dtype=torch.float32, device=device))
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(
        [{"params": params, "lr": options.lr}, {"params": [head], "lr": options.head_lr}],
        weight_decay=options.weight_decay,
    )
    steps = options.steps
    warm = max(1, int(options.warmup * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm)))
    )
    prev = labels[eval_idx]
    # collapse is judged against the start: k-means on real data is rarely balanced
    share0, entropy0 = health(prev, k)
    verdict = _judge(model, held_out, options)
    start = _silhouette(z0[eval_idx], prev) if verdict is None else verdict["score"]
    best = (start, 0, copy.deepcopy(model.state_dict()), head.detach().clone(), verdict)
    history: list[dict[str, float]] = []
    collapsed = False
    started = time.perf_counter()
    bar = tqdm(range(1, steps + 1), desc="deep clustering", unit="step", disable=not progress)
    running: list[tuple[float, float, float]] = []
    calm = 0
    near = None
    if options.positives == "neighbors":
        n_near = options.neighbors or auto_neighbours(len(texts), k)
        near = neighbours(z0, n_near) if space is None else neighbours(space, n_near, cosine=False)
    for step in bar:
        ids, groups = sample_batch(len(texts), near, options, rng)
        views = [augment(texts[i], rng) for i in ids]
        model.train()
        with autocast(device):
            z = _forward(model, views, options).float()
            cluster = cluster_loss(z, head, options)
            contrast = contrastive(z, batch_positives(ids, groups, near), options.temperature)
            loss = contrast + options.eta * cluster
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([*params, head], 1.0)
        optim.step()
        sched.step()
        running.append((loss.item(), cluster.item(), contrast.item()))
        if step % options.update_interval and step != steps:
            continue
        z_eval = _pooled(model, eval_texts, options)
        with torch.no_grad():
            q_eval = soft_assign(torch.as_tensor(z_eval, device=device), head, options.alpha)
        now = q_eval.argmax(dim=1).cpu().numpy()
        if options.refresh:
            # refresh the targets: centres follow the encoder instead of anchoring the
            # clustering loss to the frozen segments' mistakes
            centres, now = lloyd(z_eval, head.detach().cpu().numpy(), now)
            head.data.copy_(torch.as_tensor(centres, device=device))
        changed = float((now != prev).mean())
        min_share, entropy = health(now, k)
        healthy = (
            min_share >= options.min_share * share0 and entropy >= options.min_entropy * entropy0
        )
        mean = np.mean(running, axis=0)
        running = []
        record = {
            "step": step, "loss": float(mean[0]), "cluster_loss": float(mean[1]),
            "contrastive_loss": float(mean[2]), "changed": changed,
            "min_share": min_share, "entropy": entropy, "healthy": healthy,
            "seconds": round(time.perf_counter() - started, 2),
        }  # fmt: skip
        known = set(record)
        if callback is not None:
            record.update(callback(step, eval_idx, now, z_eval))
        history.append(record)
        extra = "".join(f" {k} {v:.3f}" for k, v in record.items() if k not in known)
        logger.info("deep step %d: loss %.4f changed %.3f min share %.2f entropy %.2f%s",
                    step, mean[0], changed, min_share, entropy, extra)  # fmt: skip
        verdict = _judge(model, held_out, options)  # recorded even where the guard fires
        if verdict is not None:
            record.update({f"held_out_{n}": v for n, v in verdict.items() if n != "accepted"})
            record["held_out_accepted"] = verdict["accepted"]
        if not healthy:
            collapsed = True
            logger.warning(
                "deep clustering: collapse guard at step %d; restoring step %d", step, best[1]
            )
            break
        if verdict is not None and not verdict["accepted"]:
            logger.info("deep clustering: step %d rejected (%s); stopping at step %d",
                        step, verdict["rejected_because"], best[1])  # fmt: skip
            break
        score = _silhouette(z_eval, now) if verdict is None else verdict["score"]
        if score >= best[0]:
            best = (score, step, copy.deepcopy(model.state_dict()), head.detach().clone(), verdict)
        calm = calm + 1 if changed < options.tol else 0
        if calm >= options.patience:
            logger.info("deep clustering converged at step %d", step)
            break
        prev = now
    bar.close()
    model.load_state_dict(best[2])
    model.eval()
    return Refinement(
        encoder=FinetunedEncoder(model, base_identity=base_identity),
        history=history,
        best_step=int(best[1]),
        collapsed=collapsed,
        centres=best[3].cpu().numpy(),
        options=options,
        seed=seed,
        verdict=best[4],
    )


def _judge(
    model: Any, held_out: tuple[Sequence[str], Acceptance] | None, options: DeepOptions
) -> dict[str, Any] | None:
    """The acceptance rule's verdict of the current weights on the held-out customers."""
    if held_out is None:
        return None
    texts, acceptance = held_out
    return acceptance.judge(_pooled(model, texts, options))


def _forward(model: Any, texts: list[str], options: DeepOptions) -> Any:
    prepare = getattr(model, "preprocess", None) or model.tokenize
    features = {
        k: v[:, : options.max_length].to(model.device) if hasattr(v, "to") else v
        for k, v in prepare(texts).items()
    }
    out = model[1](model[0](features))
    return out["sentence_embedding"]


def _pooled(model: Any, texts: Sequence[str], options: DeepOptions) -> np.ndarray:
    """Un-normalized pooled embeddings (the space of the Student-t kernel)."""
    import torch

    model.eval()
    out = []
    with torch.no_grad(), autocast(model.device):
        for i in range(0, len(texts), 64):
            out.append(_forward(model, list(texts[i : i + 64]), options).float().cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def _silhouette(z: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import silhouette_score

    if len(np.unique(labels)) < 2:
        return -1.0
    return float(silhouette_score(z, labels, metric="cosine"))
