"""The :class:`Segmenter`: documents -> embedding -> taste space + value score -> segments.

``fit`` discovers segments on a customer base; ``predict`` places new customers in them with the
same recipe, encoder, reduction, value axis and centres; ``save``/``load`` keep all of it in a
folder of data (:mod:`segmenter.modelfolder`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from segmenter import segment
from segmenter.balance import ValueAxis
from segmenter.checks import check_enough
from segmenter.cluster import DensityClusterer
from segmenter.config import SegmenterConfig
from segmenter.data import EventData
from segmenter.documents import DocumentRecipe
from segmenter.embed import (
    EmbeddingCache,
    Encoder,
    SentenceTransformerEncoder,
    embed_documents,
    onnx_cache_of,
)
from segmenter.encoders.pieces import PiecesEncoder
from segmenter.errors import SegmenterError
from segmenter.fuse import FeatureScaler, feature_factor, fuse
from segmenter.lineage.carry import SegmentIds
from segmenter.lineage.drift import DriftReference
from segmenter.quality import behaviour_separation, clustering_quality
from segmenter.reduce import Reducer
from segmenter.segment import Behaviour, Placed, Segmented

logger = logging.getLogger(__name__)

# what _segment fits: restored when the deep head's segments are not kept
SEGMENT_STATE = (
    "text_reducer_", "feature_factor_", "reducer_", "map_", "clusterer_", "taste_",
    "k_curve_", "k_", "balance_",
)  # fmt: skip
#: value tiers of the ``value_tier`` column (fewer when k is smaller)
VALUE_TIERS = 4
#: the report's 2-D map is fitted on at most this many customers (seeded sample); the others
#: are placed by their nearest fitted neighbours, as new customers are
MAP_SAMPLE = 5_000


#: the largest peak :func:`peak_rss_mb` has read, MB, and the process it was read in (a forked
#: child starts again from its own)
_PEAK_MB, _PEAK_PID = 0.0, 0


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process so far, in MB; None where the platform has no
    ``resource`` module (Windows).

    On Linux it is ``VmHWM`` of ``/proc/self/status``: the high-water mark of this program's
    own memory. ``ru_maxrss`` is not: Linux starts a child's at its parent's resident size when
    it forks and keeps it across ``exec``, so a command started by a large process (a benchmark
    that generated a million customers) reported the parent's memory as its own. The kernel
    syncs ``VmHWM`` lazily (it may read the current size, then a lower mark once memory is
    freed), so the largest value read so far is returned: a peak never goes down.
    """
    global _PEAK_MB, _PEAK_PID
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    mark = round(int(line.split()[1]) * 1.024 / 1e3, 1)  # kB
                    if os.getpid() != _PEAK_PID:
                        _PEAK_MB, _PEAK_PID = 0.0, os.getpid()
                    _PEAK_MB = max(_PEAK_MB, mark)
                    return _PEAK_MB
    except OSError:
        pass
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / 1e6 if sys.platform == "darwin" else peak * 1.024 / 1e3, 1)


class Segmenter:
    """Customer segmentation driven by a sentence encoder.

    Parameters
    ----------
    config : SegmenterConfig, optional
        All options; defaults are the benchmarked ones.
    encoder : Encoder, optional
        Any object with ``identity`` and ``encode(texts)``; default: the configured
        sentence-transformers folder (packaged all-MiniLM-L6-v2 unless ``config.encoder``).
    cache : EmbeddingCache, optional
        Embedding cache; re-runs only encode documents that changed.
    progress : bool
        Progress bars on long stages.
    """

    def __init__(
        self,
        config: SegmenterConfig | None = None,
        *,
        encoder: Encoder | None = None,
        cache: EmbeddingCache | None = None,
        progress: bool = True,
    ) -> None:
        self.config = config
        self.encoder = encoder
        self.cache = cache
        self.progress = progress

    # -- helpers -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _stage(self, name: str, timings: dict[str, float] | None = None) -> Iterator[None]:
        """Time a stage: into ``timings_`` (fit; seconds summed and rounded to ms, logged at
        INFO) or into ``timings`` (one transform/predict call; exact seconds, logged at DEBUG
        since a service places customers one at a time)."""
        level = logging.INFO if timings is None else logging.DEBUG
        start = time.perf_counter()
        logger.log(level, "stage %s ...", name)
        yield
        seconds = time.perf_counter() - start
        if timings is None:
            self.timings_[name] = round(self.timings_.get(name, 0.0) + seconds, 3)
            self.peak_rss_mb_[name] = peak_rss_mb()
        else:
            timings[name] = timings.get(name, 0.0) + seconds
        logger.log(level, "stage %s done in %.1fs", name, seconds)

    def _encoder(self) -> Encoder:
        if self.encoder is None:
            cfg = self.config_
            self.encoder = SentenceTransformerEncoder(
                cfg.encoder,
                device=cfg.device,
                batch_size=cfg.batch_size,
                show_progress=self.progress,
                backend=cfg.encoder_backend,
                onnx_cache=onnx_cache_of(self.cache),
            )
        return self.encoder

    def embedder(self) -> Encoder:
        """What turns documents into vectors: the encoder, or its pooling of document pieces
        (``config.pooling``, :mod:`segmenter.encoders.pieces`) with the fitted catalogue."""
        encoder = self._encoder()
        if self.config_.resolved_pooling != "pieces":
            return encoder
        pieces = getattr(self, "_pieces", None)
        if pieces is None or pieces.base is not encoder:
            catalogue = getattr(self, "catalogue_", None)
            known = None if catalogue is None else catalogue.as_dict()
            pieces = PiecesEncoder(encoder, self.cache, known)
            self._pieces: PiecesEncoder | None = pieces
        return pieces

    def embed(self, texts: list[str]) -> np.ndarray:
        """Vectors of documents as this model embeds them (through its cache), shape
        (n_texts, dim): what explanations and other engines must use."""
        return embed_documents(self.embedder(), texts, self.cache)[0]

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, data: EventData, *, as_of: datetime | None = None) -> Segmenter:
        """Discover segments in ``data``.

        ``as_of`` is the reference date of recency and tenure (default: the last event of
        ``data``); an engine that fits on a sample of customers passes the whole base's.

        Fitted attributes: ``assignments_`` (one row per customer), ``recipe_`` (events ->
        features and documents), ``features_``, ``documents_``, ``reduced_`` (n_users, dims:
        the space the segments live in), ``k_``, ``k_curve_``, ``balance_`` (the value tiers
        and how they were chosen), ``quality_``, ``timings_``, ``peak_rss_mb_`` (the process's
        peak resident memory at the end of each stage, MB), ``embedding_stats_``.
        """
        cfg = self.config_ = (self.config or SegmenterConfig()).validate()
        self.timings_: dict[str, float] = {}
        self.peak_rss_mb_: dict[str, float | None] = {}
        self.segment_ids_: SegmentIds | None = None  # stable ids: segmenter.lineage
        n_users = data.n_users
        if cfg.method == "kmeans" and cfg.k != "auto":
            check_enough(n_users, int(cfg.k))
        if n_users < 3:
            raise SegmenterError(f"n_customers={n_users} should be >= 3 to find segments")
        self.recipe_ = DocumentRecipe(max_tokens=cfg.max_tokens)
        with self._stage("features"):
            features = self.recipe_.fit_features(data.events, as_of=as_of)
        with self._stage("documents"):
            self.recipe_.fit_documents(data.events, features, data.users)
            documents = self.recipe_.documents(data.events, features, data.users)
        with self._stage("embed"):
            if getattr(self, "base_encoder_", None) is not None:
                self.encoder = self.base_encoder_  # a refit after a deep fit starts from the base
            encoder = self._encoder()
            self.catalogue_, self._pieces = None, None
            embedder = self.embedder()
            emb, self.embedding_stats_ = embed_documents(
                embedder, documents["document"].to_list(), self.cache
            )
        self.scaler_ = FeatureScaler(cfg.fusion_features).fit(features)
        scaled = self.scaler_.transform(features)
        with self._stage("value"):
            check = segment.value_history(data.events, features)
            self.value_axis_ = ValueAxis(VALUE_TIERS).fit(features, check)
            score = self.value_axis_.transform(features)
            past = None
            if check is not None and cfg.method == "kmeans" and cfg.value_tiers == "auto":
                past = segment.past_documents(
                    self.recipe_, data.events, documents, data.users, check, cfg.seed
                )
        behaviour = Behaviour(data.events, features, scaled, score, check, past)
        segmented = self._segment(emb, behaviour, embedder)
        if isinstance(embedder, PiecesEncoder):
            self.catalogue_ = embedder.learn(documents["document"].to_list())
        if cfg.deep:
            segmented = self._deep(encoder, documents, emb, behaviour, segmented)
        reduced, labels = segmented.reduced, segmented.labels
        with self._stage("profile"):
            from segmenter.profile import name_segments

            self.segment_names_ = name_segments(features, labels, data.events)
            self.quality_ = clustering_quality(reduced, labels, seed=cfg.seed)
        self.features_, self.documents_, self.reduced_ = features, documents, reduced
        taste = self.text_reducer_.transform(emb) if cfg.method == "hdbscan" else reduced
        self.assignments_ = self._assignments(
            features["user_id"], segmented, score, self.taste_.predict(taste)[0]
        )
        self.reference_ = DriftReference().fit(features, self.assignments_, data.events)
        return self

    def _deep(
        self,
        encoder: Encoder,
        documents: pl.DataFrame,
        emb: np.ndarray,
        behaviour: Behaviour,
        frozen: Segmented,
    ) -> Segmented:
        """Refine the encoder on the taste groups of most customers, judge each checkpoint on
        the others (:mod:`segmenter.finetune.acceptance`) and segment again; keep the frozen
        encoder and segments when no checkpoint passes, or when the new segments explain less
        of the behaviour features (data whose behaviour varies)."""
        from segmenter.finetune import refine, sentence_transformer_of
        from segmenter.finetune.acceptance import NEIGHBOURS, Acceptance, consistency, held_out

        cfg = self.config_
        texts = documents["document"].to_list()
        st = sentence_transformer_of(encoder)
        kept = {name: getattr(self, name) for name in SEGMENT_STATE}
        # each segmentation pass, kept or not (diagnostics, benchmarks): frozen, then tuned
        self.deep_passes_: list[Segmented] = [frozen]
        self.base_encoder_ = encoder  # a refit starts again from it, not from the refined one
        # train and judge on what the segments are about: the taste space and its groups
        taste = frozen.reduced if self.reducer_ is None else self.text_reducer_.transform(emb)
        labels = self.taste_.labels_
        k = int(labels.max()) + 1
        held = held_out(len(texts), cfg.seed)
        if held.sum() < max(3 * k, NEIGHBOURS + 1):
            self.deep_report_: dict[str, Any] = {"options": cfg.deep_options.to_dict()}
            return self._keep_frozen(kept, frozen, f"{int(held.sum())} held-out customers are "
                                     f"too few to judge a fine-tuning at k={k}")  # fmt: skip
        judge = Acceptance(k, seed=cfg.seed).fit(taste[held])
        with self._stage("deep"):
            refined = refine.refine_encoder(
                st, [t for t, h in zip(texts, held, strict=True) if not h], labels[~held],
                cfg.deep_options, seed=cfg.seed, base_identity=encoder.identity,
                space=taste[~held], progress=self.progress,
                held_out=([t for t, h in zip(texts, held, strict=True) if h], judge),
            )  # fmt: skip
        self.deep_report_ = {**refined.report(), "held_out_customers": int(held.sum())}
        if refined.best_step == 0:
            last = refined.history[-1] if refined.history else {}
            self.deep_report_["acceptance"] = {
                name[len("held_out_") :]: v for name, v in last.items() if "held_out_" in name
            } or None
            why = last.get("held_out_rejected_because") or "no gain over the frozen encoder"
            return self._keep_frozen(kept, frozen, f"no fine-tuned checkpoint passed the "
                                     f"acceptance rule on held-out customers ({why})")  # fmt: skip
        try:
            with self._stage("embed"):
                tuned_emb, _ = embed_documents(refined.encoder, texts, self.cache)
            tuned = self._segment(tuned_emb, behaviour, refined.encoder)
            self.deep_passes_.append(tuned)
        except SegmenterError as exc:  # the refined space cannot hold k segments: keep frozen
            return self._keep_frozen(kept, frozen, str(exc))
        except BaseException:
            self._restore(kept)
            raise
        verdict = judge.judge(tuned_emb[held])  # the shipped encoder, as the pipeline embeds
        agrees = consistency(
            frozen.reduced, frozen.labels, tuned.labels, seed=cfg.seed, restarts=cfg.n_restarts
        )
        before = behaviour_separation(behaviour.scaled, frozen.labels)
        after = behaviour_separation(behaviour.scaled, tuned.labels)
        # behaviour has a say only where segments use it (value tiers, HDBSCAN's fused
        # features); eta^2 only grows with more groups (k = auto, HDBSCAN): it passes easier
        tiers = (kept["balance_"] or {}).get("n_tiers", 1)
        check = kept["reducer_"] is not None or tiers > 1
        self.deep_report_.update(
            acceptance=verdict, consistency=agrees, keep_behaviour=cfg.deep_keep_behaviour,
            behaviour_check=check,
            behaviour_separation={"frozen": before, "deep": after},
        )  # fmt: skip
        why = verdict["rejected_because"]
        if why:
            why = f"the fine-tuned encoder fails the acceptance rule on held-out customers ({why})"
        elif agrees["rejected_because"]:
            why = (
                f"the fine-tuned segments drift from the frozen ones ({agrees['rejected_because']})"
            )
        elif check and after < cfg.deep_keep_behaviour * before:
            why = (
                f"the fine-tuned segments explain less of the behaviour features "
                f"(mean eta^2 {after:.3f} against {before:.3f})"
            )
        if why:
            return self._keep_frozen(kept, frozen, why)
        self.deep_report_["accepted"] = True
        self.encoder = refined.encoder
        return tuned

    def _keep_frozen(self, kept: dict[str, Any], frozen: Segmented, reason: str) -> Segmented:
        logger.warning("deep clustering: %s; keeping the frozen encoder and segments", reason)
        self._restore(kept)
        self.deep_report_.update(accepted=False, rejected_because=reason)
        return frozen

    def _restore(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def _segment(self, emb: np.ndarray, behaviour: Behaviour, encoder: Encoder) -> Segmented:
        """Taste space and value score -> segments (k-means: value tiers split by taste;
        HDBSCAN: density clusters of the fused space), the 2-D map and the taste groups.
        ``encoder`` made ``emb`` (it encodes the value check's documents at its cut-off)."""
        cfg = self.config_
        events, features, scaled, score, check, past = behaviour
        with self._stage("reduce"):
            self.text_reducer_ = self._reducer(cfg.pca_dims, 0)
            taste = self.text_reducer_.fit_transform(emb)
        self.k_curve_: list[dict[str, float]] = []
        self.balance_: dict[str, Any] | None = None
        self.reducer_: Reducer | None = None
        if cfg.method == "hdbscan":
            with self._stage("fuse"):
                self.feature_factor_ = feature_factor(
                    emb, len(cfg.fusion_features), cfg.feature_weight
                )
                fused = fuse(emb, scaled, self.feature_factor_)
            with self._stage("reduce"):
                self.reducer_ = self._reducer(cfg.pca_dims, cfg.umap_dims)
                reduced = shown = self.reducer_.fit_transform(fused)
            with self._stage("cluster"):
                self.clusterer_: Any = DensityClusterer(
                    min_cluster_size=cfg.min_cluster_size, assign_outliers=cfg.assign_outliers
                ).fit(reduced)
                self.k_ = len(self.clusterer_.cluster_centers_)
                _, confidence, distance = self.clusterer_.predict(reduced)
        else:
            self.feature_factor_ = segment.value_factor(taste, cfg)
            reduced, shown = taste, segment.map_input(taste, score, self.feature_factor_)
            past_taste = None
            if past is not None:
                with self._stage("value"):
                    past_emb = segment.past_embedding(
                        past, emb, lambda texts: embed_documents(encoder, texts, self.cache)[0]
                    )
                    past_taste = self.text_reducer_.transform(past_emb)
            with self._stage("cluster"):
                self.k_, self.k_curve_ = segment.resolve_k(cfg, shown)
                self.clusterer_, self.balance_ = segment.fit_tiers(
                    taste, score, features, events, past.check if past else check, cfg,
                    self.k_, past_taste, past.weights if past else None,
                )  # fmt: skip
                _, confidence, distance = self.clusterer_.predict(taste, score)
        labels = self.clusterer_.labels_
        with self._stage("cluster"):
            self.taste_ = segment.taste_groups(taste, max(2, self.k_), cfg)
        with self._stage("map"):
            self.map_ = Reducer(
                pca_dims=0, umap_dims=2, n_neighbors=cfg.umap_neighbors, min_dist=0.1,
                sample_size=min(cfg.umap_sample, MAP_SAMPLE), random_state=cfg.seed,
                engine="numpy",
            )  # fmt: skip
            coords = self.map_.fit_transform(shown) if shown.shape[1] > 2 else shown[:, :2]
        return Segmented(reduced, coords, labels, confidence, distance)

    def _reducer(self, pca_dims: int, umap_dims: int) -> Reducer:
        cfg = self.config_
        return Reducer(
            pca_dims=pca_dims,
            umap_dims=umap_dims,
            n_neighbors=cfg.umap_neighbors,
            min_dist=0.0,
            sample_size=cfg.umap_sample,
            random_state=cfg.seed,
        )

    def _assignments(
        self, user_id: pl.Series, placed: Segmented, score: np.ndarray, taste_group: np.ndarray
    ) -> pl.DataFrame:
        labels, coords = placed.labels, placed.coords
        if getattr(self, "segment_ids_", None) is not None:
            labels = self.segment_ids_.map(labels)  # type: ignore[union-attr]
        names = [self.segment_names_.get(int(s), "Outliers") for s in labels]
        return pl.DataFrame(
            {
                "user_id": user_id,
                "segment": pl.Series(labels, dtype=pl.Int64),
                "segment_name": pl.Series(names, dtype=pl.String),
                "confidence": pl.Series(placed.confidence, dtype=pl.Float32),
                "distance": pl.Series(placed.distance, dtype=pl.Float32),
                "map_x": pl.Series(coords[:, 0], dtype=pl.Float32),
                "map_y": pl.Series(coords[:, 1], dtype=pl.Float32),
                "value_tier": pl.Series(self.value_axis_.tiers(score), dtype=pl.Int64),
                "taste_group": pl.Series(taste_group, dtype=pl.Int64),
            }
        )

    # -- using -------------------------------------------------------------------------------
    #: Stages a :meth:`predict` call records in ``last_timings_``, in order (:meth:`transform`
    #: records the first five).
    PREDICT_STAGES = ("features", "documents", "embed", "fuse", "reduce", "cluster", "map")

    def transform(self, data: EventData) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray]:
        """Features, documents and reduced coordinates of (new) customers.

        Records the seconds of each stage of the call in ``last_timings_`` (a dict: features,
        documents, embed, fuse, reduce), replaced by each call.

        Returns
        -------
        features : polars.DataFrame
            One row per customer: user_id and the behaviour features.
        documents : polars.DataFrame
            One row per customer, its text in the ``document`` column.
        reduced : ndarray of shape (n_users, n_dims)
            The space the segments live in.
        """
        timings: dict[str, float] = {}
        placed = self._transform(data, timings)
        self.last_timings_ = timings
        return placed.features, placed.documents, placed.reduced

    def _transform(self, data: EventData, timings: dict[str, float]) -> Placed:
        if not hasattr(self, "clusterer_"):
            raise RuntimeError("Segmenter is not fitted; call fit or load first")
        with self._stage("features", timings):
            features = self.recipe_.features(data.events)
        with self._stage("documents", timings):
            documents = self.recipe_.documents(data.events, features, data.users)
        with self._stage("embed", timings):
            texts = documents["document"].to_list()
            emb = self.embed(texts)
        with self._stage("fuse", timings):
            score = self.value_axis_.transform(features)
            fused = None
            if self.reducer_ is not None:
                fused = fuse(emb, self.scaler_.transform(features), self.feature_factor_)
        with self._stage("reduce", timings):
            taste = self.text_reducer_.transform(emb)
            if self.reducer_ is None:
                reduced, shown = taste, segment.map_input(taste, score, self.feature_factor_)
            else:
                reduced = shown = self.reducer_.transform(fused)  # type: ignore[arg-type]
        return Placed(features, documents, taste, score, reduced, shown)

    def predict(self, data: EventData, *, map_coords: bool = True) -> pl.DataFrame:
        """Place customers in the fitted segments.

        Records the seconds of each stage of the call in ``last_timings_``, a dict with the
        keys of :attr:`PREDICT_STAGES` (``map`` is ~0 with ``map_coords=False``), replaced by
        each call; what a latency benchmark or a service reads instead of timing the stages
        itself. With calls overlapping on threads it holds the last call to finish.

        Parameters
        ----------
        data : EventData
            Events (and users) of the customers to place.
        map_coords : bool
            Project them onto the report's 2-D map; ``False`` skips that projection (a few
            milliseconds per call, which matters when placing one customer at a time) and
            leaves ``map_x``/``map_y`` NaN.

        Returns
        -------
        polars.DataFrame
            user_id, segment, segment_name, confidence, distance, map_x, map_y, value_tier,
            taste_group.
        """
        return self.place(data, map_coords=map_coords)[0]

    def place(
        self, data: EventData, *, map_coords: bool = True
    ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        """:meth:`predict`, with what the customers were placed by: (assignments, features,
        documents), one row per customer each (what a profile of them reads)."""
        timings: dict[str, float] = {}
        p = self._transform(data, timings)
        with self._stage("cluster", timings):
            if self.reducer_ is None:
                labels, confidence, distance = self.clusterer_.predict(p.taste, p.score)
            else:
                labels, confidence, distance = self.clusterer_.predict(p.reduced)
            taste_group = self.taste_.predict(p.taste)[0]
        with self._stage("map", timings):
            if not map_coords:
                coords = np.full((len(p.reduced), 2), np.nan, dtype=np.float32)
            elif getattr(self.map_, "umap_", None) is not None:
                coords = self.map_.transform(p.shown)
            else:
                coords = p.shown[:, :2]
        self.last_timings_ = timings
        placed = Segmented(p.reduced, coords, labels, confidence, distance)
        assigned = self._assignments(p.features["user_id"], placed, p.score, taste_group)
        return assigned, p.features, p.documents

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the fitted model into the folder ``path`` (created; files replaced): data
        only (JSON and ``.npy``; a fine-tuned encoder as safetensors), see
        :mod:`segmenter.modelfolder`."""
        from segmenter.modelfolder import save_model

        save_model(self, path, self._encoder())

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        encoder: Encoder | None = None,
        cache: EmbeddingCache | None = None,
        device: str = "auto",
        progress: bool = True,
    ) -> Segmenter:
        """Load a model folder written by :meth:`save`; it reads data only (JSON, ``.npy``)."""
        from segmenter.modelfolder import load_model

        return load_model(cls, path, encoder=encoder, cache=cache, device=device, progress=progress)
