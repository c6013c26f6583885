"""Why a customer is in its segment: behaviour contributions, text evidence, counterfactual."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import polars as pl

from segmenter.errors import SegmenterError
from segmenter.explain import counterfactual as cf
from segmenter.explain import evidence as ev
from segmenter.explain.decision import (
    Decision,
    check_explainable,
    decide,
    edge_between,
    runner_up,
    value_contributions,
)

logger = logging.getLogger(__name__)

#: Reasons kept per customer in explanations.parquet and the report.
TOP = 3


@dataclass(frozen=True)
class Explanation:
    """One customer's explanation (see :meth:`Explainer.explain`).

    ``margin_kind`` says what separates ``segment`` from ``against``: "value" (another tier;
    ``margin`` is the value score's distance to the edge and ``contributions`` split it exactly),
    "taste" (same tier; ``margin`` is ``d2(against) - d2(segment)`` and behaviour contributes
    exactly nothing) or "none" (a single segment). ``tier_contributions`` split the score's
    distance to the nearest edge of its own tier (exact). ``evidence`` are the document parts
    that move the customer most towards its segment in the taste space (occlusion:
    approximate).
    """

    user_id: str
    segment: int
    against: int
    margin_kind: str
    margin: float
    contributions: dict[str, float]
    tier_contributions: dict[str, float]
    evidence: list[dict[str, Any]]
    masked_document: str
    document: str
    counterfactual: dict[str, Any] | None = None
    names: dict[int, str] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("names")
        out["segment_name"] = self.names.get(self.segment, str(self.segment))
        out["against_name"] = self.names.get(self.against, str(self.against))
        return out

    def text(self) -> str:
        """A plain-language summary, a few lines."""
        name = self.names.get(self.segment, f"segment {self.segment}")
        other = self.names.get(self.against, f"segment {self.against}")
        lines = [f"{self.user_id} is in {name}."]
        if self.margin_kind == "value":
            top = sorted(self.contributions.items(), key=lambda kv: -abs(kv[1]))
            said = ", ".join(f"{f} {v:+.2f}" for f, v in top)
            lines.append(f"Rather than {other} (another value tier) by its value score, margin "
                         f"{self.margin:.2f} = {said} (exact).")  # fmt: skip
        elif self.margin_kind == "taste":
            lines.append(f"Rather than {other} (same value tier) by taste alone, margin "
                         f"{self.margin:.3f}; behaviour contributes 0 (exact).")  # fmt: skip
        if self.tier_contributions:
            top = sorted(self.tier_contributions.items(), key=lambda kv: -abs(kv[1]))[:TOP]
            lines.append("Its value tier: " + ", ".join(f"{f} {v:+.2f}" for f, v in top) + ".")
        if self.evidence:
            said = "; ".join(f"{e['text']} ({e['effect']:+.3f})" for e in self.evidence[:TOP])
            lines.append(f"Text evidence (occlusion, approximate): {said}.")
            lines.append(f"Without it: {self.masked_document}")
        c = self.counterfactual
        if c is not None:
            said = ", ".join(f"{k} {c['before'][k]:g} -> {v:g}" for k, v in c["change"].items())
            target = self.names.get(c["target"], f"segment {c['target']}")
            ok = "checked" if c["landed"] == c["target"] else "NOT reached when checked"
            lines.append(f"Would move to {target} with {said} ({ok}).")
        return "\n".join(lines)


class Explainer:
    """Explanations of a fitted k-means :class:`~segmenter.model.Segmenter`'s customers.

    Parameters
    ----------
    model : Segmenter
        Fitted or loaded; documents are embedded through its :meth:`~Segmenter.embed`.
    top : int
        Evidence parts kept per customer.
    progress : bool
        Progress bar on :meth:`explain_all`.
    """

    def __init__(self, model: Any, *, top: int = TOP, progress: bool = True) -> None:
        self.model = model
        self.top = top
        self.progress = progress

    def fit(self, customers: pl.DataFrame) -> Explainer:
        """Keep the customers (``user_id``, ``document`` and the behaviour features; a run
        folder's customers.parquet) to explain."""
        check_explainable(self.model)
        missing = [c for c in ("user_id", "document", *self.model.value_axis_.scaler_.columns)
                   if c not in customers.columns]  # fmt: skip
        if missing:
            raise SegmenterError(f"customers table lacks column '{missing[0]}'")
        self.customers_ = customers.with_columns(pl.col("user_id").cast(pl.String))
        self.index_ = {u: i for i, u in enumerate(self.customers_["user_id"].to_list())}
        self.names_ = {int(k): str(v) for k, v in getattr(self.model, "segment_names_", {}).items()}
        return self

    def rows(self, user_ids: list[str]) -> np.ndarray:
        """Row of each id; a one-line error for an unknown one."""
        out = []
        for u in user_ids:
            if str(u) not in self.index_:
                raise SegmenterError(
                    f"--customer: '{u}' is not a customer of this run "
                    f"({len(self.index_):,} customers, e.g. '{next(iter(self.index_), '')}')"
                )
            out.append(self.index_[str(u)])
        return np.asarray(out, dtype=np.int64)

    def _id(self, label: int) -> int:
        """The segment id the run shows for a fitted label (stable ids of
        :mod:`segmenter.lineage` when the run was aligned to a previous one)."""
        ids = getattr(self.model, "segment_ids_", None)
        return int(label) if ids is None or label < 0 else int(ids.ids_[label])

    def _label(self, segment: int) -> int:
        """The fitted label of a segment id the run shows (``--against``)."""
        ids = getattr(self.model, "segment_ids_", None)
        if ids is None:
            return int(segment)
        found = np.flatnonzero(ids.ids_ == segment)
        if not len(found):
            raise SegmenterError(f"--against: segment {segment} does not exist; allowed "
                                 f"{sorted(int(i) for i in ids.ids_)}")  # fmt: skip
        return int(found[0])

    def explain(self, user_id: str, *, against: int | None = None) -> Explanation:
        """Explain one customer (against segment ``against`` instead of its runner-up)."""
        return self.explain_rows(self.rows([user_id]), against=against)[0]

    def explain_rows(self, rows: np.ndarray, *, against: int | None = None) -> list[Explanation]:
        """Explain the customers at ``rows``: one embedding call for all their documents and
        occlusions."""
        model = self.model
        table = self.customers_[rows]
        features = table
        docs = table["document"].to_list()
        score = model.value_axis_.transform(features)
        reducer = model.text_reducer_
        vectors: dict[str, np.ndarray] = {}

        def embed(texts: list[str]) -> np.ndarray:
            out = model.embed(texts)
            vectors["full"] = out[: len(docs)]
            return out

        decision: dict[str, Any] = {}
        centres = model.clusterer_.cluster_centers_.astype(np.float64)

        def margin(emb: np.ndarray, which: np.ndarray) -> np.ndarray:
            # the occluded documents follow the full ones, which come first (ev.occlusion)
            taste = reducer.transform(emb).astype(np.float64)
            d = decision["d"] = decide(model, taste[: len(docs)], score)
            rival = _taste_rival(model, d)
            d2 = ((taste[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
            r = np.arange(len(which))
            return d2[r, rival[which]] - d2[r, d.segment[which]]

        parts, effects = ev.occlusion(docs, margin, embed)
        d = decision["d"]
        taste = reducer.transform(vectors["full"])
        alt = runner_up(model, d, None if against is None else self._label(against))
        out = []
        for i in range(len(docs)):
            out.append(self._one(table[i], d, i, alt[i], taste[i : i + 1], parts[i], effects[i]))
        return out

    def _one(
        self,
        row: pl.DataFrame,
        d: Decision,
        i: int,
        alt: int,
        taste: np.ndarray,
        parts: list[ev.Part],
        effects: np.ndarray,
    ) -> Explanation:
        model = self.model
        columns = list(model.value_axis_.scaler_.columns)
        s, tier, score = int(d.segment[i]), int(d.tier[i]), float(d.score[i])
        tier_of = model.clusterer_.tier_of_
        kind, margin, contrib = "none", 0.0, {}
        if alt >= 0 and tier_of[alt] != tier:
            edge = edge_between(model, tier, int(tier_of[alt]))
            sign = 1.0 if tier_of[alt] < tier else -1.0
            c = sign * value_contributions(model, row, np.array([edge]))[0]
            kind, margin = "value", float(sign * (score - edge))
            contrib = {f: round(float(v), 4) for f, v in zip(columns, c, strict=True)}
        elif alt >= 0:
            kind, margin = "taste", float(d.d2[i, alt] - d.d2[i, s])
            contrib = dict.fromkeys(columns, 0.0)
        tier_contrib: dict[str, float] = {}
        edges = model.clusterer_.edges_
        if len(edges):
            near = [t for t in (tier - 1, tier + 1) if 0 <= t <= len(edges)]
            t2 = min(near, key=lambda t: abs(score - edge_between(model, tier, t)))
            edge = edge_between(model, tier, t2)
            sign = 1.0 if t2 < tier else -1.0
            c = sign * value_contributions(model, row, np.array([edge]))[0]
            tier_contrib = {f: round(float(v), 4) for f, v in zip(columns, c, strict=True)}
        order = np.argsort(-effects, kind="stable")[: self.top]
        top = [parts[j] for j in order if effects[j] > 0]
        evidence = [
            {"block": parts[j].block, "text": parts[j].text, "effect": round(float(effects[j]), 5)}
            for j in order
            if effects[j] > 0
        ]
        document = str(row["document"][0])
        change = cf.counterfactual(model, row, taste) if len(edges) else None
        if change is not None:  # segments as the run shows them (stable ids)
            change = {**change, "target": self._id(change["target"]),
                      "landed": self._id(change["landed"])}  # fmt: skip
        return Explanation(
            user_id=str(row["user_id"][0]), segment=self._id(s), against=self._id(alt),
            margin_kind=kind,
            margin=round(margin, 5), contributions=contrib, tier_contributions=tier_contrib,
            evidence=evidence, masked_document=ev.masked(document, top), document=document,
            counterfactual=change, names=self.names_,
        )  # fmt: skip


def _taste_rival(model: Any, d: Decision) -> np.ndarray:
    """Per customer, the other centre its text evidence is weighed against: the nearest other
    centre of its tier, else the nearest other centre anywhere."""
    tier_of = model.clusterer_.tier_of_
    d2 = d.d2.copy()
    d2[np.arange(len(d2)), d.segment] = np.inf
    same = np.where(tier_of[None, :] == d.tier[:, None], d2, np.inf)
    has = np.isfinite(same).any(axis=1)
    if d2.shape[1] == 1:
        return d.segment.copy()
    return np.where(has, np.argmin(same, axis=1), np.argmin(d2, axis=1))
