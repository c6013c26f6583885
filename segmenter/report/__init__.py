"""Self-contained HTML report of a run folder.

The page inlines its one script and its styles, loads nothing from the network (a Content
Security Policy forbids it, and allows no script but its own, by hash), and opens from
``file://``. Text from the data is escaped by the template; the map's data is embedded as JSON
(with ``<``, ``>`` and ``&`` escaped) and rendered by the script with ``textContent`` only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from importlib import resources
from pathlib import Path
from typing import Any

from segmenter import io
from segmenter.report.data import RunFolder, load_run, map_sample, quotas
from segmenter.report.explain_view import explain_context, explain_payload
from segmenter.report.render import context, map_payload

__all__ = ["RunFolder", "build_report", "load_run", "map_sample", "quotas", "write_report"]

logger = logging.getLogger(__name__)

#: Default cap on the customers drawn on the map.
MAX_POINTS = 20_000


def _asset(name: str) -> str:
    return resources.files("segmenter.report").joinpath(name).read_text(encoding="utf-8")


def script_json(obj: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&``."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def csp(script: str) -> str:
    """Content Security Policy: nothing from the network; only this script runs."""
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    return (
        f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
        f"img-src data:; base-uri 'none'; form-action 'none'"
    )


def build_report(run_dir: str | Path, *, max_points: int = MAX_POINTS, seed: int = 0) -> str:
    """The report page of a run folder, as a string.

    Parameters
    ----------
    run_dir : path
        A run folder (assignments.parquet, segments.parquet, run.json).
    max_points : int
        At most this many customers on the map (a stratified sample, every segment drawn).
    seed : int
        Seed of the map sample.

    Raises
    ------
    SegmenterError
        When ``run_dir`` is not a run folder.
    """
    import jinja2
    from markupsafe import Markup

    run = load_run(run_dir, max_points=max_points, seed=seed)
    ctx = context(run)
    script = _asset("report.js") + "\n" + _asset("explain.js")  # one script: one CSP hash
    payload: dict[str, Any] = {"map": map_payload(run, ctx["segments"])}
    if (searchable := explain_payload(run_dir)) is not None:
        payload["explain"] = searchable
    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(_asset("report.html"))
    return template.render(
        **ctx,
        css=Markup(_asset("report.css")),
        js=Markup(script),
        csp=csp(script),
        explain=explain_context(run_dir),
        data_json=Markup(script_json(payload)),
    )


def write_report(run_dir: str | Path, *, max_points: int = MAX_POINTS, seed: int = 0) -> Path:
    """Write ``report.html`` into ``run_dir`` (atomically) from the run folder's own files.

    Returns
    -------
    Path
        The report file.
    """
    page = build_report(run_dir, max_points=max_points, seed=seed)
    out = Path(run_dir) / "report.html"
    io.write_text(page, out)
    logger.info("wrote %s (%.1f MB)", out, len(page.encode("utf-8")) / 1e6)
    return out
