"""Deep clustering head: a short real training run, the collapse guard, save/load."""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from benchmarks.metrics import hungarian_accuracy
from segmenter.config import SegmenterConfig
from segmenter.data import EventData, load_events
from segmenter.embed import SentenceTransformerEncoder
from segmenter.errors import SegmenterError
from segmenter.finetune import (
    DeepOptions,
    EncoderRefiner,
    acceptance,
    refine,
    sentence_transformer_of,
)
from segmenter.finetune.acceptance import Acceptance, explained, held_out
from segmenter.finetune.objectives import (
    augment,
    auto_neighbours,
    batch_positives,
    contrastive,
    health,
    lloyd,
    neighbours,
    sample_batch,
    target_distribution,
)
from segmenter.model import SEGMENT_STATE, Segmenter
from segmenter.quality import behaviour_separation, eta_squared
from segmenter.synthetic import generate

pytestmark = pytest.mark.slow

TOPICS = {
    "sport": [
        "football",
        "match",
        "goal",
        "team",
        "league",
        "coach",
        "stadium",
        "player",
        "score",
        "tennis",
    ],
    "food": [
        "recipe",
        "pasta",
        "oven",
        "bake",
        "flavour",
        "kitchen",
        "spice",
        "dinner",
        "dessert",
        "sauce",
    ],
    "money": [
        "loan",
        "interest",
        "bank",
        "mortgage",
        "savings",
        "credit",
        "invest",
        "budget",
        "tax",
        "pension",
    ],
}
NOISE = [
    "customer",
    "bought",
    "item",
    "again",
    "last",
    "week",
    "today",
    "order",
    "delivery",
    "great",
    "nice",
    "price",
    "app",
]


def noisy_topics(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Short texts: two words of their topic, one of the next topic, eight shared words."""
    rng = np.random.default_rng(seed)
    names = list(TOPICS)
    texts, labels = [], []
    for i in range(n):
        t = i % 3
        words = [*rng.choice(TOPICS[names[t]], 2), *rng.choice(TOPICS[names[(t + 1) % 3]], 1)]
        words += list(rng.choice(NOISE, 8))
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(t)
    return texts, np.array(labels)


@pytest.fixture(scope="module")
def encoder() -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder(show_progress=False)


def _accept_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    """The acceptance rule accepts every check, each later one with a higher score."""
    seen: list[int] = []

    def judge(self: Acceptance, tuned: np.ndarray) -> dict[str, object]:
        seen.append(1)
        return {"agreement": 1.0, "separation": 1.0, "stability": 0.0, "score": len(seen),
                "accepted": True, "rejected_because": ""}  # fmt: skip

    monkeypatch.setattr(Acceptance, "judge", judge)
    monkeypatch.setattr(
        acceptance, "consistency", lambda *a, **kw: {"accepted": True, "rejected_because": ""}
    )


def test_training_improves_a_noisy_toy_over_its_kmeans_start(
    encoder: SentenceTransformerEncoder,
) -> None:
    texts, truth = noisy_topics(150, seed=0)
    start = KMeans(3, n_init=5, random_state=0).fit_predict(encoder.encode(texts))
    before = adjusted_rand_score(truth, start)
    assert before < 0.95  # the toy is noisy enough to leave room
    # SCCL's set-up (two views of each text, a heavier clustering term): on three well
    # separated topics k-means is already good (ARI 0.92) and the nearest neighbours are less
    # pure (0.88 share the topic at 3 neighbours), so the default neighbour positives cannot
    # help here; they are what helps on Banking77 (BENCHMARKS.md)
    cfg = DeepOptions(
        steps=24, batch_size=16, update_interval=8, eval_size=150, tol=0.0,
        positives="views", temperature=0.5, eta=5.0,
    )  # fmt: skip
    head = EncoderRefiner(cfg, progress=False).fit(encoder.st, texts, start)
    after_emb = head.encoder_.encode(texts)
    after = adjusted_rand_score(truth, KMeans(3, n_init=5, random_state=0).fit_predict(after_emb))
    assert after > before
    assert not head.collapsed_
    steps = [h["step"] for h in head.history_]
    assert steps == sorted(steps) and steps[0] == 8
    assert all(0 <= h["changed"] <= 1 for h in head.history_)
    assert np.allclose(np.linalg.norm(after_emb, axis=1), 1.0, atol=1e-4)


def test_collapse_guard_restores_the_start(encoder: SentenceTransformerEncoder) -> None:
    # every customer writes the same thing: the only outcome is one segment for all
    texts = ["bought the same gift card again"] * 48
    labels = np.arange(48) % 3
    cfg = DeepOptions(steps=6, batch_size=8, update_interval=2, eval_size=48)
    head = EncoderRefiner(cfg, progress=False).fit(encoder.st, texts, labels)
    assert head.collapsed_
    assert head.best_step_ == 0
    assert head.history_[-1]["healthy"] is False
    same = head.encoder_.encode(texts[:2])
    assert np.allclose(same, encoder.encode(texts[:2]), atol=1e-5)


def test_deep_segmenter_saves_and_reloads_its_encoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _accept_everything(monkeypatch)  # keep the fine-tuned encoder whatever 4 steps do
    tables = generate(160, seed=4)
    data = load_events(tables["events"], users=tables["users"])
    cfg = SegmenterConfig(
        k=4,
        umap_dims=0,  # PCA only: this test is about the encoder, not the reduction
        pca_dims=8,
        max_tokens=64,
        deep=True,
        deep_options=DeepOptions(steps=4, batch_size=8, update_interval=2, eval_size=64),
        deep_keep_behaviour=0.0,  # keep the fine-tuned encoder whatever 4 steps do
    )
    model = Segmenter(cfg, progress=False).fit(data)
    assert model.deep_report_["history"] and model.deep_report_["accepted"]
    model.save(tmp_path / "model")
    assert (tmp_path / "model" / "encoder" / "modules.json").is_file()
    loaded = Segmenter.load(tmp_path / "model", progress=False)
    assert loaded.encoder is not None
    assert loaded.encoder.identity.startswith("encoder:")
    again = loaded.predict(data)
    assert (again["segment"] == model.assignments_["segment"]).mean() >= 0.99


def test_unknown_deep_option_is_refused() -> None:
    with pytest.raises(SegmenterError, match="deep option 'epochs' is unknown"):
        SegmenterConfig.from_dict({"deep": True, "deep_options": {"epochs": 3}})


def test_deep_needs_a_sentence_transformer() -> None:
    class Fake:
        identity = "fake"

        def encode(self, texts: list[str]) -> np.ndarray:
            return np.ones((len(texts), 4), np.float32) / 2

    with pytest.raises(SegmenterError, match="--deep needs a sentence-transformers encoder"):
        sentence_transformer_of(Fake())


@pytest.mark.parametrize(
    ("changes", "match"),
    [({"steps": 0}, "--deep-steps: 0 should be an integer >= 1"),
     ({"batch_size": 2}, "deep_options.batch_size: 2 should be an integer >= 4"),
     ({"lr": 0.0}, "deep_options.lr: 0.0 should be > 0"),
     ({"min_share": 1.5}, r"deep_options.min_share: 1.5 should be in \[0, 1\)"),
     ({"positives": "pairs"}, "deep_options.positives: 'pairs' is not one of"),
     ({"neighbors": -1}, r"deep_options.neighbors: -1 should be an integer >= 0 \(0 = auto\)"),
     ({"group": 0}, "deep_options.group: 0 should be an integer >= 1")],
)  # fmt: skip
def test_bad_deep_config(changes: dict, match: str) -> None:
    # checked once, with the rest of the pipeline's config
    with pytest.raises(SegmenterError, match=match):
        SegmenterConfig(deep=True, deep_options=DeepOptions(**changes)).validate()


def test_bad_keep_behaviour_is_a_pipeline_option() -> None:
    with pytest.raises(SegmenterError, match=r"--deep-keep-behaviour: 1.5 should be in \[0, 1\]"):
        SegmenterConfig(deep=True, deep_keep_behaviour=1.5).validate()


def test_too_few_segments_is_refused(encoder: SentenceTransformerEncoder) -> None:
    with pytest.raises(SegmenterError, match="needs >= 2 segments"):
        EncoderRefiner(DeepOptions(batch_size=4)).fit(encoder.st, ["a"] * 8, np.zeros(8, int))


def test_target_distribution_sharpens_rows() -> None:
    import torch

    q = torch.tensor([[0.6, 0.4], [0.5, 0.5], [0.2, 0.8]])
    p = target_distribution(q)
    assert torch.allclose(p.sum(dim=1), torch.ones(3))
    assert p[0, 0] > q[0, 0] and p[2, 1] > q[2, 1]


def test_health_and_augment() -> None:
    assert health(np.array([0, 0, 1, 1]), 2) == (1.0, 1.0)
    share, entropy = health(np.zeros(10, int), 3)
    assert share == 0 and entropy == 0
    rng = np.random.default_rng(0)
    doc = "top spend, frequent buyer. Items: red mug, blue cup. Shops mostly in the evenings."
    views = {augment(doc, rng) for _ in range(10)}
    assert len(views) > 1 and all(v and set(v.split()) <= set(doc.split()) for v in views)


def test_neighbours_are_the_nearest_other_points() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)) * 5
    z = np.repeat(centres, 10, axis=0) + rng.normal(scale=0.1, size=(40, 16))
    near = neighbours(z.astype(np.float32), 3)
    assert near.shape == (40, 3)
    assert (near != np.arange(40)[:, None]).all()  # never the point itself
    assert (near // 10 == np.arange(40)[:, None] // 10).all()  # same blob
    assert neighbours(z[:3].astype(np.float32), 10).shape == (3, 2)
    # Euclidean (the pipeline's segment space) and cosine (text embeddings) differ
    pts = np.array([[1.0, 0.0], [10.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    assert neighbours(pts, 1)[0, 0] == 1
    assert neighbours(pts, 1, cosine=False)[0, 0] == 2
    # identical documents tie with the point itself: it must still never be its own neighbour
    twins = np.repeat(rng.normal(size=(5, 8)), 6, axis=0).astype(np.float32)
    near = neighbours(twins, 3)
    assert (near != np.arange(30)[:, None]).all()
    assert (near // 6 == np.arange(30)[:, None] // 6).all()


def test_lloyd_moves_centres_to_their_members_and_keeps_empty_ones() -> None:
    z = np.array([[0.0, 0.0], [0.0, 2.0], [10.0, 0.0], [10.0, 2.0]], dtype=np.float32)
    start = np.array([[1.0, 1.0], [9.0, 1.0], [100.0, 100.0]], dtype=np.float32)
    centres, labels = lloyd(z, start, np.array([0, 0, 0, 1]))
    assert labels.tolist() == [0, 0, 1, 1]
    assert np.allclose(centres[:2], [[0.0, 1.0], [10.0, 1.0]])
    assert np.allclose(centres[2], [100.0, 100.0])  # no member: unchanged


def test_contrastive_on_pairs_is_simclr_nt_xent() -> None:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    a, b = torch.randn(8, 16), torch.randn(8, 16)
    z = F.normalize(torch.cat([a, b]), dim=1)
    sim = (z @ z.t() / 0.1).fill_diagonal_(float("-inf"))
    nt_xent = F.cross_entropy(sim, torch.cat([torch.arange(8, 16), torch.arange(0, 8)]))
    pairs = np.tile(np.arange(8), 2)
    got = contrastive(torch.cat([a, b]), batch_positives(pairs, pairs, None), 0.1)
    assert torch.isclose(got, nt_xent)
    # pulling positives together lowers it: the same batch with b = a is easier
    assert contrastive(torch.cat([a, a]), batch_positives(pairs, pairs, None), 0.1) < got
    # rows without positives are skipped, not NaN
    lonely = batch_positives(np.arange(16), np.arange(16), None)
    assert contrastive(torch.cat([a, b]), lonely, 0.1) == 0  # no positive at all
    lonely[0, 1] = lonely[1, 0] = True
    assert torch.isfinite(contrastive(torch.cat([a, b]), lonely, 0.1))


def test_batches_group_anchors_with_distinctneighbours() -> None:
    near = np.array([[(i + d) % 40 for d in (1, 2, 3, 4)] for i in range(40)])
    cfg = DeepOptions(batch_size=8, group=3)
    ids, groups = sample_batch(40, near, cfg, np.random.default_rng(0))
    assert len(ids) == len(groups) == 32
    anchors = ids[:8]
    assert len(set(anchors.tolist())) == 8
    for j, anchor in enumerate(anchors):
        partners = ids[8:][groups[8:] == j]
        assert len(set(partners.tolist())) == 3 and set(partners) <= set(near[anchor])
    positive = batch_positives(ids, groups, near)
    assert (positive == positive.T).all()
    assert positive[groups[:, None] == groups[None, :]].all()
    # across groups: positives when the same document, or one lists the other as neighbour
    i, j = np.nonzero(groups[:, None] != groups[None, :])
    listed = np.array(
        [ids[a] == ids[b] or ids[b] in near[ids[a]] or ids[a] in near[ids[b]]
         for a, b in zip(i, j, strict=True)]
    )  # fmt: skip
    assert (positive[i, j] == listed).all()
    # a group larger than the neighbour list takes the whole list; views: the anchor itself
    ids, groups = sample_batch(
        40, near, DeepOptions(batch_size=8, group=9), np.random.default_rng(1)
    )
    assert len(ids) == 40
    for j, anchor in enumerate(ids[:8]):
        assert sorted(ids[8:][groups[8:] == j]) == sorted(near[anchor])
    ids, groups = sample_batch(40, None, cfg, np.random.default_rng(1))
    assert (ids[:8] == ids[8:]).all()


def test_banking_benchmark_records_paired_seeds_curve_and_pipeline_path(tmp_path: Path) -> None:
    from benchmarks.deep import KMEANS_SEEDS, banking_deep

    texts, truth = noisy_topics(96, seed=3)
    tsv = tmp_path / "intents.tsv"
    rows = [f"{['sport', 'food', 'money'][t]}\t{x}" for x, t in zip(texts, truth, strict=True)]
    tsv.write_text("label\ttext\n" + "\n".join(rows) + "\n")
    result = banking_deep(
        tsv, texts_limit=None, steps=4, seed=0, batch_size=8,
        options={"update_interval": 2, "neighbors": 3},
    )  # fmt: skip
    assert result["texts"] == 96 and result["k"] == 3
    assert all(len(v) == KMEANS_SEEDS for v in result["acc_per_kmeans_seed"].values())
    gain = result["deep"]["acc"] - result["frozen"]["acc"]
    assert result["acc_gain_points"] == pytest.approx(100 * gain, abs=0.01)
    # three topics of ten words each: both embeddings find them well above chance
    assert result["frozen"]["acc"] > 0.6 and result["deep"]["acc"] > 0.6
    curve = result["curve"]
    assert [c["step"] for c in curve] == [0, 2, 4]
    assert all(0 <= c["neighbour_purity"] <= 1 for c in curve)
    assert curve[0]["neighbour_purity"] > 1 / 3  # nearest neighbours beat a random pick
    path = result["pipeline_reduction"]
    assert set(path) == {"frozen", "deep", "acc_gain_points"} and path["frozen"]["acc"] > 0.6


def test_deep_segments_that_lose_the_behaviour_are_not_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class Scrambled:
        """A 'fine-tuned' encoder whose documents fall in 4 tight groups unrelated to anything."""

        finetuned = True
        identity = "scrambled"

        def encode(self, texts: list[str]) -> np.ndarray:
            crc = np.array([zlib.crc32(t.encode()) for t in texts])
            out = np.zeros((len(texts), 8), np.float32)
            out[np.arange(len(texts)), crc % 4] = 1.0
            # tight, not single points: a little spread inside each group
            out[:, 4:] = 0.01 * ((crc[:, None] >> np.arange(4)) % 7)
            return out

        def save(self, path: str) -> None:
            Path(path).mkdir()

    started_from: list[object] = []

    def fake_refine(st: object, texts: list[str], labels: np.ndarray, options: DeepOptions,
                    **kwargs: object) -> refine.Refinement:  # fmt: skip
        started_from.append(st)
        return refine.Refinement(
            encoder=Scrambled(),  # type: ignore[arg-type]
            history=[], best_step=1, collapsed=False, centres=np.zeros((4, 8)),
            options=options, seed=0,
        )  # fmt: skip

    monkeypatch.setattr(refine, "refine_encoder", fake_refine)
    _accept_everything(monkeypatch)  # what is judged here is the behaviour check alone
    tables = generate(200, seed=5)
    data = load_events(tables["events"], users=tables["users"])
    cfg = SegmenterConfig(k="auto", value_tiers=2, umap_dims=0, pca_dims=8, max_tokens=64,
                          feature_weight=1.0)  # fmt: skip
    frozen = Segmenter(cfg.replace(pooling="document"), progress=False).fit(data)
    model = Segmenter(cfg.replace(deep=True), progress=False).fit(data)
    report = model.deep_report_
    assert report["accepted"] is False and report["behaviour_check"] is True
    assert "explain less of the behaviour features" in report["rejected_because"]
    separation = report["behaviour_separation"]
    assert separation["deep"] < 0.8 * separation["frozen"]
    # everything is the frozen model's: segments, chosen k, encoder, what predict and save give
    assert (model.assignments_["segment"] == frozen.assignments_["segment"]).all()
    assert model.k_ == frozen.k_ == len(model.clusterer_.cluster_centers_)
    assert model.k_curve_ == frozen.k_curve_
    assert model.encoder is not None and not getattr(model.encoder, "finetuned", False)
    assert (model.predict(data)["segment"] == frozen.predict(data)["segment"]).all()
    model.save(tmp_path / "model")
    assert not (tmp_path / "model" / "encoder").exists()
    loaded = Segmenter.load(tmp_path / "model", progress=False)
    assert loaded.k_ == frozen.k_
    # accepted whatever it loses: the fine-tuned encoder is used, and a refit starts again
    # from the base encoder, not from the fine-tuned one
    lenient = cfg.replace(deep=True, deep_keep_behaviour=0.0)
    model = Segmenter(lenient, progress=False).fit(data)
    assert model.deep_report_["accepted"] and isinstance(model.encoder, Scrambled)
    model.fit(data)
    assert not isinstance(started_from[-1], Scrambled)
    assert started_from[-1] is started_from[-2]


def test_behaviour_separation_and_automatic_neighbour_count() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 50)
    spend = labels * 3.0 + rng.normal(size=150)  # separated by the segments
    noise = rng.normal(size=150)  # not at all
    both = behaviour_separation(np.column_stack([spend, noise]), labels)
    assert both == pytest.approx((eta_squared(spend, labels) + eta_squared(noise, labels)) / 2)
    assert eta_squared(spend, labels) > 0.8 and eta_squared(noise, labels) < 0.1
    assert behaviour_separation(np.column_stack([spend]), rng.permutation(labels)) < 0.1
    assert behaviour_separation(np.zeros((150, 0)), labels) == 0.0
    # the square root of the average segment size, within 1..20
    assert [auto_neighbours(n, k) for n, k in ((3080, 77), (1000, 77), (10, 5), (10**6, 8))] == [
        6, 4, 1, 20,
    ]  # fmt: skip


def test_acceptance_rule_accepts_sharper_and_rejects_scrambled_groups() -> None:
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(4), 60)
    centres = rng.normal(size=(4, 16)) * 2.0
    frozen = centres[truth] + rng.normal(size=(240, 16)) * 3.5  # groups that overlap
    judge = Acceptance(4, seed=0).fit(frozen)
    sharper = judge.judge(centres[truth] + rng.normal(size=(240, 16)) * 0.5 + 0.6 * frozen)
    assert sharper["accepted"], sharper
    assert sharper["agreement"] > 0.3 and sharper["stability"] >= 0 and sharper["score"] > 0
    scrambled = judge.judge(np.eye(4)[rng.integers(0, 4, 240)] + rng.normal(size=(240, 4)) * 0.05)
    assert not scrambled["accepted"]
    assert "neighbour agreement" in scrambled["rejected_because"]
    assert "separation in the frozen space" in scrambled["rejected_because"]
    assert scrambled["separation"] < 0.3
    mask = held_out(1000, seed=3)
    assert mask.sum() == 200 and (mask == held_out(1000, seed=3)).all()
    assert held_out(10_000, seed=3).sum() == 1000  # capped
    assert explained(frozen, truth) > explained(frozen, rng.permutation(truth))


def _text_only_events(texts: list[str]) -> EventData:
    """One search event per customer, nothing else: every behaviour feature is constant."""
    start = datetime(2026, 1, 1)
    return load_events(
        pl.DataFrame(
            {
                "user_id": [f"U{i:04d}" for i in range(len(texts))],
                "timestamp": [start + timedelta(minutes=i) for i in range(len(texts))],
                "event_type": ["search"] * len(texts),
                "text": texts,
            }
        )
    )


class _Tuned:
    """A 'fine-tuned' encoder: the packaged one, with each text's topic sharpened or scrambled."""

    finetuned = True

    def __init__(self, base: SentenceTransformerEncoder, *, scramble: bool) -> None:
        self.base, self.scramble = base, scramble
        self.identity = f"tuned-scramble={scramble}"

    def encode(self, texts: list[str]) -> np.ndarray:
        if self.scramble:  # 3 tight groups unrelated to what the customers wrote
            crc = np.array([zlib.crc32(t.encode()) % 3 for t in texts])
            out = np.eye(3, 8, dtype=np.float32)[crc]
            out[:, 3:] = 0.05 * np.random.default_rng(0).normal(size=(len(texts), 5))
            return out / np.linalg.norm(out, axis=1, keepdims=True)
        emb = self.base.encode(texts)
        topic = np.array([max(TOPICS, key=lambda n: sum(w in t for w in TOPICS[n])) for t in texts])
        for name in TOPICS:  # pull each text halfway to the centre of its planted topic
            emb[topic == name] += 0.5 * (emb[topic == name].mean(axis=0) - emb[topic == name])
        return emb / np.linalg.norm(emb, axis=1, keepdims=True)

    def save(self, path: str) -> None:
        Path(path).mkdir()


def _fitted(model: Segmenter) -> dict[str, object]:
    return {n: v for n, v in vars(model).items() if n.endswith("_")}


@pytest.mark.parametrize("scramble", [True, False])
def test_text_only_fine_tuning_is_judged_on_held_out_customers(
    monkeypatch: pytest.MonkeyPatch, encoder: SentenceTransformerEncoder, scramble: bool
) -> None:
    texts, truth = noisy_topics(200, seed=1)
    data = _text_only_events(texts)
    tuned = _Tuned(encoder, scramble=scramble)
    seen: dict[str, object] = {}

    def fake_refine(st: object, texts: list[str], labels: np.ndarray, options: DeepOptions,
                    **kwargs: object) -> refine.Refinement:  # fmt: skip
        seen.update(kwargs, texts=texts, labels=labels)
        return refine.Refinement(
            encoder=tuned,  # type: ignore[arg-type]
            history=[], best_step=1, collapsed=False, centres=np.zeros((3, 8)),
            options=options, seed=0,
        )  # fmt: skip

    monkeypatch.setattr(refine, "refine_encoder", fake_refine)
    before: dict[str, object] = {}
    deep = Segmenter._deep

    def snapshot(self: Segmenter, *args: object) -> object:
        before.update(_fitted(self))  # what the frozen pass fitted, right before the head
        return deep(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Segmenter, "_deep", snapshot)
    cfg = SegmenterConfig(k=3, value_tiers=1, pca_dims=8, max_tokens=64, n_restarts=3)
    frozen = Segmenter(cfg.replace(pooling="document"), encoder=encoder, progress=False).fit(data)
    model = Segmenter(cfg.replace(deep=True), encoder=encoder, progress=False).fit(data)
    report = model.deep_report_
    # trained on the taste groups of 80% of the customers, judged on the other 20%
    assert len(seen["texts"]) == 160 and report["held_out_customers"] == 40  # type: ignore[arg-type]
    held_texts, _ = seen["held_out"]  # type: ignore[misc]
    assert not set(held_texts) & set(seen["texts"])  # type: ignore[arg-type]
    assert report["behaviour_check"] is False  # no value tiers: behaviour has no say
    acc = {
        name: hungarian_accuracy(truth, m.assignments_["segment"].to_numpy())
        for name, m in (("frozen", frozen), ("deep", model))
    }
    if scramble:
        assert report["accepted"] is False
        assert "fails the acceptance rule on held-out customers" in report["rejected_because"]
        assert model.encoder is encoder
        after = _fitted(model)
        assert set(SEGMENT_STATE) <= set(before)
        # every attribute fitted before the head is the very same object again
        assert [n for n in before if after[n] is not before[n]] == []
        assert set(after) - set(before) - {"deep_report_", "base_encoder_", "deep_passes_"} == {
            "segment_names_", "quality_", "features_", "documents_", "reduced_", "assignments_",
            "reference_",
        }  # fmt: skip
        assert (model.assignments_["segment"] == frozen.assignments_["segment"]).all()
        assert acc["deep"] == acc["frozen"]
    else:
        assert report["accepted"] is True, report
        assert model.encoder is tuned
        assert acc["deep"] >= acc["frozen"] - 0.01 and acc["deep"] > 0.8
