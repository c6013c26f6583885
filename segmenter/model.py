"""The :class:`Segmenter`: documents -> embedding -> fusion -> reduction -> clusters.

``fit`` discovers segments on a customer base; ``predict`` places new customers in them with the
same document builder, encoder, scaler, reduction and centres; ``save``/``load`` keep all of it
in a folder.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import polars as pl

from segmenter import __version__, io
from segmenter.checks import check_enough
from segmenter.cluster import DensityClusterer, KMeansClusterer, select_k
from segmenter.config import SegmenterConfig
from segmenter.data import EventData
from segmenter.documents import DocumentRecipe
from segmenter.embed import (
    DEFAULT_ENCODER,
    EmbeddingCache,
    Encoder,
    SentenceTransformerEncoder,
    embed_documents,
    folder_identity,
)
from segmenter.errors import SegmenterError
from segmenter.fuse import FeatureScaler, feature_factor, fuse
from segmenter.persist import FORMAT, MODEL_FILE, load_stage, read_model_file, save_stage
from segmenter.quality import behaviour_separation, clustering_quality
from segmenter.reduce import Reducer

logger = logging.getLogger(__name__)

#: fitted stages saved as data, each ``self.<name>_`` (see :mod:`segmenter.persist`)
STAGES = ("scaler", "reducer", "map", "clusterer")
# what _segment fits: restored when the deep head's segments are not kept
SEGMENT_STATE = ("feature_factor_", "reducer_", "map_", "clusterer_", "k_curve_", "k_")


class Segmented(NamedTuple):
    """What one fuse -> reduce -> map -> cluster pass gives, one row per customer."""

    reduced: np.ndarray
    coords: np.ndarray
    labels: np.ndarray
    confidence: np.ndarray
    distance: np.ndarray


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
            )
        return self.encoder

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, data: EventData) -> Segmenter:
        """Discover segments in ``data``.

        Fitted attributes: ``assignments_`` (one row per customer), ``recipe_`` (events ->
        features and documents), ``features_``, ``documents_``, ``reduced_`` (n_users, dims),
        ``k_``, ``k_curve_``, ``quality_``, ``timings_``, ``embedding_stats_``.
        """
        cfg = self.config_ = (self.config or SegmenterConfig()).validate()
        self.timings_: dict[str, float] = {}
        n_users = data.n_users
        if cfg.method == "kmeans" and cfg.k != "auto":
            check_enough(n_users, int(cfg.k))
        if n_users < 3:
            raise SegmenterError(f"n_customers={n_users} should be >= 3 to find segments")
        self.recipe_ = DocumentRecipe(max_tokens=cfg.max_tokens)
        with self._stage("features"):
            features = self.recipe_.fit_features(data.events)
        with self._stage("documents"):
            self.recipe_.fit_documents(data.events, features, data.users)
            documents = self.recipe_.documents(data.events, features, data.users)
        with self._stage("embed"):
            if getattr(self, "base_encoder_", None) is not None:
                self.encoder = self.base_encoder_  # a refit after a deep fit starts from the base
            encoder = self._encoder()
            emb, self.embedding_stats_ = embed_documents(
                encoder, documents["document"].to_list(), self.cache
            )
        self.scaler_ = FeatureScaler(cfg.fusion_features).fit(features)
        scaled = self.scaler_.transform(features)
        segmented = self._segment(emb, scaled)
        if cfg.deep:
            segmented = self._deep(encoder, documents, scaled, segmented)
        reduced, coords, labels, confidence, distance = segmented
        with self._stage("profile"):
            from segmenter.profile import name_segments

            self.segment_names_ = name_segments(features, labels, data.events)
            self.quality_ = clustering_quality(reduced, labels, seed=cfg.seed)
        self.features_, self.documents_, self.reduced_ = features, documents, reduced
        self.assignments_ = self._assignments(
            features["user_id"], labels, confidence, distance, coords
        )
        return self

    def _deep(
        self, encoder: Encoder, documents: pl.DataFrame, scaled: np.ndarray, frozen: Segmented
    ) -> Segmented:
        """Refine the encoder from the frozen segments and segment again; keep the frozen
        encoder and segments when the new ones explain less of the behaviour features."""
        from segmenter.finetune import refine, sentence_transformer_of

        cfg = self.config_
        texts = documents["document"].to_list()
        st = sentence_transformer_of(encoder)
        kept = {name: getattr(self, name) for name in SEGMENT_STATE}
        self.base_encoder_ = encoder  # a refit starts again from it, not from the refined one
        with self._stage("deep"):
            refined = refine.refine_encoder(
                st, texts, frozen.labels, cfg.deep_options, seed=cfg.seed,
                base_identity=encoder.identity, space=frozen.reduced, progress=self.progress,
            )  # fmt: skip
        self.deep_report_ = refined.report()
        try:
            with self._stage("embed"):
                emb, _ = embed_documents(refined.encoder, texts, self.cache)
            tuned = self._segment(emb, scaled)
        except BaseException:
            self._restore(kept)
            raise
        before = behaviour_separation(scaled, frozen.labels)
        after = behaviour_separation(scaled, tuned.labels)
        # eta^2 can only grow with more groups: with k = auto or HDBSCAN a fine-tuned run that
        # finds more segments passes more easily
        accepted = after >= cfg.deep_keep_behaviour * before
        self.deep_report_.update(
            keep_behaviour=cfg.deep_keep_behaviour,
            behaviour_separation={"frozen": before, "deep": after},
            accepted=accepted,
        )
        if accepted:
            self.encoder = refined.encoder
            return tuned
        logger.warning(
            "deep clustering: the fine-tuned segments explain less of the behaviour features "
            "(mean eta^2 %.3f against %.3f); keeping the frozen encoder and segments",
            after, before,
        )  # fmt: skip
        self._restore(kept)
        return frozen

    def _restore(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def _segment(self, emb: np.ndarray, scaled: np.ndarray) -> Segmented:
        """Fuse with the scaled behaviour features, reduce, draw the map and cluster."""
        cfg = self.config_
        with self._stage("fuse"):
            self.feature_factor_ = feature_factor(emb, len(cfg.fusion_features), cfg.feature_weight)
            fused = fuse(emb, scaled, self.feature_factor_)
        with self._stage("reduce"):
            self.reducer_ = self._reducer(cfg.umap_dims)
            reduced = self.reducer_.fit_transform(fused)
            self.map_ = Reducer(
                pca_dims=0,
                umap_dims=2,
                n_neighbors=cfg.umap_neighbors,
                min_dist=0.1,
                sample_size=cfg.umap_sample,
                random_state=cfg.seed,
            )
            coords = self.map_.fit_transform(reduced) if cfg.umap_dims > 2 else reduced[:, :2]
        with self._stage("cluster"):
            self.k_curve_: list[dict[str, float]] = []
            self.clusterer_ = self._cluster(reduced)
            _, confidence, distance = self.clusterer_.predict(reduced)
            labels = self.clusterer_.labels_
        return Segmented(reduced, coords, labels, confidence, distance)

    def _reducer(self, umap_dims: int) -> Reducer:
        cfg = self.config_
        return Reducer(
            pca_dims=cfg.pca_dims,
            umap_dims=umap_dims,
            n_neighbors=cfg.umap_neighbors,
            min_dist=0.0,
            sample_size=cfg.umap_sample,
            random_state=cfg.seed,
        )

    def _cluster(self, reduced: np.ndarray) -> KMeansClusterer | DensityClusterer:
        cfg = self.config_
        if cfg.method == "hdbscan":
            clusterer: Any = DensityClusterer(
                min_cluster_size=cfg.min_cluster_size, assign_outliers=cfg.assign_outliers
            ).fit(reduced)
            self.k_ = len(clusterer.cluster_centers_)
            return clusterer
        k = cfg.k
        if k == "auto":
            k, self.k_curve_ = select_k(reduced, cfg.k_range, random_state=cfg.seed)
            logger.info("chose k=%d", k)
        self.k_ = int(k)
        return KMeansClusterer(
            self.k_, n_restarts=cfg.n_restarts, n_iter=cfg.n_iter, random_state=cfg.seed
        ).fit(reduced)

    def _assignments(
        self,
        user_id: pl.Series,
        labels: np.ndarray,
        confidence: np.ndarray,
        distance: np.ndarray,
        coords: np.ndarray,
    ) -> pl.DataFrame:
        names = [self.segment_names_.get(int(s), "Outliers") for s in labels]
        return pl.DataFrame(
            {
                "user_id": user_id,
                "segment": pl.Series(labels, dtype=pl.Int64),
                "segment_name": pl.Series(names, dtype=pl.String),
                "confidence": pl.Series(confidence, dtype=pl.Float32),
                "distance": pl.Series(distance, dtype=pl.Float32),
                "map_x": pl.Series(coords[:, 0], dtype=pl.Float32),
                "map_y": pl.Series(coords[:, 1], dtype=pl.Float32),
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
        out = self._transform(data, timings)
        self.last_timings_ = timings
        return out

    def _transform(
        self, data: EventData, timings: dict[str, float]
    ) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray]:
        if not hasattr(self, "clusterer_"):
            raise RuntimeError("Segmenter is not fitted; call fit or load first")
        with self._stage("features", timings):
            features = self.recipe_.features(data.events)
        with self._stage("documents", timings):
            documents = self.recipe_.documents(data.events, features, data.users)
        with self._stage("embed", timings):
            texts = documents["document"].to_list()
            emb, _ = embed_documents(self._encoder(), texts, self.cache)
        with self._stage("fuse", timings):
            fused = fuse(emb, self.scaler_.transform(features), self.feature_factor_)
        with self._stage("reduce", timings):
            reduced = self.reducer_.transform(fused)
        return features, documents, reduced

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
            user_id, segment, segment_name, confidence, distance, map_x, map_y.
        """
        timings: dict[str, float] = {}
        features, _, reduced = self._transform(data, timings)
        with self._stage("cluster", timings):
            labels, confidence, distance = self.clusterer_.predict(reduced)
        with self._stage("map", timings):
            mapped = getattr(self.map_, "umap_", None) is not None
            if not map_coords:
                coords = np.full((len(reduced), 2), np.nan, dtype=np.float32)
            elif mapped:
                coords = self.map_.transform(reduced)
            else:
                coords = reduced[:, :2]
        self.last_timings_ = timings
        return self._assignments(features["user_id"], labels, confidence, distance, coords)

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the fitted model into the folder ``path`` (created; files replaced).

        Data only: ``segmenter.json`` (format, parameters, each stage's parameters and array
        files) and one ``.npy`` per fitted array; a fine-tuned encoder goes to ``encoder/``
        as safetensors. Loading it runs no code from the folder.
        """
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        encoder = self._encoder()
        encoder_ref: dict[str, Any] = {"identity": encoder.identity}
        if getattr(encoder, "finetuned", False):
            encoder.save(str(folder / "encoder"))  # type: ignore[attr-defined]
            encoder_ref = {"path": "encoder", "identity": folder_identity(str(folder / "encoder"))}
        else:
            encoder_ref["path"] = self.config_.encoder or DEFAULT_ENCODER
        stages = {name: getattr(self, f"{name}_") for name in STAGES}
        state = {
            "format": FORMAT,
            "segmenter_version": __version__,
            "config": self.config_.to_dict(),
            "documents": self.recipe_.state(),
            "feature_factor": self.feature_factor_,
            "encoder": encoder_ref,
            "k": self.k_,
            "segment_names": {str(k): v for k, v in self.segment_names_.items()},
            "clusterer_kind": type(self.clusterer_).__name__,
            "stages": {name: save_stage(folder, name, stage) for name, stage in stages.items()},
        }
        io.write_json(state, folder / MODEL_FILE)  # last: a model file names complete arrays

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
        folder = Path(path)
        state = read_model_file(folder)
        try:
            self = cls._from_state(state, folder, encoder, cache, device, progress)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, SegmenterError):
                raise
            raise SegmenterError(
                f"--model: '{folder / MODEL_FILE}' is damaged ({type(exc).__name__}: {exc}); "
                f"re-fit the model"
            ) from None
        ref = state["encoder"]
        if self.encoder is None:
            model_path = folder / ref["path"] if ref["path"] == "encoder" else ref["path"]
            self.encoder = SentenceTransformerEncoder(
                None if model_path == DEFAULT_ENCODER else model_path,
                device=device,
                batch_size=self.config_.batch_size,
                show_progress=progress,
            )
        if self.encoder.identity != ref["identity"]:
            logger.warning(
                "encoder %s differs from the one the model was fitted with (%s); "
                "assignments may drift",
                self.encoder.identity,
                ref["identity"],
            )
        return self

    @classmethod
    def _from_state(
        cls,
        state: dict[str, Any],
        folder: Path,
        encoder: Encoder | None,
        cache: EmbeddingCache | None,
        device: str,
        progress: bool,
    ) -> Segmenter:
        config = SegmenterConfig.from_dict(state["config"]).replace(device=device)
        self = cls(config, encoder=encoder, cache=cache, progress=progress)
        self.config_ = config
        self.recipe_ = DocumentRecipe.from_state(state["documents"])
        self.feature_factor_ = float(state["feature_factor"])
        self.k_ = int(state["k"])
        self.segment_names_ = {int(k): v for k, v in state["segment_names"].items()}
        kinds = {"KMeansClusterer": KMeansClusterer, "DensityClusterer": DensityClusterer}
        if state["clusterer_kind"] not in kinds:
            raise ValueError(
                f"clusterer_kind {state['clusterer_kind']!r} is not one of {list(kinds)}"
            )
        classes = {"scaler": FeatureScaler, "reducer": Reducer, "map": Reducer}
        classes["clusterer"] = kinds[state["clusterer_kind"]]
        for name in STAGES:
            stage = load_stage(folder, name, state["stages"].get(name), classes[name])
            setattr(self, f"{name}_", stage)
        self.timings_ = {}
        return self
