"""The report's explanation parts: each segment's rules with their fidelity, the reasons of the
representative customers and the data of the customer search box.

They come from ``definitions.json`` and ``explanations.parquet``, which
``python -m pipelines.explain RUN_DIR --all`` writes into the run folder; a run without them
gets a report without these parts.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import polars as pl

logger = logging.getLogger(__name__)

#: Rules shown per segment card.
MAX_RULES = 3


def _rule(rule: dict[str, Any]) -> str:
    conditions = " and ".join(rule["conditions"])
    return f"{conditions} ({rule['share']:.0%} of {rule['support']:,} customers)"


def explain_context(run_dir: str | Path) -> dict[str, Any] | None:
    """What the template shows, or None when the run has not been explained."""
    run = Path(run_dir)
    defs_path, table_path = run / "definitions.json", run / "explanations.parquet"
    if not defs_path.is_file() or not table_path.is_file():
        return None
    try:
        defs = json.loads(defs_path.read_text(encoding="utf-8"))
        table = pl.read_parquet(table_path)
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
        logger.warning("report: explanations not shown, cannot read them (%s)", exc)
        return None
    rules = {}
    for seg, entry in defs.get("segment_rules", {}).items():
        ranked = sorted(entry["rules"], key=lambda r: -r["support"] * r["share"])[:MAX_RULES]
        rules[int(seg)] = {
            "rules": [_rule(r) for r in ranked],
            "precision": f"{entry['precision']:.0%}",
            "recall": f"{entry['recall']:.0%}",
        }
    reasons: dict[str, list[str]] = {}
    for row in table.select("user_id", "summary").iter_rows():
        reasons[str(row[0])] = str(row[1]).split("\n")[1:]
    fidelity = {
        "tree": defs.get("tree_fidelity"),
        "ruleset": defs.get("ruleset_fidelity"),
        "boosted": defs.get("boosted_fidelity"),
    }
    importance = list(defs.get("importance", {}))[:8]
    return {"rules": rules, "reasons": reasons, "fidelity": fidelity, "importance": importance}


def explain_payload(run_dir: str | Path) -> dict[str, list[str]] | None:
    """The search box's data: ``u`` (user ids) and ``t`` (their explanation, plain text)."""
    path = Path(run_dir) / "explanations.parquet"
    if not path.is_file():
        return None
    try:
        table = pl.read_parquet(path, columns=["user_id", "summary"])
    except (OSError, pl.exceptions.PolarsError):
        return None
    return {"u": table["user_id"].cast(pl.String).to_list(), "t": table["summary"].to_list()}
