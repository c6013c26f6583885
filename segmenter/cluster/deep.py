"""Deep clustering head: fine-tune the encoder jointly with a clustering objective.

The loss is an instance-level contrastive term plus ``eta`` x a clustering term.

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
alone lowered it); three neighbours per anchor and a learning rate of 2e-4 are what took the
full test set from +2 to +4.6-5.6 ACC points on the same k-means seeds (+6.4 over 10 seeds);
a light clustering term (``eta`` = 1) adds to them while a heavy one anchors the encoder to
the frozen segments' mistakes (BENCHMARKS.md, "Deep clustering head").

``keep_behaviour`` is read by the pipeline (:class:`segmenter.model.Segmenter`), not here:
after training it segments again with the fine-tuned encoder and keeps the new segments only
when they explain at least that share (0.99) of the frozen segments' behaviour separation
(mean eta^2 of the scaled behaviour features); otherwise the frozen encoder and segments stay.

Training starts from the frozen pipeline's segments (centres = mean embedding of each
segment), is capped in steps, checks every ``update_interval`` steps on a fixed evaluation
sample how many assignments changed (stop after ``patience`` checks below ``tol``), and guards
against collapse (small-segment share and assignment entropy, relative to the start): an
unhealthy checkpoint restores the best healthy one (best = highest cosine silhouette on the
evaluation sample). ``refresh`` re-estimates the centres on the evaluation sample at each
check (a few Lloyd steps) instead of only learning them by gradient.
Published reproductions of SCCL report that long training degrades results.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from segmenter.errors import SegmenterError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeepConfig:
    """Options of the deep clustering head (see module docstring)."""

    objective: str = "kmeans"
    steps: int = 120
    batch_size: int = 16
    lr: float = 2e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.1
    alpha: float = 1.0
    eta: float = 1.0
    temperature: float = 0.1
    positives: str = "neighbors"
    refresh: bool = False
    neighbors: int = 0
    group: int = 3
    update_interval: int = 20
    tol: float = 0.005
    patience: int = 2
    min_share: float = 0.25
    min_entropy: float = 0.9
    # the pipeline keeps the fine-tuned segments only when they explain at least this share of
    # the frozen segments' behaviour separation (mean eta^2 of the scaled behaviour features)
    keep_behaviour: float = 0.99
    train_embeddings: bool = False
    eval_size: int = 512
    max_length: int = 128
    lora: bool = False
    lora_rank: int = 8
    seed: int = 0

    def validate(self) -> DeepConfig:
        for name in ("steps", "batch_size", "update_interval", "eval_size", "max_length"):
            if getattr(self, name) < 1:
                raise SegmenterError(f"deep {name}={getattr(self, name)} should be >= 1")
        if self.batch_size < 4:
            raise SegmenterError(f"deep batch_size={self.batch_size} should be >= 4")
        for name in ("lr", "head_lr", "alpha", "temperature"):
            if not getattr(self, name) > 0:
                raise SegmenterError(f"deep {name}={getattr(self, name)} should be > 0")
        if self.positives not in ("views", "neighbors"):
            raise SegmenterError(
                f"deep positives '{self.positives}' is not one of ['views', 'neighbors']"
            )
        if self.group < 1:
            raise SegmenterError(f"deep group={self.group} should be >= 1")
        if self.neighbors < 0:
            raise SegmenterError(f"deep neighbors={self.neighbors} should be >= 0 (0 = auto)")
        if self.objective not in ("kmeans", "dec"):
            raise SegmenterError(
                f"deep objective '{self.objective}' is not one of ['kmeans', 'dec']"
            )
        if not 0 <= self.keep_behaviour <= 1:
            raise SegmenterError(f"deep keep_behaviour={self.keep_behaviour} should be in [0, 1]")
        if not 0 <= self.min_share < 1 or not 0 <= self.min_entropy < 1:
            raise SegmenterError("deep min_share and min_entropy should be in [0, 1)")
        return self


def augment(text: str, rng: np.random.Generator, p_piece: float = 0.2, p_word: float = 0.1) -> str:
    """A view of a document: drop whole phrases and single words at random (keeps >= 1)."""
    pieces = [p for p in text.replace(". ", ".|").replace(", ", ",|").split("|") if p.strip()]
    kept = [p for p in pieces if rng.random() >= p_piece] or pieces[:1]
    words = " ".join(kept).split(" ")
    out = [w for w in words if rng.random() >= p_word] or words[:1]
    return " ".join(out)


def soft_assign(z: Any, centres: Any, alpha: float) -> Any:
    """Student-t kernel q_ij (rows sum to 1)."""
    import torch

    d2 = torch.cdist(z, centres).pow(2)
    q = (1.0 + d2 / alpha).pow(-(alpha + 1.0) / 2.0)
    return q / q.sum(dim=1, keepdim=True)


def target_distribution(q: Any) -> Any:
    """DEC's sharpened target p_ij = q_ij^2 / f_j, renormalized per row."""
    weight = q.pow(2) / q.sum(dim=0, keepdim=True)
    return (weight.t() / weight.sum(dim=1)).t()


def cluster_loss(z: Any, centres: Any, cfg: DeepConfig) -> Any:
    """DEC: KL(P || Q) with Student-t Q; k-means (DCN): squared distance of the normalized
    embedding to its nearest normalized centre."""
    import torch
    import torch.nn.functional as F

    if cfg.objective == "dec":
        q = soft_assign(z, centres, cfg.alpha)
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


class FinetunedEncoder:
    """An :class:`~segmenter.embed.Encoder` around a fine-tuned SentenceTransformer."""

    finetuned = True

    def __init__(self, st: Any, *, base_identity: str, batch_size: int = 64) -> None:
        self.st = st
        self.batch_size = batch_size
        digest = hashlib.sha256()
        for name, tensor in sorted(st.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().float().numpy().tobytes()[:4096])
        self.identity = f"deep:{base_identity}:{digest.hexdigest()[:16]}"
        self.device = str(st.device)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.st.encode(
            list(texts), batch_size=self.batch_size, convert_to_numpy=True,
            normalize_embeddings=True, show_progress_bar=False,
        )  # fmt: skip
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def save(self, path: str) -> None:
        st = self.st
        if hasattr(st[0], "auto_model") and hasattr(st[0].auto_model, "merge_and_unload"):
            st = copy.deepcopy(st)
            st[0].auto_model = st[0].auto_model.merge_and_unload()
        st.save(path)


class DeepClusterer:
    """Fine-tune a sentence-transformers encoder with a clustering and a contrastive term.

    Parameters
    ----------
    config : DeepConfig, optional
    progress : bool
        tqdm bar over training steps.

    Attributes
    ----------
    encoder_ : FinetunedEncoder
    history_ : list of dict
        step, loss, cluster_loss, contrastive_loss, changed (share of evaluation assignments
        that changed since the last check), min_share, entropy, healthy.
    best_step_ : int
    collapsed_ : bool
        True when the guard restored an earlier checkpoint.
    """

    def __init__(self, config: DeepConfig | None = None, *, progress: bool = True) -> None:
        self.config = config
        self.progress = progress

    def fit(
        self,
        st: Any,
        texts: Sequence[str],
        labels: np.ndarray,
        *,
        base_identity: str = "",
        space: np.ndarray | None = None,
        callback: Callable[[int, np.ndarray, np.ndarray, np.ndarray], dict[str, float]]
        | None = None,
    ) -> DeepClusterer:
        """Train a copy of ``st`` (a SentenceTransformer) starting from segments ``labels``.

        ``space``, one row per text, is where the nearest neighbours are looked up (Euclidean;
        default: the frozen text embedding, cosine); the pipeline passes the space its
        segments were found in, so that neighbours also agree on the behaviour features.

        ``callback(step, eval_index, assignments, embeddings)``, if given, is called at every
        check with the evaluation sample's positions in ``texts`` (outliers, label -1, removed
        first), their current segments and their current pooled embeddings; what it returns is
        added to that step's history record.
        """
        import torch
        from tqdm.auto import tqdm

        cfg = (self.config or DeepConfig()).validate()
        labels = np.asarray(labels)
        keep = labels >= 0
        texts = [t for t, ok in zip(texts, keep, strict=True) if ok]
        labels = labels[keep]
        if space is not None:
            space = np.asarray(space, dtype=np.float32)[keep]
        k = int(labels.max()) + 1 if len(labels) else 0
        if k < 2 or len(texts) < cfg.batch_size:
            raise SegmenterError(
                f"deep clustering needs >= 2 segments and >= batch_size={cfg.batch_size} "
                f"customers; got {k} segments and {len(texts)} customers"
            )
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        model = copy.deepcopy(st)
        device = model.device
        if cfg.lora:
            model = _with_lora(model, cfg.lora_rank)
        elif not cfg.train_embeddings:
            # the token-embedding table is half of MiniLM's weights; few steps barely move it
            getattr(model[0].auto_model, "embeddings", model[0].auto_model).requires_grad_(False)
        eval_idx = np.sort(
            rng.choice(len(texts), size=min(cfg.eval_size, len(texts)), replace=False)
        )
        eval_texts = [texts[i] for i in eval_idx]
        z0 = self._pooled(model, texts, cfg)
        centres = np.stack(
            [
                z0[labels == j].mean(axis=0) if (labels == j).any() else z0.mean(axis=0)
                for j in range(k)
            ]
        )
        head = torch.nn.Parameter(torch.as_tensor(centres, dtype=torch.float32, device=device))
        params = [p for p in model.parameters() if p.requires_grad]
        optim = torch.optim.AdamW(
            [{"params": params, "lr": cfg.lr}, {"params": [head], "lr": cfg.head_lr}],
            weight_decay=cfg.weight_decay,
        )
        warm = max(1, int(cfg.warmup * cfg.steps))
        sched = torch.optim.lr_scheduler.LambdaLR(
            optim,
            lambda s: min((s + 1) / warm, max(0.0, (cfg.steps - s) / max(1, cfg.steps - warm))),
        )
        autocast = _autocast(device)
        prev = labels[eval_idx]
        # collapse is judged against the start: k-means on real data is rarely balanced
        share0, entropy0 = health(prev, k)
        best = (
            self._silhouette(z0[eval_idx], prev),
            0,
            copy.deepcopy(model.state_dict()),
            head.detach().clone(),
        )
        self.history_: list[dict[str, float]] = []
        self.collapsed_ = False
        started = time.perf_counter()
        bar = tqdm(
            range(1, cfg.steps + 1), desc="deep clustering", unit="step", disable=not self.progress
        )
        running: list[tuple[float, float, float]] = []
        calm = 0
        near = None
        if cfg.positives == "neighbors":
            n_near = cfg.neighbors or auto_neighbours(len(texts), k)
            near = (
                nearest_neighbours(z0, n_near)
                if space is None
                else nearest_neighbours(space, n_near, cosine=False)
            )
        for step in bar:
            ids, groups = _batch(len(texts), near, cfg, rng)
            views = [augment(texts[i], rng) for i in ids]
            model.train()
            with autocast:
                z = self._forward(model, views, cfg).float()
                cluster = cluster_loss(z, head, cfg)
                contrast = contrastive(z, batch_positives(ids, groups, near), cfg.temperature)
                loss = contrast + cfg.eta * cluster
            optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([*params, head], 1.0)
            optim.step()
            sched.step()
            running.append((loss.item(), cluster.item(), contrast.item()))
            if step % cfg.update_interval and step != cfg.steps:
                continue
            z_eval = self._pooled(model, eval_texts, cfg)
            with torch.no_grad():
                q_eval = soft_assign(torch.as_tensor(z_eval, device=device), head, cfg.alpha)
            now = q_eval.argmax(dim=1).cpu().numpy()
            if cfg.refresh:
                # refresh the targets: centres follow the encoder instead of anchoring the
                # clustering loss to the frozen segments' mistakes
                centres, now = lloyd(z_eval, head.detach().cpu().numpy(), now)
                head.data.copy_(torch.as_tensor(centres, device=device))
            changed = float((now != prev).mean())
            min_share, entropy = health(now, k)
            healthy = min_share >= cfg.min_share * share0 and entropy >= cfg.min_entropy * entropy0
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
            self.history_.append(record)
            extra = "".join(f" {k} {v:.3f}" for k, v in record.items() if k not in known)
            logger.info("deep step %d: loss %.4f changed %.3f min share %.2f entropy %.2f%s",
                        step, mean[0], changed, min_share, entropy, extra)  # fmt: skip
            if not healthy:
                self.collapsed_ = True
                logger.warning(
                    "deep clustering: collapse guard at step %d; restoring step %d", step, best[1]
                )
                break
            score = self._silhouette(z_eval, now)
            if score >= best[0]:
                best = (score, step, copy.deepcopy(model.state_dict()), head.detach().clone())
            calm = calm + 1 if changed < cfg.tol else 0
            if calm >= cfg.patience:
                logger.info("deep clustering converged at step %d", step)
                break
            prev = now
        bar.close()
        model.load_state_dict(best[2])
        model.eval()
        self.best_step_ = int(best[1])
        self.cluster_centers_ = best[3].cpu().numpy()
        self.encoder_ = FinetunedEncoder(model, base_identity=base_identity)
        return self

    @staticmethod
    def _forward(model: Any, texts: list[str], cfg: DeepConfig) -> Any:
        prepare = getattr(model, "preprocess", None) or model.tokenize
        features = {
            k: v[:, : cfg.max_length].to(model.device) if hasattr(v, "to") else v
            for k, v in prepare(texts).items()
        }
        out = model[1](model[0](features))
        return out["sentence_embedding"]

    def _pooled(self, model: Any, texts: Sequence[str], cfg: DeepConfig) -> np.ndarray:
        """Un-normalized pooled embeddings (the space of the Student-t kernel)."""
        import torch

        model.eval()
        out = []
        with torch.no_grad(), _autocast(model.device):
            for i in range(0, len(texts), 64):
                out.append(self._forward(model, list(texts[i : i + 64]), cfg).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    @staticmethod
    def _silhouette(z: np.ndarray, labels: np.ndarray) -> float:
        from sklearn.metrics import silhouette_score

        if len(np.unique(labels)) < 2:
            return -1.0
        return float(silhouette_score(z, labels, metric="cosine"))

    def report(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config or DeepConfig()),
            "best_step": self.best_step_,
            "collapse_guard_triggered": self.collapsed_,
            "history": self.history_,
        }


def auto_neighbours(n: int, k: int) -> int:
    """Neighbours per document when not given: the square root of the average segment size
    (1..20), so that most of them share the document's true segment (Banking77: 4 of 13 texts
    per intent, 6 of 40)."""
    return int(np.clip(round(math.sqrt(n / k)), 1, 20))


def nearest_neighbours(z: np.ndarray, n: int, *, cosine: bool = True) -> np.ndarray:
    """Indices of the ``n`` nearest other points of each row (exact search, faiss).

    Parameters
    ----------
    z : ndarray of shape (n_points, dim)
    n : int
        Neighbours per point (at most ``n_points - 1``).
    cosine : bool
        Cosine similarity (rows normalized) rather than Euclidean distance.

    Returns
    -------
    ndarray of shape (n_points, min(n, n_points - 1)), int
        A point is never its own neighbour.
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


def _batch(
    n: int, near: np.ndarray | None, cfg: DeepConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Documents of one training step and their groups: ``batch_size`` anchors, each with
    (``views``) a second view of itself or (``neighbors``, CLNN, Zhang et al., ACL 2022)
    ``group`` of its nearest neighbours, drawn without repeats."""
    anchors = rng.choice(n, size=cfg.batch_size, replace=False)
    if near is None:
        partners = anchors[:, None]
    else:
        order = rng.permuted(np.tile(np.arange(near.shape[1]), (len(anchors), 1)), axis=1)
        partners = near[anchors[:, None], order[:, : cfg.group]]
    ids = np.concatenate([anchors, partners.T.ravel()])
    groups = np.tile(np.arange(len(anchors)), partners.shape[1] + 1)
    return ids, groups


def _autocast(device: Any) -> Any:
    import contextlib

    import torch

    if str(device).startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _with_lora(model: Any, rank: int) -> Any:
    from peft import LoraConfig, get_peft_model

    inner = model[0].auto_model
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.1,
                        target_modules=["query", "key", "value"])  # fmt: skip
    model[0].auto_model = get_peft_model(inner, config)
    return model


def refine_encoder(
    encoder: Any,
    texts: Sequence[str],
    labels: np.ndarray,
    options: dict[str, Any],
    *,
    seed: int,
    space: np.ndarray | None = None,
    progress: bool = True,
) -> tuple[FinetunedEncoder, dict[str, Any]]:
    """Fine-tune ``encoder`` (a SentenceTransformerEncoder) from the frozen segments ``labels``."""
    if not hasattr(encoder, "st"):
        raise SegmenterError(
            "--deep needs a sentence-transformers encoder (it fine-tunes the model's weights); "
            f"got {type(encoder).__name__}"
        )
    known = {f for f in DeepConfig.__dataclass_fields__}
    unknown = sorted(set(options) - known)
    if unknown:
        raise SegmenterError(f"deep option '{unknown[0]}' is unknown; allowed: {sorted(known)}")
    config = DeepConfig(**{**options, "seed": options.get("seed", seed)})
    head = DeepClusterer(config, progress=progress).fit(
        encoder.st, texts, labels, base_identity=encoder.identity, space=space
    )
    return head.encoder_, head.report()
