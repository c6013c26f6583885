"""Does the tier-count rule transfer? The rule against a constant, leave one case out.

The rule (:func:`segmenter.balance.choose_tiers`) picks the number of value tiers from each data
set's own history. The alternative a team tunes by hand is one constant tier count. For each
behaviour case of the balance section, every tier count ``t = 1..k`` is fitted on our taste
space and value score (what ``SegmenterConfig(value_tiers=t)`` fits) and scored on the real
future; then, leaving each case out in turn, the constant with the best mean B on the other
cases is applied to it, next to the rule's own choice and the hindsight best.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.tables import f, table
from segmenter.balance import activity
from segmenter.cluster.tiered import TieredClusterer
from segmenter.errors import SegmenterError
from segmenter.model import Segmenter


def tier_curve(model: Segmenter, order: np.ndarray, score_fn: Any, seed: int) -> dict[str, Any]:
    """Value and taste of every tier count on one fitted model (k-means method).

    Parameters
    ----------
    model : Segmenter
        Fitted with ``value_tiers="auto"``.
    order : ndarray of int
        Rows of ``model.assignments_`` in the case's customer order.
    score_fn : callable
        Labels in the case's order -> dict with ``value`` (and ``taste``).
    """
    cfg = model.config_
    if model.balance_ is None:
        return {}
    taste = model.reduced_
    score = model.value_axis_.transform(model.features_)
    weights = activity(model.features_)
    rows = []
    nan = float("nan")
    for t in range(1, model.k_ + 1):
        clusterer = TieredClusterer(
            model.k_, n_tiers=t, n_restarts=cfg.n_restarts, n_iter=cfg.n_iter, random_state=seed,
            stable=True,
        )  # fmt: skip
        try:
            labels = clusterer.fit(taste, score, weights).labels_
        except SegmenterError:  # e.g. taste alone cannot split identical documents
            rows.append({"n_tiers": t, "value": nan, "taste": nan, "ari": None})
            continue
        scored = score_fn(labels[order])
        rows.append(
            {
                "n_tiers": t,
                "value": scored.get("value"),
                "taste": scored.get("taste"),
                "ari": scored.get("ari"),  # against the planted truth, where there is one
            }
        )
    return {"chosen": int(model.balance_["n_tiers"]), "rows": rows}


def balanced_rows(curve: dict[str, Any], rfm_value: float, plain_taste: float | None) -> None:
    """Add B (min of the ratios to the specialists; value alone without a taste reference)."""
    for row in curve["rows"]:
        ratios = [row["value"] / rfm_value]
        if plain_taste and row["taste"] is not None:
            ratios.append(row["taste"] / plain_taste)
        row["B"] = float(min(ratios))  # NaN where the tier count could not be fitted


def leave_one_out(curves: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """For each case: B of the rule's choice, of the constant best on the other cases, and of
    the hindsight best tier count; the mean of each over the cases."""
    names = [n for n, c in curves.items() if c.get("rows")]
    if len(names) < 2:
        return {}
    k = min(len(curves[n]["rows"]) for n in names)
    # a tier count that cannot be fitted on a case scores 0 there (a constant must work)
    B = {n: np.nan_to_num([r["B"] for r in curves[n]["rows"][:k]], nan=0.0) for n in names}
    rows = {}
    for name in names:
        others = np.mean([B[o] for o in names if o != name], axis=0)
        constant = int(np.argmax(others)) + 1
        chosen = curves[name]["chosen"]
        rows[name] = {
            "rule": chosen,
            "rule_B": float(B[name][chosen - 1]),
            "constant": constant,
            "constant_B": float(B[name][constant - 1]),
            "best": int(np.argmax(B[name])) + 1,
            "best_B": float(B[name].max()),
        }
    means = {
        key: float(np.mean([r[key] for r in rows.values()]))
        for key in ("rule_B", "constant_B", "best_B")
    }
    worst = {
        key: float(np.min([r[key] for r in rows.values()]))
        for key in ("rule_B", "constant_B", "best_B")
    }
    return {"cases": rows, "mean": means, "worst": worst}


def render_rule(loo: dict[str, Any] | None) -> list[str]:
    """Markdown of :func:`leave_one_out`."""
    if not loo:
        return []
    out = [
        "Tier-count rule vs a constant tier count chosen leave one case out (seed 0; B of each "
        "case's no-items cases is value / RFM's value). `t` = value tiers of the 8 segments:",
        "",
    ]
    rows = [
        [name, str(r["rule"]), f(r["rule_B"], 2), str(r["constant"]), f(r["constant_B"], 2),
         str(r["best"]), f(r["best_B"], 2)]
        for name, r in loo["cases"].items()
    ]  # fmt: skip
    for label in ("mean", "worst"):
        m = loo[label]
        rows.append([f"**{label}**", "", f(m["rule_B"], 2), "", f(m["constant_B"], 2), "",
                     f(m["best_B"], 2)])  # fmt: skip
    out += table(
        ["case", "rule: t", "B", "constant from the other cases: t", "B", "hindsight: t", "B"],
        rows,
    )
    return out


def render_tradeoff(cases: dict[str, Any]) -> list[str]:
    """B and planted ARI of every tier count: where one partition of k cannot hold the value
    axis, the taste axis and the planted groups at once, the curve shows what each choice
    gives up."""
    curves = {n: c["tier_curve"] for n, c in cases.items() if c.get("tier_curve", {}).get("rows")}
    if not curves:
        return []
    k = max(len(c["rows"]) for c in curves.values())
    rows = []
    for name, curve in curves.items():
        cells = []
        for r in curve["rows"]:
            ari = f" ({f(r['ari'], 2)})" if r.get("ari") is not None else ""
            mark = "**" if r["n_tiers"] == curve["chosen"] else ""
            cells.append(f"{mark}{f(r.get('B'), 2)}{ari}{mark}")
        rows.append([name, *cells, *["-"] * (k - len(cells))])
    return [
        "B (and planted ARI, where there is a truth) of every tier count t, seed 0; the rule's "
        "choice in bold:",
        "",
        *table(["case", *(f"t = {t}" for t in range(1, k + 1))], rows),
    ]
