"""Self-contained HTML report of a run folder."""

from __future__ import annotations

import html
import json
from pathlib import Path

import polars as pl

from segmenter import io


def write_report(run_dir: str | Path) -> Path:
    """Write ``report.html`` into ``run_dir`` from its parquet files and run.json."""
    run = Path(run_dir)
    segments = pl.read_parquet(run / "segments.parquet")
    meta = json.loads((run / "run.json").read_text(encoding="utf-8"))
    rows = "".join(
        f"<tr><td>{int(r['id'])}</td><td>{html.escape(str(r['name']))}</td>"
        f"<td>{int(r['size'])}</td><td>{r['share']:.1%}</td></tr>"
        for r in segments.iter_rows(named=True)
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Segments</title></head><body>"
        f"<h1>{len(segments)} segments of {meta['data']['customers']} customers</h1>"
        f"<table><tr><th>id</th><th>name</th><th>size</th><th>share</th></tr>{rows}</table>"
        "</body></html>"
    )
    out = run / "report.html"
    io.write_text(page, out)
    return out
