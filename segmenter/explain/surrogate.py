"""What defines a segment: readable surrogates of the segmentation, with their fidelity.

The segments live in a taste space (PCA of document embeddings) cut by value tiers, which no
marketer can read. Surrogates learn the segment of each customer from readable features -- the
value score and the behaviour features, category shares, and the presence of the most common
words of items, searches and reviews -- on a seeded 75% of the customers; their fidelity is the
share of the other 25% (held out) they place in the right segment:

* a decision tree of depth <= 3 (one for all segments; its paths are the rules;
  :func:`tree_model`),
* one depth-3 tree per segment against the rest (each segment card's rule), combined by their
  probabilities into a rule set,
* a gradient-boosted surrogate (LightGBM), whose SHAP values (TreeExplainer) give each
  feature's global importance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from segmenter.errors import SegmenterError
from segmenter.explain.evidence import parts

logger = logging.getLogger(__name__)

#: Category share and word columns offered to the surrogates.
N_CATEGORIES = 30
N_TERMS = 100
HELD_OUT = 0.25
DEPTH = 3
#: Customers whose SHAP values are computed (a seeded sample of the held-out ones).
SHAP_SAMPLE = 500


def readable_features(customers: pl.DataFrame, score: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The surrogates' inputs: ``value score``, every behaviour feature, category shares
    (``category: NAME``, 0-1) and word presence (``word: W``; item ids count as words
    where the data has no names), shape (n, n_features)."""
    from sklearn.feature_extraction.text import CountVectorizer

    skip = {"user_id", "document"}
    numeric = [
        c for c in customers.columns if c not in skip and customers.schema[c].is_numeric()
    ]  # fmt: skip
    blocks = [parts(doc) for doc in customers["document"].to_list()]
    shares: list[dict[str, float]] = []
    words: list[str] = []
    for ps in blocks:
        row: dict[str, float] = {}
        for p in ps:
            if p.block == "categories":
                head, _, pct = p.text.rpartition(" (")
                if head and pct.removesuffix("%)").isdigit():
                    row[head] = float(pct.removesuffix("%)")) / 100
        shares.append(row)
        words.append(" ".join(p.text for p in ps if p.block != "categories"))
    counts: dict[str, int] = {}
    for row in shares:
        for name in row:
            counts[name] = counts.get(name, 0) + 1
    cats = sorted(counts, key=lambda c: (-counts[c], c))[:N_CATEGORIES]
    cat_matrix = np.array([[row.get(c, 0.0) for c in cats] for row in shares]).reshape(
        len(shares), len(cats)
    )
    columns = ["value score", *numeric, *(f"category: {c}" for c in cats)]
    blocks_x = [score[:, None], customers.select(numeric).to_numpy().astype(np.float64), cat_matrix]
    if any(w.strip() for w in words):
        vec = CountVectorizer(binary=True, max_features=N_TERMS, stop_words="english",
                              token_pattern=r"(?u)\b\w{3,}\b")  # fmt: skip
        try:
            X_words = vec.fit_transform(words).toarray().astype(np.float64)
            columns += [f"word: {w}" for w in vec.get_feature_names_out()]
            blocks_x.append(X_words)
        except ValueError:  # only stop words
            pass
    return np.nan_to_num(np.hstack(blocks_x)), columns


def tree_model(min_leaf: int, seed: int) -> Any:
    """A depth-3 tree. Entropy rather than Gini: with many equal-size segments every clean
    split has the same Gini gain (the first, 1 against the rest, wins), while entropy prefers
    balanced splits, which a depth-3 tree needs to reach 8 segments."""
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(
        max_depth=DEPTH, min_samples_leaf=min_leaf, criterion="entropy", random_state=seed
    )


def held_out_mask(n: int, seed: int) -> np.ndarray:
    """Seeded held-out customers (a quarter)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[: max(1, round(n * HELD_OUT))]] = True
    return mask


def tree_rules(tree: Any, columns: list[str], positive: int | None = None) -> list[dict[str, Any]]:
    """Root-to-leaf paths of a fitted sklearn tree, as readable rules.

    Each rule: ``conditions`` (list of "feature <= t" / "feature > t"), ``segment`` (the
    leaf's majority class, or ``positive`` for a one-vs-rest tree), ``share`` of its training
    customers in that class, ``support`` (training customers at the leaf).
    """
    t = tree.tree_
    out: list[dict[str, Any]] = []

    def walk(node: int, conds: list[str]) -> None:
        if t.children_left[node] == -1:
            value = t.value[node][0]
            cls = int(np.argmax(value))
            label = int(tree.classes_[cls])
            if positive is not None and label != 1:
                return
            out.append({
                "conditions": conds or ["everyone"],
                "segment": label if positive is None else positive,
                "share": round(float(value[cls] / max(value.sum(), 1e-12)), 3),
                "support": int(t.n_node_samples[node]),
            })  # fmt: skip
            return
        name, thr = columns[t.feature[node]], float(t.threshold[node])
        walk(t.children_left[node], [*conds, f"{name} <= {_fmt(thr)}"])
        walk(t.children_right[node], [*conds, f"{name} > {_fmt(thr)}"])

    walk(0, [])
    return out


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.2f}"


@dataclass(frozen=True)
class Surrogates:
    """Fitted surrogates and their held-out fidelity (see the module docstring)."""

    columns: list[str]
    tree_fidelity: float
    ruleset_fidelity: float
    boosted_fidelity: float | None
    rules: list[dict[str, Any]]  # the single tree's
    segment_rules: dict[int, dict[str, Any]]  # per segment: rules, precision, recall
    importance: dict[str, float]  # mean |SHAP|, top features
    segment_importance: dict[int, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["segment_rules"] = {str(k): v for k, v in self.segment_rules.items()}
        out["segment_importance"] = {str(k): v for k, v in self.segment_importance.items()}
        return out


def fit_surrogates(
    X: np.ndarray,
    labels: np.ndarray,
    columns: list[str],
    *,
    seed: int = 0,
    boosted: bool = True,
    top: int = 10,
) -> Surrogates:
    """Fit the surrogates on a seeded 75% and measure their fidelity on the rest."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(np.unique(labels)) < 2:
        raise SegmenterError(f"surrogates need >= 2 segments; got {len(np.unique(labels))}")
    held = held_out_mask(len(X), seed)
    Xt, yt, Xh, yh = X[~held], labels[~held], X[held], labels[held]
    leaf = max(5, int(0.005 * len(Xt)))
    tree = tree_model(leaf, seed)
    tree.fit(Xt, yt)
    segs = [int(s) for s in np.unique(labels)]
    probs = np.zeros((len(Xh), len(segs)))
    segment_rules: dict[int, dict[str, Any]] = {}
    for j, s in enumerate(segs):
        one = tree_model(leaf, seed)
        one.fit(Xt, (yt == s).astype(np.int64))
        p = one.predict_proba(Xh)
        probs[:, j] = p[:, list(one.classes_).index(1)] if 1 in one.classes_ else 0.0
        pred = one.predict(Xh) == 1
        truth = yh == s
        segment_rules[s] = {
            "rules": tree_rules(one, columns, positive=s),
            "precision": round(float((pred & truth).sum() / max(pred.sum(), 1)), 3),
            "recall": round(float((pred & truth).sum() / max(truth.sum(), 1)), 3),
        }
    ruleset = np.asarray(segs)[np.argmax(probs, axis=1)]
    importance: dict[str, float] = {}
    per_segment: dict[int, dict[str, float]] = {}
    boosted_fidelity = None
    if boosted:
        boosted_fidelity, importance, per_segment = _boosted(Xt, yt, Xh, yh, columns, seed, top)
    return Surrogates(
        columns=columns,
        tree_fidelity=round(float((tree.predict(Xh) == yh).mean()), 4),
        ruleset_fidelity=round(float((ruleset == yh).mean()), 4),
        boosted_fidelity=boosted_fidelity,
        rules=tree_rules(tree, columns),
        segment_rules=segment_rules,
        importance=importance,
        segment_importance=per_segment,
    )


def _boosted(
    Xt: np.ndarray,
    yt: np.ndarray,
    Xh: np.ndarray,
    yh: np.ndarray,
    columns: list[str],
    seed: int,
    top: int,
) -> tuple[float, dict[str, float], dict[int, dict[str, float]]]:
    """LightGBM surrogate: held-out fidelity and mean |SHAP| (overall and per segment)."""
    import lightgbm
    import shap

    model = lightgbm.LGBMClassifier(
        n_estimators=300, learning_rate=0.1, num_leaves=7, reg_lambda=1.0, min_child_samples=10,
        random_state=seed, deterministic=True, force_row_wise=True, n_jobs=2, verbose=-1,
    )  # fmt: skip
    model.fit(Xt, yt)
    fidelity = round(float(np.mean(np.asarray(model.predict(Xh)) == yh)), 4)
    rng = np.random.default_rng(seed)
    sample = Xh[rng.permutation(len(Xh))[:SHAP_SAMPLE]]
    values = shap.TreeExplainer(model).shap_values(sample)
    arr = np.stack(values, axis=-1) if isinstance(values, list) else np.asarray(values)
    if arr.ndim == 2:  # two segments: one set of values
        arr = np.stack([-arr, arr], axis=-1)
    mean_abs = np.abs(arr).mean(axis=0)  # (features, classes)
    overall = mean_abs.sum(axis=1)
    order = np.argsort(-overall, kind="stable")[:top]
    importance = {columns[j]: round(float(overall[j]), 5) for j in order}
    per: dict[int, dict[str, float]] = {}
    for c, s in enumerate(model.classes_):
        o = np.argsort(-mean_abs[:, c], kind="stable")[:top]
        per[int(s)] = {columns[j]: round(float(mean_abs[j, c]), 5) for j in o}
    return fidelity, importance, per
