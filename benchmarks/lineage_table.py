"""BENCHMARKS.md tables of the lineage section (:mod:`benchmarks.lineage`)."""

from __future__ import annotations

from typing import Any


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * float(x):.1f}%"


def render_lineage(s: dict[str, Any] | None) -> list[str]:
    if not s or s.get("status") != "ok":
        return []
    syn = s["synthetic"]
    lines = [
        "#### Segments over time: evolving synthetic shop (issue 16)",
        "",
        f"{syn['customers']} customers at period 0, four periods (growth, 10% planted movers, "
        "a split, a retired and a new segment at period 2); refit at the true k each period, "
        "aligned to the period before.",
        "",
        f"- planted segments keeping their id, segment-periods: **{_pct(syn['ids_kept'])}** "
        "(target >= 95%)",
        f"- planted movers in the right cell of the migration table: "
        f"**{_pct(syn['movers_in_right_cell'])}** (target >= 90%)",
        f"- drift check on a period drawn from the same distribution: "
        f"**{syn['drift_same_distribution']['verdict']}**; on the changed periods 1-3: "
        f"**{', '.join(syn['drift_verdicts_changed'])}**",
        "",
        "| period | k | customers | ids kept | movers right | new | retired | splits | merges "
        "| events as planted | drift vs previous model |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in syn["periods"]:
        drift = r.get("drift")
        verdict = "–" if drift is None else drift["verdict"]
        lines.append(
            f"| {r['period']} | {r['k']} | {r['customers']} | {r.get('ids_kept', '–')} "
            f"| {r.get('movers_right', '–')} | {r.get('new', [])} | {r.get('retired', [])} "
            f"| {r.get('splits', {})} | {r.get('merges', {})} "
            f"| {r.get('events_as_planted', '–')} | {verdict} |"
        )
    lines.append("")
    retail = s.get("retail_monthly")
    if retail and retail.get("status") == "ok":
        lines += [
            f"#### Online Retail refitted monthly (k={retail['k']})",
            "",
            f"Share of segment ids kept over all refits: **{_pct(retail['ids_kept'])}**. "
            f"Customers changing segment month to month: **{_pct(retail['moved_aligned_mean'])}** "
            f"with alignment against **{_pct(retail['moved_unaligned_mean'])}** comparing raw "
            "labels (refit without alignment).",
            "",
            "| refit at | customers | ids kept | new | retired | moved (aligned) "
            "| moved (unaligned) | drift vs previous model | fit s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in retail["refits"]:
            lines.append(
                f"| {r['cut']} | {r['customers']} | {r.get('kept', '–')}/{retail['k']} "
                f"| {r.get('new', '–')} | {r.get('retired', '–')} "
                f"| {_pct(r.get('moved_aligned'))} | {_pct(r.get('moved_unaligned'))} "
                f"| {r.get('drift', '–')} | {r['seconds']} |"
            )
        lines += ["", "Migrations at the last refit (largest cells):", ""]
        lines += ["| from | to | customers | spend in the month |", "|---|---|---|---|"]
        for m in retail["last_migrations"][:12]:
            lines.append(
                f"| {m['from_segment']} {m['from_name']} | {m['to_segment']} {m['to_name']} "
                f"| {m['customers']} | {m['spend']:,.0f} |"
            )
        lines.append("")
    return lines
