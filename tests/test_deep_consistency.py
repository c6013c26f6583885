"""The deep head's segment-consistency check: fine-tuned segments that drift from stable
frozen ones are refused (the planted-archetype loss in miniature), a fine-tuning that settles
an unstable frozen partition is not."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from benchmarks.metrics import hungarian_accuracy
from segmenter.cluster import KMeansClusterer
from segmenter.config import SegmenterConfig
from segmenter.data import load_events
from segmenter.embed import SentenceTransformerEncoder
from segmenter.finetune import DeepOptions, refine
from segmenter.finetune.acceptance import consistency
from segmenter.model import Segmenter
from segmenter.synthetic import generate


def test_consistency_refuses_drift_from_stable_segments_and_leaves_room_where_unstable() -> None:
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(4), 60)
    stable = rng.normal(size=(4, 16))[truth] * 4.0 + rng.normal(size=(240, 16))
    labels = KMeansClusterer(4, n_restarts=3, random_state=0).fit(stable).labels_
    same = consistency(stable, labels, labels, seed=0)
    assert same["frozen"] > 0.95 and same["consistency"] == 0.0 and same["accepted"]
    drifted = labels.copy()
    moved = rng.random(240) < 0.1
    drifted[moved] = (drifted[moved] + 1) % 4
    out = consistency(stable, labels, drifted, seed=0)
    assert not out["accepted"] and out["consistency"] < -0.1
    assert out["rejected_because"].startswith("segment consistency")
    # overlapping groups: frozen k-means depends on its seed, and the true partition, which a
    # good fine-tuning settles on, agrees with the frozen alternatives better than seed 0 does
    rng = np.random.default_rng(0)
    overlapping = rng.normal(size=(4, 16))[truth] * 1.2 + rng.normal(size=(240, 16))
    first = KMeansClusterer(4, n_restarts=1, random_state=0).fit(overlapping).labels_
    room = consistency(overlapping, first, truth, seed=0)
    assert room["frozen"] < 0.8 and room["consistency"] > 0.1 and room["accepted"]


class _Drifting:
    """A 'fine-tuned' encoder making tight groups of the frozen segments, with one in twenty of the
    customers (by document hash) moved into the next group: sharper, stable and wrong."""

    finetuned = True
    identity = "drifting"

    def __init__(self, base: SentenceTransformerEncoder, texts: list[str], k: int) -> None:
        emb = base.encode(texts)
        labels = KMeansClusterer(k, n_restarts=5, random_state=0).fit(emb).labels_
        centres = np.stack([emb[labels == j].mean(axis=0) for j in range(k)])
        moved = np.array([zlib.crc32(t.encode()) % 20 == 0 for t in texts])
        target = np.where(moved, (labels + 1) % k, labels)
        tuned = 0.2 * emb + centres[target]
        tuned /= np.linalg.norm(tuned, axis=1, keepdims=True)
        self.table = dict(zip(texts, tuned, strict=True))

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.table[t] for t in texts]).astype(np.float32)

    def save(self, path: str) -> None:
        Path(path).mkdir()


@pytest.mark.slow
def test_a_fine_tuning_that_loses_on_planted_archetypes_is_rejected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tables = generate(300, seed=0)
    data = load_events(tables["events"], users=tables["users"])
    truth = tables["labels"].sort("user_id")["segment"].to_numpy()
    encoder = SentenceTransformerEncoder(show_progress=False)
    cfg = SegmenterConfig(k=8, value_tiers=1, pca_dims=16, max_tokens=64, seed=0)
    frozen = Segmenter(cfg.replace(pooling="document"), encoder=encoder, progress=False).fit(data)
    tuned = _Drifting(encoder, frozen.documents_["document"].to_list(), 8)

    def fake_refine(st: object, texts: list[str], labels: np.ndarray, options: DeepOptions,
                    **kwargs: object) -> refine.Refinement:  # fmt: skip
        return refine.Refinement(
            encoder=tuned,  # type: ignore[arg-type]
            history=[], best_step=1, collapsed=False, centres=np.zeros((8, 8)),
            options=options, seed=0,
        )  # fmt: skip

    monkeypatch.setattr(refine, "refine_encoder", fake_refine)
    model = Segmenter(cfg.replace(deep=True), encoder=encoder, progress=False).fit(data)
    report = model.deep_report_
    # the held-out checks let it through; the segments' consistency does not
    assert report["acceptance"]["accepted"] is True, report["acceptance"]
    assert report["accepted"] is False
    assert "drift from the frozen ones" in report["rejected_because"]
    assert report["consistency"]["frozen"] > 0.9 and report["consistency"]["consistency"] < -0.02
    assert model.encoder is encoder
    assert (model.assignments_["segment"] == frozen.assignments_["segment"]).all()
    candidate = KMeansClusterer(8, n_restarts=3, random_state=0).fit(
        tuned.encode(frozen.documents_["document"].to_list())
    )
    frozen_acc = hungarian_accuracy(truth, frozen.assignments_["segment"].to_numpy())
    assert hungarian_accuracy(truth, candidate.labels_) < frozen_acc - 0.02  # it would lose
