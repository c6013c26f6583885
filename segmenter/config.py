"""Configuration of a discovery run (frozen; validated once, before any work starts)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from segmenter.checks import at_least, check_k, check_k_range
from segmenter.encoders.backends import check_backend
from segmenter.errors import SegmenterError
from segmenter.finetune.options import DeepOptions
from segmenter.fuse import DEFAULT_FUSION

Method = Literal["kmeans", "hdbscan"]
METHODS: tuple[str, ...] = ("kmeans", "hdbscan")
#: how documents become vectors (:mod:`segmenter.encoders.pieces`)
POOLINGS: tuple[str, ...] = ("auto", "pieces", "document")


@dataclass(frozen=True)
class SegmenterConfig:
    """Every option of the discovery pipeline; one ``seed`` drives every random step.

    Attributes
    ----------
    method : {"kmeans", "hdbscan"}
    k : int or "auto"
        Number of segments for k-means; ``"auto"`` picks it in ``k_range``.
    seed : int
        Seed of every random step: UMAP, FAISS, and torch in the deep head.
    value_tiers : int or "auto"
        How many value tiers the k segments are cut into before taste splits them further
        (1 = taste only, k = value only); ``"auto"`` chooses it per data set from the data
        (:func:`segmenter.balance.choose_tiers`), recorded in ``Segmenter.balance_``.
    feature_weight : float
        Variance of the behaviour block relative to the text block (0 = text only): of the
        value score on the 2-D map and with ``k="auto"``; of the standardized
        ``fusion_features`` with HDBSCAN. The fitted multiplier is ``Segmenter.feature_factor_``.
    deep : bool
        Refine the encoder from the frozen segments and segment again (the deep head).
    deep_options : DeepOptions
        How the encoder is refined.
    encoder_backend : {"auto", "torch", "torch-bf16", "onnx", "onnx-int8"}
        How the encoder's forward pass runs (:mod:`segmenter.encoders.backends`); ``auto``
        keeps torch on a GPU and on a CPU takes the fastest backend that agrees with fp32.
    pooling : {"auto", "pieces", "document"}
        ``document`` encodes each customer's document whole; ``pieces`` encodes each distinct
        item, category, search and review once and averages them per customer
        (:mod:`segmenter.encoders.pieces`: the same value/taste balance on every shop of the
        balance benchmark at a fraction of the encoder's work, but a lifecycle group whose
        taste is random, such as lapsed one-time buyers, is no longer found by taste: planted
        ARI 0.93 -> 0.73 on the synthetic archetypes); ``auto`` is ``document``.
    deep_keep_behaviour : float in [0, 1]
        With ``deep``, keep the refined segments only when they explain at least this share
        of the frozen segments' behaviour separation (mean eta^2 of the scaled behaviour
        features); otherwise the frozen encoder and segments stay.
    """

    method: Method = "kmeans"
    k: int | Literal["auto"] = 8
    k_range: tuple[int, int] = (3, 14)
    seed: int = 0
    value_tiers: int | Literal["auto"] = "auto"
    feature_weight: float = 0.6
    fusion_features: tuple[str, ...] = DEFAULT_FUSION
    pca_dims: int = 50
    umap_dims: int = 10
    umap_neighbors: int = 15
    umap_sample: int = 50_000
    n_restarts: int = 30
    n_iter: int = 50
    min_cluster_size: int | None = None
    assign_outliers: bool = False
    max_tokens: int = 128
    encoder: str | None = None
    device: str = "auto"
    encoder_backend: str = "auto"
    batch_size: int = 64
    pooling: str = "auto"
    deep: bool = False
    deep_options: DeepOptions = field(default_factory=DeepOptions)
    deep_keep_behaviour: float = 0.99

    def validate(self) -> SegmenterConfig:
        """Raise :class:`SegmenterError` for the first bad option; return self."""
        if self.method not in METHODS:
            raise SegmenterError(f"--method: '{self.method}' is not one of {list(METHODS)}")
        check_k(self.k)
        check_k_range(self.k_range)
        at_least("--seed", self.seed, 0)
        if self.value_tiers != "auto":
            at_least("--value-tiers", self.value_tiers, 1)
            if self.k != "auto" and self.value_tiers > self.k:
                raise SegmenterError(
                    f"--value-tiers: {self.value_tiers} should be <= --k={self.k} or 'auto'"
                )
        at_least("--feature-weight", self.feature_weight, 0, integer=False)
        for name in ("pca_dims", "umap_dims"):
            at_least(f"--{name.replace('_', '-')}", getattr(self, name), 0)
        at_least("--umap-neighbors", self.umap_neighbors, 2)
        at_least("--umap-sample", self.umap_sample, 100)
        at_least("n_restarts", self.n_restarts, 1)
        at_least("n_iter", self.n_iter, 1)
        if self.min_cluster_size is not None:
            at_least("--min-cluster-size", self.min_cluster_size, 2)
        at_least("--max-tokens", self.max_tokens, 16)
        at_least("--batch-size", self.batch_size, 1)
        check_backend(self.encoder_backend)
        if self.encoder is not None:
            from segmenter.embed import resolve_model_path

            resolve_model_path(self.encoder)  # a local folder, never a hub name
        if self.pooling not in POOLINGS:
            raise SegmenterError(f"--pooling: {self.pooling!r} is not one of {list(POOLINGS)}")
        if self.pooling == "pieces" and self.deep:
            raise SegmenterError(
                "--pooling: 'pieces' cannot be combined with --deep (the deep head fine-tunes "
                "the encoder on whole documents); use --pooling auto or document"
            )
        if not isinstance(self.deep_options, DeepOptions):
            raise SegmenterError(
                f"deep_options: {type(self.deep_options).__name__} should be a DeepOptions"
            )
        self.deep_options.validate()
        keep = self.deep_keep_behaviour
        if not isinstance(keep, int | float) or isinstance(keep, bool) or not 0 <= keep <= 1:
            raise SegmenterError(f"--deep-keep-behaviour: {keep!r} should be in [0, 1]")
        return self

    def replace(self, **changes: Any) -> SegmenterConfig:
        return dataclasses.replace(self, **changes)

    @property
    def resolved_pooling(self) -> str:
        """``pooling`` with ``auto`` resolved: ``document`` (see the attribute's notes)."""
        return "document" if self.pooling == "auto" else self.pooling

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (run.json, the model folder); :meth:`from_dict` reads it back."""
        out = dataclasses.asdict(self)
        out["k_range"] = list(self.k_range)
        out["fusion_features"] = list(self.fusion_features)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmenterConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "k_range" in kwargs:
            kwargs["k_range"] = tuple(kwargs["k_range"])
        if "fusion_features" in kwargs:
            kwargs["fusion_features"] = tuple(kwargs["fusion_features"])
        # a model fitted before encoder backends existed ran torch fp32
        kwargs.setdefault("encoder_backend", "torch")
        kwargs.setdefault("pooling", "document")  # ... and encoded whole documents
        if "deep_options" in kwargs:
            kwargs["deep_options"] = DeepOptions.from_dict(kwargs["deep_options"])
        return cls(**kwargs)
