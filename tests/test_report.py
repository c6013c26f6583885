"""The HTML report: self-contained, escaped, complete, scalable; and its CLI."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.fake import HashingEncoder
from pipelines import report as report_cli
from segmenter.config import SegmenterConfig
from segmenter.data import load_events
from segmenter.errors import SegmenterError
from segmenter.model import Segmenter
from segmenter.report import build_report, csp, load_run, quotas, script_json, write_report
from segmenter.runfolder import write_run

SCRIPT_PAYLOAD = "<script>window.__xss=1</script>"
ATTR_PAYLOAD = '" onmouseover="window.__xss=1'


def FakeEncoder() -> HashingEncoder:
    """Hashed bag of words: fast, deterministic, normalized float32."""
    return HashingEncoder(64)


def _page_json(page: str) -> dict:
    blob = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert blob is not None
    return json.loads(blob.group(1))


@pytest.fixture(scope="module")
def run_dir(
    small_tables: dict[str, pl.DataFrame], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A real run folder (fake encoder, no UMAP) whose customers wrote hostile text."""
    events = small_tables["events"].with_columns(
        pl.when(pl.col("event_type") == "review")
        .then(pl.lit(SCRIPT_PAYLOAD))
        .otherwise(pl.col("text"))
        .alias("text"),
        pl.when(pl.col("category") == "Electronics")
        .then(pl.lit(ATTR_PAYLOAD + " ") + pl.col("item_name"))
        .otherwise(pl.col("item_name"))
        .alias("item_name"),
    )
    data = load_events(events, users=small_tables["users"])
    config = SegmenterConfig(k=5, umap_dims=0, pca_dims=8)
    model = Segmenter(config, encoder=HashingEncoder(64), progress=False).fit(data)
    out = tmp_path_factory.mktemp("run") / "run"
    write_run(model, data, out)
    return out


def test_report_is_self_contained(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"https?://", page)
    assert not re.search(r"<(?:link|script|img|iframe)[^>]*\s(?:src|href)=\"(?!data:)", page)
    assert page.count("<script") == 2 and page.count("<style>") == 1
    # only the inlined script may run: the Content Security Policy pins it by hash
    script = re.search(r"<script>(.*?)</script>", page, re.S)
    assert script is not None
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert policy is not None
    assert html.unescape(policy.group(1)) == csp(script.group(1))
    assert "default-src 'none'" in html.unescape(policy.group(1))


def test_every_segment_has_a_card_and_the_report_has_every_section(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    segments = pl.read_parquet(run_dir / "segments.parquet")
    assert page.count('<article class="card"') == segments.height == 5
    for name in segments["name"]:
        assert f"<h3>{name}</h3>" in page
    for section in ("overview", "map", "segments", "compare", "heatmap"):
        assert f'<section id="{section}">' in page
    assert "k-selection" not in page  # --k 8: no k curve
    meta = json.loads((run_dir / "run.json").read_text())
    assert f"{meta['data']['rows']:,}" in page
    data = _page_json(page)["map"]
    assert len(data["x"]) == len(data["u"]) == meta["data"]["customers"]
    assert [s["name"] for s in data["segments"]] == segments["name"].to_list()


def test_customer_text_is_escaped(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert SCRIPT_PAYLOAD not in page
    assert 'window.__xss=1"' not in page and 'onmouseover="' not in page
    # shown as text: the item in a card, the review in a representative's document
    assert '<span class="item-name">&#34; onmouseover=&#34;window.__xss=1 ' in page
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page
    blob = re.search(r'id="report-data">(.*?)</script>', page, re.S)
    assert blob is not None and not set("<>&") & set(blob.group(1))


def test_script_json_escapes_markup() -> None:
    text = script_json({"u": "</script><script>alert(1)</script>&"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"u": "</script><script>alert(1)</script>&"}


def test_report_reads_only_the_run_folder(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "moved"
    shutil.copytree(run_dir, copy)
    shutil.rmtree(copy / "model")
    (copy / "report.html").unlink()
    out = write_report(copy)
    assert out == copy / "report.html"
    page = out.read_text(encoding="utf-8")
    assert page.count('<article class="card"') == 5
    assert not list(copy.glob(".*tmp"))  # the atomic write left nothing behind


def test_a_folder_of_shards_is_read_as_assignments(run_dir: Path, tmp_path: Path) -> None:
    """The Ray engine writes assignments.parquet as a folder of shards: the report, --previous
    and --labels-from read it as they read the one file."""
    from segmenter.classify.labels import labels_from_run
    from segmenter.lineage.previous import load_previous

    copy = tmp_path / "sharded"
    shutil.copytree(run_dir, copy)
    whole = pl.read_parquet(copy / "assignments.parquet")
    (copy / "assignments.parquet").unlink()
    (copy / "assignments.parquet").mkdir()
    for i in range(3):
        shard = whole.filter(pl.int_range(pl.len()) % 3 == i)
        shard.write_parquet(copy / "assignments.parquet" / f"part-{i}.parquet")
    (copy / "report.html").unlink()
    page = write_report(copy).read_text(encoding="utf-8")
    assert page.count('<article class="card"') == 5
    previous = load_previous(copy)
    assert previous.assignments.sort("user_id").equals(whole.sort("user_id"))
    assert labels_from_run(copy).height == whole.height
    shutil.rmtree(copy / "assignments.parquet")
    (copy / "assignments.parquet").mkdir()  # a folder without shards is no table
    with pytest.raises(SegmenterError, match=r"missing assignments\.parquet"):
        write_report(copy)


def test_k_curve_section(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "auto"
    shutil.copytree(run_dir, copy)
    meta = json.loads((copy / "run.json").read_text())
    meta["config"]["k"] = "auto"
    meta["k_curve"] = [
        {"k": k, "silhouette": 0.3 + 0.02 * k, "stability": 0.9 - 0.01 * k, "inertia": 100 / k}
        for k in range(3, 9)
    ]
    (copy / "run.json").write_text(json.dumps(meta))
    page = build_report(copy)
    k_section = re.search(r'<section id="k-selection">(.*?)</section>', page, re.S)
    assert k_section is not None
    assert k_section.group(1).count("<polyline") == 3
    assert "auto → 5" in page


def test_old_minimal_profile_table_still_renders(tmp_path: Path) -> None:
    run = tmp_path / "old"
    run.mkdir()
    pl.DataFrame({"id": [0, 1], "name": ["A <b>", "B"], "size": [2, 1]}).write_parquet(
        run / "segments.parquet"
    )
    pl.DataFrame({"user_id": ["u1", "u2", "u3"], "segment": [0, 0, 1]}).write_parquet(
        run / "assignments.parquet"
    )
    (run / "run.json").write_text("{}")
    page = build_report(run)
    assert page.count('<article class="card"') == 2
    assert "A &lt;b&gt;" in page
    assert _page_json(page)["map"]["x"] == []


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "is not a folder"),
        (lambda p: p.mkdir(), "is not a run folder: missing assignments.parquet"),
        (
            lambda p: (
                p.mkdir(),
                (p / "assignments.parquet").write_bytes(b"x"),
                (p / "segments.parquet").write_bytes(b"x"),
                (p / "run.json").write_text("{not json"),
            ),
            "run.json' is not valid JSON",
        ),
        (
            lambda p: (
                p.mkdir(),
                (p / "assignments.parquet").write_bytes(b"x"),
                (p / "segments.parquet").write_bytes(b"not parquet"),
                (p / "run.json").write_text("{}"),
            ),
            "segments.parquet' could not be read as parquet",
        ),
    ],
)
def test_not_a_run_folder(tmp_path: Path, setup, message: str) -> None:
    target = tmp_path / "run"
    setup(target)
    with pytest.raises(SegmenterError, match=re.escape(message)):
        load_run(target)


def test_cli_rebuilds_the_report(run_dir: Path, tmp_path: Path, capsys) -> None:
    copy = tmp_path / "cli"
    shutil.copytree(run_dir, copy)
    (copy / "report.html").unlink()
    assert report_cli.cli([str(copy), "--quiet"]) == 0
    assert (copy / "report.html").is_file()
    assert str(copy / "report.html") in capsys.readouterr().out


def test_cli_one_line_error_exit_2(tmp_path: Path, capsys) -> None:
    assert report_cli.cli([str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert re.match(r"python -m pipelines\.report: error: RUN_DIR '.*' is not a run folder", err)


# -- scale --------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 200_000), min_size=1, max_size=40),
    max_points=st.integers(50, 30_000),
)
def test_quotas_cap_the_total_and_keep_every_segment(sizes: list[int], max_points: int) -> None:
    table = dict(enumerate(sizes))
    got = quotas(table, max_points)
    assert set(got) == set(table)
    assert all(1 <= got[s] <= table[s] for s in table)
    assert sum(got.values()) <= max(max_points, len(sizes))
    if sum(sizes) <= max_points:
        assert got == table


def test_a_million_customers(tmp_path: Path) -> None:
    n = 1_000_000
    rng = np.random.default_rng(0)
    # very uneven segments, a tiny one and outliers included
    p = np.array([0.4, 0.25, 0.15, 0.1, 0.05, 0.03, 0.019, 0.000005])
    labels = rng.choice(len(p), size=n, p=p / p.sum())
    labels[:300] = -1
    labels[300:303] = 7  # at least three customers in the smallest segment
    assignments = pl.DataFrame(
        {
            "user_id": pl.int_range(n, eager=True).cast(pl.String).str.zfill(9),
            "segment": pl.Series(labels, dtype=pl.Int64),
            "segment_name": pl.Series(labels, dtype=pl.Int64).cast(pl.String),
            "confidence": rng.random(n, dtype=np.float32),
            "distance": rng.random(n, dtype=np.float32),
            "map_x": (rng.normal(size=n) + labels).astype(np.float32),
            "map_y": rng.normal(size=n).astype(np.float32),
        }
    )
    ids, sizes = np.unique(labels, return_counts=True)
    segments = pl.DataFrame(
        {
            "id": ids.astype(np.int64),
            "name": [f"Segment {i}" if i >= 0 else "Outliers" for i in ids],
            "size": sizes.astype(np.int64),
            "share": sizes / n,
            "top_items": [[f"item {j}" for j in range(5)]] * len(ids),
            "representative_ids": [["0", "1", "2"]] * len(ids),
            "representative_documents": [["x" * 600] * 3] * len(ids),
        }
    )
    run = tmp_path / "big"
    run.mkdir()
    assignments.write_parquet(run / "assignments.parquet")
    segments.write_parquet(run / "segments.parquet")
    (run / "run.json").write_text(json.dumps({"data": {"customers": n, "rows": 30 * n}}))
    out = write_report(run)
    assert out.stat().st_size < 15 * 1024 * 1024
    page = out.read_text(encoding="utf-8")
    data = _page_json(page)["map"]
    assert 19_000 <= len(data["x"]) <= 20_000
    drawn = np.bincount(data["s"], minlength=len(ids))
    assert (drawn >= 1).all()  # every segment, the 3-customer one and the outliers included
    assert "Showing a stratified sample of" in page and "1,000,000" in page


@pytest.mark.parametrize(
    ("deep", "expected"),
    [({"best_step": 40, "accepted": True, "collapse_guard_triggered": False,
       "behaviour_separation": {"frozen": 0.573, "deep": 0.571}},
      "fine-tuned encoder in use (best step 40; behaviour η² 0.571 against 0.573 frozen)"),
     ({"best_step": 40, "accepted": False, "collapse_guard_triggered": True,
       "rejected_because": "the fine-tuned segments explain less of the behaviour features",
       "behaviour_separation": {"frozen": 0.648, "deep": 0.616}},
      "tried; the frozen encoder and segments were kept: the fine-tuned segments explain less "
      "of the behaviour features (behaviour η² 0.616 against 0.648 frozen); the collapse guard "
      "restored an earlier step"),
     ({"best_step": 0, "accepted": False, "collapse_guard_triggered": False,
       "rejected_because": "no fine-tuned checkpoint passed the acceptance rule",
       "behaviour_separation": {"frozen": 0.0, "deep": 0.0},
       "acceptance": {"agreement": 0.12, "separation": 0.4, "stability": -0.2}},
      "tried; the frozen encoder and segments were kept: no fine-tuned checkpoint passed the "
      "acceptance rule (held-out neighbour agreement 0.12, separation 0.4, stability change "
      "-0.2)"),
     ({"best_step": 0, "collapse_guard_triggered": False},  # a run folder from before the check
      "fine-tuned encoder in use (best step 0)")],
)  # fmt: skip
def test_overview_says_what_the_deep_head_did(
    run_dir: Path, tmp_path: Path, deep: dict, expected: str
) -> None:
    copy = tmp_path / "deep"
    shutil.copytree(run_dir, copy)
    meta = json.loads((copy / "run.json").read_text())
    meta["deep"] = deep
    (copy / "run.json").write_text(json.dumps(meta))
    page = build_report(copy)
    assert f'<dt>Deep head</dt><dd class="wrap-any">{html.escape(expected)}</dd>' in page
    assert "Deep head" not in build_report(run_dir)


def test_overview_says_how_the_segment_space_was_built(run_dir: Path, tmp_path: Path) -> None:
    page = build_report(run_dir)
    meta = json.loads((run_dir / "run.json").read_text())
    tiers = meta["balance"]["n_tiers"]
    assert f'<dt>Value tiers</dt><dd class="wrap-any">{tiers} (chosen by data)</dd>' in page
    assert "UMAP dims" not in page  # k-means segments never pass through UMAP
    copy = tmp_path / "fused"
    shutil.copytree(run_dir, copy)
    meta.update(balance=None, reduction={"umap_dims": 10})
    (copy / "run.json").write_text(json.dumps(meta))
    fused = build_report(copy)
    assert "Value tiers" not in fused and "PCA → UMAP dims" in fused


# -- value and taste ----------------------------------------------------------------------------
def _section(page: str) -> str:
    found = re.search(r'<section id="value-taste">(.*?)</section>', page, re.S)
    assert found is not None, "no Value and taste section"
    return found.group(1)


def _table_counts(section: str, table_id: str) -> list[list[int]]:
    table = re.search(rf'<table class="counts" id="{table_id}">(.*?)</table>', section, re.S)
    assert table is not None
    rows = re.findall(r"<tr><th scope=\"row\">.*?</tr>", table.group(1), re.S)
    cells = [re.findall(r'title="[^"]*">([^<]*)</td>', row) for row in rows]
    return [[0 if c == "·" else int(c.replace(",", "")) for c in row] for row in cells]


def _with_balance(run_dir: Path, target: Path, **balance: object) -> Path:
    shutil.copytree(run_dir, target)
    meta = json.loads((target / "run.json").read_text())
    meta["balance"] = {**meta["balance"], **balance}
    (target / "run.json").write_text(json.dumps(meta))
    return target


def test_value_and_taste_section(run_dir: Path) -> None:
    meta = json.loads((run_dir / "run.json").read_text())
    balance = meta["balance"]
    assert balance["chosen_by"] == "data" and len(balance["curve"]) == meta["k"] == 5
    page = build_report(run_dir)
    assert '<a href="#value-taste">Value and taste</a>' in page
    section = _section(page)
    t = balance["n_tiers"]
    sentence = {
        1: "All 5 segments follow taste (your data&#39;s value is carried by taste).",
        5: "All 5 segments are value tiers, with no split by taste (chosen from your data: "
        "the split that keeps the most of both value and taste).",
    }.get(t, f"5 segments = {t} value tiers, split by taste (chosen from your data")
    assert f'<p class="lead">{sentence}' in section
    # the trade-off curve: inline SVG, x = 1..5 tiers, two lines, the chosen tier marked
    assert section.count('<svg class="chart"') == 1 and "xmlns" not in section
    assert section.count("<polyline") == 2 and "value kept" in section and "taste kept" in section
    assert section.count('<circle cx="') == 2 * 5
    assert section.count('class="chosen"') == 2 and section.count('class="mark"') == 1
    assert ">100%</text>" in section
    # segments x value tier, value tier x taste group: every customer counted once
    assignments = pl.read_parquet(run_dir / "assignments.parquet")
    by_segment = _table_counts(section, "segment-by-tier")
    crossing = _table_counts(section, "tier-by-taste")
    n_tiers = assignments["value_tier"].n_unique()
    n_groups = assignments["taste_group"].n_unique()
    assert len(by_segment) == 5 and {len(r) for r in by_segment} == {n_tiers}
    assert len(crossing) == n_tiers and {len(r) for r in crossing} == {n_groups}
    assert sum(map(sum, by_segment)) == sum(map(sum, crossing)) == assignments.height
    top = assignments.filter(pl.col("value_tier") == n_tiers - 1)
    groups = sorted(assignments["taste_group"].unique())
    expected = [int((top["taste_group"] == g).sum()) for g in groups]
    assert crossing[0] == expected  # top tier first, taste groups in order


def test_value_and_taste_says_who_chose_and_when_k_cannot_hold_both(
    run_dir: Path, tmp_path: Path
) -> None:
    user = _with_balance(run_dir, tmp_path / "user", n_tiers=2, chosen_by="user", curve=[])
    section = _section(build_report(user))
    assert (
        '<p class="lead">5 segments = 2 value tiers, split by taste '
        "(chosen by you: --value-tiers 2).</p>" in section
    )
    assert "<svg" not in section and 'class="callout"' not in section  # no curve to draw
    assert "consensus of many k-means runs" not in section
    voted = _with_balance(run_dir, tmp_path / "voted", n_tiers=2, chosen_by="user", consensus=True)
    assert "the segments are the consensus of many k-means runs" in _section(build_report(voted))
    curve = [
        {"n_tiers": t, "value": 0.2 * t, "taste": 1.0 - 0.15 * (t - 1), "balance": 0.0}
        for t in range(1, 6)
    ]
    torn = _with_balance(run_dir, tmp_path / "torn", n_tiers=3, chosen_by="data", curve=curve)
    section = _section(build_report(torn))
    assert "5 segments = 3 value tiers, split by taste (chosen from your data: the split" in section
    assert "These segments keep 60% of the value that value-only segments find and 70%" in section
    assert "one set of 5 segments cannot hold both here" in section
    assert "value_tier and taste_group columns" in section
    # one axis not checked: one line, and no claim about both
    unchecked = [{**row, "value": None} for row in curve]
    blind = _with_balance(run_dir, tmp_path / "blind", n_tiers=1, curve=unchecked)
    section = _section(build_report(blind))
    assert "value could not be checked on your data" in section
    assert section.count("<polyline") == 1 and 'class="callout"' not in section


@pytest.mark.parametrize("change", ["no balance", "null balance", "no columns"])
def test_value_and_taste_absent_for_older_runs(run_dir: Path, tmp_path: Path, change: str) -> None:
    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    meta = json.loads((old / "run.json").read_text())
    if change == "no balance":
        del meta["balance"]
    elif change == "null balance":  # hdbscan
        meta["balance"] = None
    else:
        assignments = pl.read_parquet(old / "assignments.parquet")
        assignments.drop("value_tier", "taste_group").write_parquet(old / "assignments.parquet")
    (old / "run.json").write_text(json.dumps(meta))
    page = build_report(old)
    assert 'id="value-taste"' not in page and "Value and taste" not in page
    assert page.count('<article class="card"') == 5
