"""Does the deep head's acceptance rule predict the labelled outcome? Verdict vs ACC gain.

Each case fine-tunes the packaged encoder on 80% of a labelled set's texts (starting from
k-means on the frozen embeddings) and keeps a seeded 20% out. At every check the rule
(:class:`segmenter.finetune.acceptance.Acceptance`, here with floors that never stop
training) judges the held-out customers' embeddings, and the benchmark measures on the same
customers what the labels say: Hungarian ACC of k-means on the fine-tuned embeddings minus
ACC on the frozen ones, mean over paired k-means seeds. Every check of every case is one row
of the table: the rule's verdict (with the shipped floors) against the measured gain.

Cases: Banking77 with 8, 20 and all 77 intents, synthetic text-only customers, planted
archetypes (the pipeline's taste-only documents), and harmful fine-tunings (a learning rate
far too high, shuffled neighbour pairs, too many steps). Called as
``run_acceptance_benchmark(shared_data, quick=..., seed=...)``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks.metrics import hungarian_accuracy
from benchmarks.recovery import BANKING_FILE, planted_data, read_banking77
from segmenter.cluster import KMeansClusterer
from segmenter.config import SegmenterConfig
from segmenter.embed import SentenceTransformerEncoder
from segmenter.finetune import DeepOptions, EncoderRefiner
from segmenter.finetune.acceptance import Acceptance, Rule, held_out
from segmenter.model import Segmenter

logger = logging.getLogger(__name__)

KMEANS_SEEDS = 10
NEVER_STOP = Rule(min_agreement=-1.0, min_separation=-1e9, min_stability=-2.0)
TOPIC_WORDS = {
    "running": "running shoes trail marathon trainers jogging insoles laces sprint track",
    "baking": "flour oven baking tray cake yeast whisk mixer dough icing",
    "garden": "seeds compost hose rake shovel planter fertiliser lawn hedge trimmer",
    "gaming": "console controller headset gamepad joystick keyboard mouse arcade",
    "baby": "nappies stroller pram bottle dummy cot onesie bib teether",
    "camping": "tent sleeping bag lantern stove backpack tarp compass hiking",
    "beauty": "lipstick mascara serum moisturiser perfume nail polish foundation",
    "pets": "dog food cat litter leash collar aquarium kibble treats scratching",
}
FILLER = "cheap best new sale deal buy online near me free delivery size black red gift".split()  # noqa: SIM905


class Recording(Acceptance):
    """The acceptance rule, keeping every embedding it judged (one per check)."""

    seen_: list[np.ndarray]

    def judge(self, tuned: np.ndarray) -> dict[str, Any]:
        self.seen_ = [*getattr(self, "seen_", []), np.asarray(tuned)]
        return super().judge(tuned)


def text_shop(n: int, seed: int) -> pl.DataFrame:
    """Synthetic text-only customers: search snippets of one of 8 interests (label, text),
    two words of it, one of another interest and three fillers."""
    rng = np.random.default_rng(seed)
    names = list(TOPIC_WORDS)
    rows = []
    for i in range(n):
        t = i % len(names)
        own, other = TOPIC_WORDS[names[t]].split(), TOPIC_WORDS[names[(t + 3) % 8]].split()
        words = [*rng.choice(own, 2), *rng.choice(other, 1), *rng.choice(FILLER, 3)]
        rng.shuffle(words)
        rows.append((names[t], " ".join(words)))
    return pl.DataFrame(rows, schema=["label", "text"], orient="row")


def banking_intents(shared_data: Path, n_intents: int, limit: int, seed: int) -> pl.DataFrame:
    """``limit`` test+train texts of ``n_intents`` seeded Banking77 intents (77: test only)."""
    test = shared_data / BANKING_FILE
    if n_intents >= 77:
        return read_banking77(test, limit, seed)
    both = pl.concat(
        [pl.read_csv(p, separator="\t", quote_char=None)
         for p in (test, test.with_name("banking77_train.tsv")) if p.exists()]
    )  # fmt: skip
    labels = sorted(both["label"].unique().to_list())
    chosen = np.random.default_rng(seed).choice(labels, size=n_intents, replace=False).tolist()
    part = both.filter(pl.col("label").is_in(chosen))
    return part.sample(min(limit, part.height), seed=seed).sort("label", "text")


def _acc(space: np.ndarray, truth: np.ndarray, k: int, seed: int) -> float:
    return float(
        np.mean(
            [
                hungarian_accuracy(
                    truth,
                    KMeansClusterer(k, n_restarts=3, random_state=seed + r).fit(space).labels_,
                )
                for r in range(KMEANS_SEEDS)
            ]
        )
    )


def _unit(z: np.ndarray) -> np.ndarray:
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def judge_case(
    name: str,
    texts: list[str],
    truth: np.ndarray,
    options: DeepOptions,
    *,
    seed: int,
    space: Callable[[np.ndarray], np.ndarray] | None = None,
    encoder: SentenceTransformerEncoder,
) -> list[dict[str, Any]]:
    """Fine-tune on 80% of ``texts``; one row per check: rule metrics, verdict, ACC gain.

    ``space`` maps the frozen embeddings to the space neighbours are looked up in (default:
    the frozen embeddings; the shuffled-pairs case passes random points).
    """
    k = len(np.unique(truth))
    frozen = encoder.encode(texts)
    labels = KMeansClusterer(k, n_restarts=5, random_state=seed).fit(frozen).labels_
    held = held_out(len(texts), seed)
    rule = Recording(k, rule=NEVER_STOP, seed=seed)
    rule.fit(frozen[held])
    acc0 = _acc(frozen[held], truth[held], k, seed)
    train = [t for t, h in zip(texts, held, strict=True) if not h]
    start = time.perf_counter()
    head = EncoderRefiner(options, seed=seed, progress=False).fit(
        encoder.st, train, labels[~held],
        space=None if space is None else space(frozen)[~held],
        held_out=([t for t, h in zip(texts, held, strict=True) if h], rule),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    shipped = Acceptance(k, seed=seed).fit(frozen[held])
    rows = []
    for record, tuned in zip(head.history_, rule.seen_[1:], strict=False):
        verdict = shipped.judge(tuned)
        gain = _acc(_unit(tuned), truth[held], k, seed) - acc0
        rows.append(
            {
                "case": name, "texts": len(texts), "k": k, "step": record["step"],
                "lr": options.lr, "acc_frozen": round(acc0, 4),
                "acc_gain_points": round(100 * gain, 2),
                **{m: verdict[m] for m in ("agreement", "separation", "stability", "score")},
                "accepted": verdict["accepted"], "train_seconds": round(seconds, 1),
            }
        )  # fmt: skip
        logger.info("acceptance %s: %s", name, rows[-1])
    return rows


def run_acceptance_benchmark(shared_data: Path, *, quick: bool, seed: int) -> dict[str, Any]:
    """Every check of every case (see the module docstring); Banking77 cases need its TSV."""
    limit, steps = (600, 16) if quick else (1500, 60)
    base = DeepOptions(steps=steps, batch_size=16, update_interval=steps // 4, eval_size=256)
    encoder = SentenceTransformerEncoder(show_progress=False)
    cases: list[tuple[str, pl.DataFrame, DeepOptions, bool]] = []
    if (shared_data / BANKING_FILE).exists():
        eight = banking_intents(shared_data, 8, limit, seed)
        cases += [
            ("banking77_8", eight, base, False),
            ("banking77_77", banking_intents(shared_data, 77, limit, seed), base, False),
            ("harm_lr_5e-3_b77_8", eight, replace(base, lr=5e-3), False),
            ("harm_shuffled_pairs_b77_8", eight, replace(base, eta=0.0), True),
        ]
        if not quick:
            cases += [
                ("banking77_20", banking_intents(shared_data, 20, limit, seed), base, False),
                ("harm_long_lr_1e-3_b77_20", banking_intents(shared_data, 20, limit, seed),
                 replace(base, lr=1e-3, steps=2 * steps, update_interval=steps // 2), False),
            ]  # fmt: skip
    cases.append(("text_shop_8", text_shop(limit, seed), base, False))
    rows: list[dict[str, Any]] = []
    for name, frame, options, shuffled in cases:
        truth = np.unique(frame["label"].to_numpy(), return_inverse=True)[1].ravel()
        noise = (lambda z: np.random.default_rng(seed).normal(size=z.shape)) if shuffled else None
        rows += judge_case(name, frame["text"].to_list(), truth, options, seed=seed,
                           space=noise, encoder=encoder)  # fmt: skip
    if not quick:
        rows += _planted(limit, base, seed, encoder)
    return {"seed": seed, "kmeans_seeds": KMEANS_SEEDS, "rule": Rule().__dict__, "rows": rows}


def _planted(
    n: int, options: DeepOptions, seed: int, encoder: SentenceTransformerEncoder
) -> list[dict[str, Any]]:
    """Planted archetypes: the pipeline's (taste-only) documents of each customer."""
    data, truth = planted_data(n, seed)
    model = Segmenter(SegmenterConfig(seed=seed, k=8), encoder=encoder, progress=False).fit(data)
    texts = model.documents_["document"].to_list()
    return judge_case("planted_archetypes", texts, truth, options, seed=seed, encoder=encoder)
