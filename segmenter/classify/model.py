"""CustomerClassifier: fine-tune a sentence encoder with a linear head on labelled documents."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.utils.class_weight import compute_class_weight

from segmenter import io
from segmenter.classify.labels import check_classes
from segmenter.classify.network import EncoderClassifier
from segmenter.classify.params import check_params, resolve_settings
from segmenter.classify.persistence import read_classifier, write_classifier
from segmenter.classify.probe import fit_probe_head
from segmenter.classify.split import stratified_split
from segmenter.classify.training import (
    infer,
    planned_steps,
    train_network,
)
from segmenter.embed import resolve_device, resolve_model_path
from segmenter.errors import SegmenterError
from segmenter.finetune import add_lora, load_sentence_transformer, merge_lora, seeded

logger = logging.getLogger(__name__)

#: Constructor parameters, in order; saved with the model.
PARAMS = ("encoder", "lora", "lora_rank", "head_init", "epochs", "lr", "head_lr", "weight_decay",
          "warmup_fraction", "batch_size", "max_steps", "max_length", "validation_fraction",
          "n_iter_no_change", "class_weight", "dropout", "device", "seed",
          "show_progress")  # fmt: skip


class CustomerClassifier:
    """Sentence encoder + mean pooling + linear head, fine-tuned on labelled texts.

    Parameters
    ----------
    encoder : str or path, optional
        A sentence-transformers folder; ``None`` uses the packaged all-MiniLM-L6-v2.
    lora : bool
        Train LoRA adapters on the attention projections (peft) instead of all weights.
    lora_rank : int
        Rank of the LoRA adapters.
    head_init : {"probe", "random"}
        ``probe`` starts the head from a logistic regression on the frozen embeddings of the
        training texts, its ``C`` picked on the validation split (linear probing, then
        fine-tuning: fewer steps, less feature distortion); ``random`` from a random layer.
    epochs : int
        Passes over the training set (fewer with early stopping or ``max_steps``).
    lr : float, optional
        Encoder learning rate; ``None`` means 5e-5, or 5e-4 with ``lora``.
    head_lr : float, optional
        Learning rate of the linear head; ``None`` means the encoder's rate with a probed
        head and 1e-2 with a random one.
    weight_decay : float
        AdamW weight decay of weight matrices.
    warmup_fraction : float in [0, 1)
        Share of the steps with a linear warm-up before the linear decay to zero.
    batch_size : int
        Texts per optimizer step (and per inference batch).
    max_steps : int, optional
        Cap on optimizer steps; keeps CPU training bounded.
    max_length : int, optional
        Token cap per text; ``None`` uses the encoder's ``max_seq_length``.
    validation_fraction : float in [0, 0.5]
        Stratified share of the training texts held out for early stopping on macro-F1;
        0 trains all epochs and keeps the last weights.
    n_iter_no_change : int
        Epochs without a better validation macro-F1 before stopping.
    class_weight : {"balanced"} or None
        Cross-entropy weights inversely proportional to class frequencies, or none.
    dropout : float in [0, 1)
        Dropout on the pooled embedding during training.
    device : {"auto", "cpu", "cuda"}
        ``auto`` picks CUDA when torch sees it; bf16 autocast is used on CUDA only.
    seed : int
        Seeds torch (inside a forked generator), the shuffling and the validation split:
        the same texts, labels and seed give identical predictions on CPU.
    show_progress : bool
        tqdm bars while training and predicting.

    Attributes
    ----------
    classes_ : ndarray of str of shape (n_classes,)
        Sorted class labels; column ``j`` of :meth:`predict_proba` is ``classes_[j]``.
    network_ : EncoderClassifier
        The fine-tuned network (LoRA adapters merged).
    encoder_ : sentence_transformers.SentenceTransformer
        The sentence-transformers model whose transformer was fine-tuned.
    device_ : str
        Device the network lives on.
    history_ : list of dict
        Per-epoch training loss and validation metrics.
    best_epoch_ : int
        Epoch whose weights were kept.
    n_steps_ : int
        Optimizer steps taken.
    n_validation_ : int
        Texts held out for early stopping.
    probe_c_ : float or None
        ``C`` of the linear probe the head started from (None with ``head_init="random"``).
    train_seconds_ : float
        Wall-clock seconds of :meth:`fit`.
    """

    def __init__(
        self,
        encoder: str | os.PathLike[str] | None = None,
        *,
        lora: bool = False,
        lora_rank: int = 8,
        head_init: str = "probe",
        epochs: int = 4,
        lr: float | None = None,
        head_lr: float | None = None,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.1,
        batch_size: int = 16,
        max_steps: int | None = 1000,
        max_length: int | None = None,
        validation_fraction: float = 0.15,
        n_iter_no_change: int = 2,
        class_weight: str | None = "balanced",
        dropout: float = 0.1,
        device: str = "auto",
        seed: int = 0,
        show_progress: bool = True,
    ) -> None:
        self.encoder = encoder
        self.lora = lora
        self.lora_rank = lora_rank
        self.head_init = head_init
        self.epochs = epochs
        self.lr = lr
        self.head_lr = head_lr
        self.weight_decay = weight_decay
        self.warmup_fraction = warmup_fraction
        self.batch_size = batch_size
        self.max_steps = max_steps
        self.max_length = max_length
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.class_weight = class_weight
        self.dropout = dropout
        self.device = device
        self.seed = seed
        self.show_progress = show_progress

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters as given."""
        return {name: getattr(self, name) for name in PARAMS}

    # -- validation --------------------------------------------------------------------------
    def check_params(self) -> None:
        """Raise :class:`SegmenterError` naming the first bad parameter; changes nothing."""
        check_params(self.get_params())

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, documents: Sequence[str], labels: Sequence[Any]) -> CustomerClassifier:
        """Fine-tune the encoder and the head on labelled documents.

        Parameters
        ----------
        documents : sequence of str of length n_samples
            One text per customer.
        labels : sequence of length n_samples
            Class of each text (compared as strings).

        Returns
        -------
        self
        """
        self.check_params()
        texts = [str(t) for t in documents]
        names = np.array([str(label) for label in labels])
        if len(texts) != len(names):
            raise SegmenterError(
                f"documents and labels differ in length: {len(texts)} != {len(names)}"
            )
        classes, y, counts = np.unique(names, return_inverse=True, return_counts=True)
        check_classes(dict(zip(classes.tolist(), counts.tolist(), strict=True)), min_per_class=1)
        device = resolve_device(self.device)
        started = time.perf_counter()
        train, val = stratified_split(y, self.validation_fraction, seed=self.seed)
        weight = np.ones(len(classes))
        if self.class_weight == "balanced":
            present = np.unique(y[train])
            weight[present] = compute_class_weight("balanced", classes=present, y=y[train])
        fitting = ([texts[i] for i in train], y[train])
        validation = ([texts[i] for i in val], y[val])
        probe_c: float | None = None
        with seeded(self.seed, device):
            encoder, net = self._build(device, len(classes))
            settings = resolve_settings(
                self.get_params(), max_seq_length=int(encoder.max_seq_length), device=device
            )
            steps = planned_steps(len(train), settings)
            logger.info(
                "fine-tuning %s on %d texts (%d validation), %d classes, %d steps on %s",
                "LoRA adapters" if self.lora else "the encoder",
                len(train),
                len(val),
                len(classes),
                steps,
                device,
            )
            if self.head_init == "probe":
                probe_c = fit_probe_head(
                    net,
                    encoder[0].tokenizer,
                    fitting,
                    validation,
                    class_weight=weight,
                    settings=settings,
                )
            result = train_network(
                net,
                encoder[0].tokenizer,
                fitting,
                validation,
                class_weight=weight,
                settings=settings,
                rng=np.random.default_rng(self.seed),
            )
        # peft adapts the encoder's own modules in place, so merging updates encoder_ too
        net.backbone = merge_lora(net.backbone)
        self.classes_ = classes
        self.encoder_ = encoder
        self.network_ = net
        self.device_ = device
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        self.n_steps_ = result.n_steps
        self.n_validation_ = len(val)
        self.probe_c_ = probe_c
        self.train_seconds_ = time.perf_counter() - started
        return self

    def _build(self, device: str, n_classes: int) -> tuple[Any, EncoderClassifier]:
        encoder = load_sentence_transformer(resolve_model_path(self.encoder), device)
        backbone = encoder[0].auto_model
        if self.lora:
            backbone = add_lora(backbone, rank=self.lora_rank)
        dim = int(encoder.get_embedding_dimension())
        net = EncoderClassifier(backbone, dim, n_classes, self.dropout).to(device)
        return encoder, net

    # -- predicting --------------------------------------------------------------------------
    def predict_proba(self, documents: Sequence[str]) -> np.ndarray:
        """Class probabilities.

        Returns
        -------
        ndarray of shape (n_samples, n_classes), float32; columns follow ``classes_``.
        """
        if not hasattr(self, "network_"):
            raise RuntimeError("CustomerClassifier is not fitted; call fit or load first")
        logits = infer(
            self.network_,
            self.encoder_[0].tokenizer,
            [str(t) for t in documents],
            batch_size=max(self.batch_size, 32),
            max_length=self.max_length or int(self.encoder_.max_seq_length),
            device=self.device_,
            show_progress=self.show_progress and len(documents) > 256,
        )
        return torch.softmax(torch.from_numpy(logits), dim=1).numpy()

    def predict(self, documents: Sequence[str]) -> np.ndarray:
        """Most probable class of each document, shape (n_samples,)."""
        return self.classes_[self.predict_proba(documents).argmax(axis=1)]

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], *, force: bool = False) -> None:
        """Write the model to folder ``path`` atomically (replace it only with ``force``)."""
        target = Path(path)
        if target.exists() and any(target.iterdir()) and not force:
            raise SegmenterError(f"'{target}' exists and is not empty; pass force=True")
        with io.atomic_dir(target, force=force) as tmp:
            self.write(tmp)

    def write(self, folder: str | os.PathLike[str]) -> None:
        """Write the model files into an existing folder (not atomic; see :meth:`save`)."""
        if not hasattr(self, "network_"):
            raise RuntimeError("CustomerClassifier is not fitted; call fit first")
        write_classifier(self, folder)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, device: str = "auto", show_progress: bool = True
    ) -> CustomerClassifier:
        """Load a model written by :meth:`save` onto ``device``."""
        return read_classifier(cls, path, device=device, show_progress=show_progress)
