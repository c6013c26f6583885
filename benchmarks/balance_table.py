"""Markdown of the balance section (:mod:`benchmarks.balance`)."""

from __future__ import annotations

from typing import Any

from benchmarks.tables import f, skipped_note, table
from benchmarks.tier_rule import render_rule, render_tradeoff

SYSTEMS = {
    "ours": "ours (default)",
    "rfm": "RFM + k-means",
    "plain": "plain text + k-means",
    "ceiling": "ceiling: a classifier told the truth",
    "truth": "the planted segments themselves",
}
KINDS = {
    "items": "behaviour + items",
    "no_items": "behaviour, no item information",
    "text": "text only",
}


def _row(case: str, system: str, m: dict[str, Any], b: float | None) -> list[str]:
    return [
        case,
        system,
        f(m.get("value")),
        f(m.get("taste"), 2),
        f(b, 2),
        f(m.get("ari")),
        f(m.get("acc")),
        f(m.get("nmi")),
        f(m.get("seed_ari"), 2),
        f(m.get("seconds"), 2),
    ]


def _verdict(target: str, v: dict[str, Any]) -> str:
    ceiling = f"; the ceiling is {f(v['ceiling'], 2)}" if "ceiling" in v else ""
    if "truth" in v:
        ceiling += f"; the planted segments themselves score {f(v['truth'], 2)}"
    return f"{target}: {'met' if v['met'] else 'not met'} ({f(v['value'], 2)}{ceiling})"


def render_balance(s: dict[str, Any] | None) -> list[str]:
    """One table of every case x system, the fusion sweeps, the axes and the targets."""
    if s is None:
        return []
    out = ["#### Value and taste in one partition, on every shape of data (issue 13)", ""]
    skipped = skipped_note(s)
    if skipped:
        return out + skipped
    out += [
        f"k = {s['k']} (the Banking77 sample: k = intents present), seeds {s['seeds'][0]} and "
        f"{s['seeds'][1]} (means; seed ARI between them). Value: rank η² of future spend; "
        "taste: top-50 lift; B = min(value / RFM's, taste / plain text's); ARI / ACC / NMI "
        "against the planted segments or intents; seconds per seed (shared embedding cache). "
        "Fusion = [plain-text embedding | w × standardized RFM] + KMeans(n_init=10), w chosen "
        "in hindsight by B. Ceiling: out-of-fold predictions of a logistic regression told the "
        "truth, on the behaviour features and the plain-text embedding (5 folds): the most of "
        "the truth the inputs hold for any segmentation. The planted segments themselves: the "
        "truth scored as a segmentation (its value and taste; B against the same baselines).",
        "",
    ]
    rows, sweeps, checks = [], [], []
    for name, c in s["cases"].items():
        label = f"{name} ({KINDS[c['kind']]})"
        for key, title in SYSTEMS.items():
            m = c["systems"].get(key)
            if m is not None:
                rows.append(_row(label, title, m, m.get("B")))
            elif key in c.get("notes", {}):
                rows.append([label, title, c["notes"][key], *["-"] * 7])
        best = (c.get("fusion") or {}).get("best")
        if best is not None:
            rows.append(_row(label, f"best simple fusion (w = {best['weight']})", best, best["B"]))
            sweeps.append(
                [name, *(f"{f(r['value'])} / {f(r['taste'], 2)}" for r in c["fusion"]["rows"])]
            )
        for column, axis in c.get("axes", {}).items():
            rows.append(
                [
                    label,
                    f"{column} ({axis['groups']} groups) vs its specialist",
                    f(axis["ours"]) if column == "value_tier" else "-",
                    f(axis["ours"], 2) if column == "taste_group" else "-",
                    f"{100 * axis['share']:.0f}%" if axis["share"] == axis["share"] else "-",
                    "-",
                    "-",
                    "-",
                    f(axis["seed_ari"], 2),
                    "-",
                ]
            )
        met = [_verdict(t, v) for t, v in c["targets"].items()]
        checks.append(f"- **{name}** ({c['note']}): " + "; ".join(met))
    out += table(
        [
            "case",
            "system",
            "value η²",
            "taste lift",
            "B",
            "ARI vs truth",
            "ACC",
            "NMI",
            "seed ARI",
            "s / seed",
        ],
        rows,
    )
    if sweeps:
        out += ["Simple fusion sweep, value η² / taste lift for each w:", ""]
        out += table(["case", *(f"w = {w}" for w in s["weights"])], sweeps)
    out += render_rule(s.get("leave_one_out"))
    out += render_tradeoff(s["cases"])
    out += ["Targets (ours):", "", *checks, ""]
    return out
