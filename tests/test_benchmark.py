"""The benchmark: metric functions against hand-computed values, and its code paths on tiny
inputs with a fake encoder (benchmarks themselves never run in the test suite)."""

from __future__ import annotations

import ast
import json
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

import benchmarks
import segmenter
from benchmarks.context import SIZES, BenchCache, BenchContext
from benchmarks.fake import HashingEncoder
from benchmarks.latency import assign_one, one_customer_frames
from benchmarks.markdown import begin_marker, end_marker, render, update_markdown
from benchmarks.metrics import (
    eta_squared,
    hit_rate,
    hungarian_accuracy,
    rank_eta_squared,
    recovery,
    taste_lift,
    top_items,
)
from benchmarks.retail import (
    evaluate,
    hdbscan_labels,
    labels_for_k,
    target_check,
    temporal_split,
)
from benchmarks.speed import compare_chains, encoder_overhead
from benchmarks.suite import EXTRAS, run_extra, run_suite
from benchmarks.worker import changed_events
from pipelines import benchmark
from pipelines._cli import run_cli
from segmenter.config import SegmenterConfig
from segmenter.data import EventData, load_events
from segmenter.errors import SegmenterError
from segmenter.model import Segmenter

FAKE = "benchmarks.fake:HashingEncoder"


# -- metrics ---------------------------------------------------------------------------------
def test_eta_squared_by_hand() -> None:
    # mean 2.5; total SS = 5; group means 1.5 and 3.5 -> between SS = 4
    assert eta_squared(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 0, 1, 1])) == pytest.approx(0.8)
    assert eta_squared(np.array([1.0, 2.0, 1.0, 2.0]), np.array([0, 0, 1, 1])) == 0.0
    assert eta_squared(np.array([3.0, 3.0, 3.0]), np.array([0, 1, 2])) == 0.0
    assert eta_squared(np.array([1.0, 5.0]), np.array([0, 1])) == pytest.approx(1.0)


def test_rank_eta_squared_uses_average_ranks() -> None:
    # ranks of [10, 10, 0, 5] are [3.5, 3.5, 1, 2]: total SS 4.5, between SS 4
    values, labels = np.array([10.0, 10.0, 0.0, 5.0]), np.array([0, 0, 1, 1])
    assert rank_eta_squared(values, labels) == pytest.approx(4 / 4.5)
    # invariant to monotone transforms (one huge spender cannot carry it)
    assert rank_eta_squared(values**3 + 1e6 * (values == 10), labels) == pytest.approx(4 / 4.5)


def test_eta_squared_rejects_mismatched_shapes() -> None:
    with pytest.raises(SegmenterError, match=r"values of shape \(3,\) and labels of shape"):
        eta_squared(np.zeros(3), np.zeros(2))


PAST = [(0, "a"), (1, "a"), (1, "c"), (2, "b"), (3, "b"), (3, "a")]
FUTURE = {0: {"a", "c"}, 2: {"b"}, 3: {"b", "d"}}


def test_top_items_counts_distinct_buyers_and_breaks_ties_by_item() -> None:
    tops = top_items([*PAST, (0, "a")], np.array([0, 0, 1, 1]), n_top=2)
    assert tops == {0: ["a", "c"], 1: ["b", "a"]}
    # a and b both have one buyer in group 0: the tie goes to the smaller key
    assert top_items([(0, "b"), (1, "a")], np.array([0, 0]), n_top=1) == {0: ["a"]}


def test_taste_lift_by_hand() -> None:
    labels = np.array([0, 0, 1, 1])
    # top-1 lists: global [a] (3 buyers), segment 0 [a], segment 1 [b]
    # segment hits: customer 0 a (1 of 2), customer 2 b (1 of 1), customer 3 b (1 of 2) -> 3/5
    # global hits: customer 0 a only -> 1/5
    out = taste_lift(PAST, FUTURE, labels, n_top=1)
    assert out["segment_hit_rate"] == pytest.approx(0.6)
    assert out["global_hit_rate"] == pytest.approx(0.2)
    assert out["lift"] == pytest.approx(3.0)
    # an outlier (-1) is scored with the global list: customer 3 now has no hit -> 2/5
    out = taste_lift(PAST, FUTURE, np.array([0, 0, 1, -1]), n_top=1)
    assert out["lift"] == pytest.approx(2.0)


def test_hit_rate_without_future_buyers_is_nan() -> None:
    assert np.isnan(hit_rate({}, {0: ["a"]}, np.array([0])))


def test_hungarian_accuracy_by_hand() -> None:
    truth = np.array([0, 0, 1, 1, 2, 2])
    assert hungarian_accuracy(truth, np.array([1, 1, 0, 0, 0, 2])) == pytest.approx(5 / 6)
    assert hungarian_accuracy(truth, np.array([7, 7, 3, 3, 5, 5])) == 1.0
    # more clusters than labels: unmatched clusters count as errors
    assert hungarian_accuracy(truth, np.array([0, 1, 2, 3, 4, 5])) == pytest.approx(3 / 6)
    scores = recovery(truth, np.array([2, 2, 0, 0, 1, 1]))
    assert scores["ari"] == pytest.approx(1.0) and scores["nmi"] == pytest.approx(1.0)


def test_hungarian_accuracy_rejects_different_lengths() -> None:
    with pytest.raises(SegmenterError, match="same non-zero length"):
        hungarian_accuracy(np.array([0, 1]), np.array([0]))


# -- retail evaluation on synthetic events ---------------------------------------------------
@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> BenchContext:
    cache = BenchCache(tmp_path_factory.mktemp("bench-cache"))
    return BenchContext("smoke", SIZES["smoke"], encoder_spec=FAKE, cache=cache)


def test_temporal_split_outcomes(small_data: EventData) -> None:
    ts = small_data.events["timestamp"]
    cut: datetime = ts.min() + (ts.max() - ts.min()) * 0.75  # type: ignore[operator]
    split = temporal_split(small_data, cut)
    events = small_data.events
    assert split.customers == sorted(
        events.filter(pl.col("timestamp") < cut)["user_id"].unique().to_list()
    )
    assert split.calibration.events["timestamp"].max() < cut  # type: ignore[operator]
    uid = split.customers[int(np.argmax(split.future_spend))]
    after = events.filter((pl.col("user_id") == uid) & (pl.col("timestamp") >= cut))
    spend = (
        after.filter(pl.col("event_type") == "purchase")["amount"].sum()
        - after.filter(pl.col("event_type") == "return")["amount"].abs().sum()
    )
    assert split.future_spend.max() == pytest.approx(spend)
    assert set(np.unique(split.bought_again)) <= {0.0, 1.0}
    assert len(split.future) == int(split.bought_again.sum())
    scores = evaluate(split, np.arange(len(split.customers)) % 3)
    assert 0 <= scores["value_eta2"] <= 1 and scores["taste_lift"] > 0


@pytest.mark.slow
def test_labels_for_k_equals_a_fit_with_that_k(small_data: EventData, ctx: BenchContext) -> None:
    config = SegmenterConfig(k=4, seed=1, pca_dims=8, umap_dims=2)
    fitted = Segmenter(config, encoder=ctx.encoder, progress=False).fit(small_data)
    direct = Segmenter(config.replace(k=3), encoder=ctx.encoder, progress=False).fit(small_data)
    assert np.array_equal(
        labels_for_k(fitted, 3, small_data), direct.assignments_["segment"].to_numpy()
    )
    density = Segmenter(config.replace(method="hdbscan"), encoder=ctx.encoder, progress=False)
    density.fit(small_data)
    assert np.array_equal(
        hdbscan_labels(fitted, small_data), density.assignments_["segment"].to_numpy()
    )


def test_target_check() -> None:
    def system(value: float, taste: float) -> dict[str, object]:
        return {"by_k": {"8": {"value_eta2": value, "taste_lift": taste}}}

    systems = {"default": system(0.28, 1.4), "rfm": system(0.29, 1.0), "text": system(0.1, 1.45)}
    out = target_check(systems)
    assert out["value_share_of_rfm"] == pytest.approx(0.28 / 0.29)
    assert out["met"] is True
    systems["default"] = system(0.2, 1.4)
    assert target_check(systems)["met"] is False


# -- speed helpers ---------------------------------------------------------------------------
def test_changed_events_adds_one_order_to_one_percent(small_data: EventData) -> None:
    events, n = changed_events(small_data.events, 0.01, seed=0)
    assert n == 4
    assert events.height == small_data.events.height + 4
    added = events.filter(pl.col("order_id").str.ends_with("-repeat"))
    assert added["user_id"].n_unique() == 4


def test_encoder_overhead_alternates(ctx: BenchContext) -> None:
    out = encoder_overhead(HashingEncoder(), [f"text number {i}" for i in range(30)], rounds=3)
    assert len(out["ours_seconds"]) == len(out["bare_seconds"]) == 3
    assert out["ratio_of_medians"] > 0
    with pytest.raises(SegmenterError, match="rounds=0"):
        encoder_overhead(HashingEncoder(), ["a"], rounds=0)


def test_compare_chains_ratios() -> None:
    ours = {
        "stages": {"embed": 10.0, "reduce": 4.0, "cluster": 1.0, "features": 1.0},
        "chain_seconds": 16.0,
        "peak_rss_mib": 100.0,
        "ari": 0.9,
    }
    naive = {
        "stages": {"documents": 1.0, "embed": 10.0, "cluster": 10.0},
        "chain_seconds": 20.0,
        "peak_rss_mib": 200.0,
        "ari": 0.8,
    }
    q = compare_chains(ours, naive)
    assert q["kmeans_chain"] == pytest.approx(0.8)
    assert q["shared_stages"] == pytest.approx(11 / 20)
    assert q["per_stage"]["cluster"] == pytest.approx(0.1)
    assert q["peak_rss"] == pytest.approx(0.5)
    assert q["ari_gain"] == pytest.approx(0.1)
    assert compare_chains({**ours, "ari": None}, naive)["ari_gain"] is None


def test_cold_cache_ignores_old_vectors_but_fills_the_shared_folder(tmp_path: Path) -> None:
    from segmenter.embed import embed_documents

    encoder, texts = HashingEncoder(), ["one text", "another text"]
    embed_documents(encoder, texts[:1], BenchCache(tmp_path))  # an earlier run
    cold = BenchCache(tmp_path, cold=True)
    _, stats = embed_documents(encoder, texts, cold)
    assert stats == {"encoded": 2, "cached": 0} and (cold.hits, cold.misses) == (0, 2)
    _, stats = embed_documents(encoder, texts, cold)  # within the run it is a cache
    assert stats == {"encoded": 0, "cached": 2}
    cold.close()
    warm = BenchCache(tmp_path)
    _, stats = embed_documents(encoder, texts, warm)
    assert stats == {"encoded": 0, "cached": 2} and warm.hits == 2


# -- classification and deep clustering sections ---------------------------------------------
def test_extras_report_failures_without_stopping(ctx: BenchContext) -> None:
    def broken(shared_data: Path, *, quick: bool, seed: int) -> dict[str, float]:
        raise RuntimeError("boom")

    out = run_extra("broken", broken, ctx)
    assert out["status"] == "failed" and "boom" in out["note"]
    out = run_extra("fine", lambda shared_data, *, quick, seed: {"acc": 0.5, "quick": quick}, ctx)
    assert out["status"] == "ok" and out["result"] == {"acc": 0.5, "quick": True}
    assert set(EXTRAS) == {"classification", "deep_clustering"}


# -- benchmarks use the public API only ------------------------------------------------------
def private_uses(source: str) -> list[str]:
    """Private names of ``segmenter`` imported by ``source``, and private attributes it reads
    of any object but its own (``self``/``cls``): what a benchmark must not depend on."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "segmenter":
            module = node.module or ""
            names = [a.name for a in node.names]
            found += [f"{module}.{n}" for n in names if _private(n) or _private_path(module)]
        elif isinstance(node, ast.Import):
            found += [
                a.name
                for a in node.names
                if a.name.split(".")[0] == "segmenter" and _private_path(a.name)
            ]
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            owner = ast.unparse(node.value)
            if owner not in ("self", "cls"):
                found.append(f"{owner}.{node.attr} (line {node.lineno})")
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_path(module: str) -> bool:
    return any(_private(part) for part in module.split("."))


def test_private_uses_catches_what_it_should() -> None:
    source = (
        "from segmenter.cluster.deep import DeepConfig, _neighbours\n"
        "import segmenter._hidden\n"
        "from segmenter._impl import thing\n"
        "def f(model, self):\n"
        "    return model._features, self._own, model.__class__, model.timings_\n"
    )
    assert private_uses(source) == [
        "segmenter.cluster.deep._neighbours",
        "segmenter._hidden",
        "segmenter._impl.thing",
        "model._features (line 5)",
    ]


def test_benchmarks_import_only_public_names() -> None:
    root = Path(benchmarks.__file__).parent
    files = [*sorted(root.glob("*.py")), Path(benchmark.__file__)]
    assert len(files) > 10
    found = {f.name: private_uses(f.read_text(encoding="utf-8")) for f in files}
    assert {name: uses for name, uses in found.items() if uses} == {}


def test_benchmark_code_is_not_in_the_library() -> None:
    library = Path(segmenter.__file__).parent
    assert not (library / "bench").exists()
    assert not (library / "classify" / "bench.py").exists()
    uses = re.compile(r"^\s*(from|import) benchmarks\b", re.M)
    assert not [f for f in library.rglob("*.py") if uses.search(f.read_text(encoding="utf-8"))]


def test_predict_records_the_stage_timings_the_latency_section_reads(
    small_data: EventData,
) -> None:
    config = SegmenterConfig(k=3, umap_dims=0, pca_dims=8)
    model = Segmenter(config, encoder=HashingEncoder(64), progress=False).fit(small_data)
    fit_timings = dict(model.timings_)
    # the scale benchmark's memory by stage: one peak per fit stage, never decreasing
    assert list(model.peak_rss_mb_) == list(fit_timings)
    peaks = list(model.peak_rss_mb_.values())
    assert peaks[0] > 0 and peaks == sorted(peaks)
    events, users = one_customer_frames(1, seed=3)[0]
    start = time.perf_counter()
    recorded = assign_one(model, events, users)
    seconds = time.perf_counter() - start
    assert list(recorded) == ["load_events", *Segmenter.PREDICT_STAGES]
    assert all(v >= 0 for v in recorded.values()) and sum(recorded.values()) <= seconds
    assert model.timings_ == fit_timings  # the fit's timings (run.json) stay the fit's
    model.transform(load_events(events, users=users))
    assert list(model.last_timings_) == list(Segmenter.PREDICT_STAGES[:5])


# -- markdown --------------------------------------------------------------------------------
def _result(suite: str, sections: dict[str, Any]) -> dict[str, Any]:
    """A minimal saved benchmark result, as the renderer reads it."""
    return {
        "suite": suite,
        "seed": 0,
        "started": "2026-01-01T00:00:00",
        "command": "python -m pipelines.benchmark",
        "machine": {
            "nproc": 2,
            "cpu": "x",
            "ram_gib": 8.0,
            "gpu": None,
            "load_average_1m_at_start": 0.5,
            "versions": {},
        },
        "seconds_total": 60.0,
        "sections": sections,
    }


def test_update_markdown_replaces_only_its_section(tmp_path: Path) -> None:
    result = _result("quick", {"retail": {"status": "skipped", "note": "skipped: missing"}})
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nHand-written intro.\n\n## Tail\n", encoding="utf-8")
    update_markdown(path, result)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks\n\nHand-written intro.") and "## Tail" in text
    assert begin_marker("quick") in text and end_marker("quick") in text
    assert "skipped: missing" in text
    update_markdown(path, {**result, "seconds_total": 120.0})
    again = path.read_text(encoding="utf-8")
    assert again.count(begin_marker("quick")) == 1 and "**2.0 min**" in again


# -- the whole quick suite's code paths on tiny inputs ---------------------------------------
@pytest.mark.slow
def test_smoke_suite_runs_every_section(
    small_data: EventData, ctx: BenchContext, tmp_path: Path
) -> None:
    seen: list[list[str]] = []
    result = run_suite(
        ctx,
        retail_data=small_data,
        command="test",
        checkpoint=lambda partial: seen.append(list(partial["sections"])),
    )
    sec = result["sections"]
    assert seen[0] == ["retail"] and seen[-1] == list(sec)
    retail = sec["retail"]
    assert retail["status"] == "ok" and retail["customers"] <= 120
    assert set(retail["systems"]) == {"default", "text", "rfm", "hdbscan"}
    for name in ("default", "text", "rfm"):
        for scores in retail["systems"][name]["by_k"].values():
            assert 0 <= scores["value_eta2"] <= 1 and -1 <= scores["stability"] <= 1
    assert sec["planted"]["status"] == "ok" and -1 <= sec["planted"]["ari"] <= 1
    assert sec["latency"]["median_ms"] > 0 and sec["latency"]["customers"] == 5
    assert sec["encoder_overhead"]["texts"] == 40
    speed = sec["speed"]["sizes"][0]
    assert speed["n"] == 150 and speed["ours"]["peak_rss_mib"] > 0
    assert speed["ours"]["cache_rerun"]["encoded"] >= 1
    assert -1 <= speed["ours"]["ari"] <= 1 and -1 <= speed["naive"]["ari"] <= 1
    assert len(sec["sweep"]["rows"]) == 2
    text = render(json.loads(json.dumps(result, default=str)))
    assert "Online Retail" in text and "Speed and memory" in text


# -- the command line ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--suite", "huge"], "--suite: 'huge' is not one of"),
        (["--seed", "-1"], "--seed: -1 should be >= 0"),
        (["--customers", "5"], "--customers: 5 should be >= 100"),
        (["--ray-runs", "local,fast"], "--ray-runs: 'local,fast' should name runs among"),
        (["--from-json", "missing.json"], "--from-json: 'missing.json' does not exist"),
        (["--out", "pyproject.toml"], "--out: 'pyproject.toml' exists and is a file"),
    ],
)
def test_cli_bad_options_are_one_line_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_cli(benchmark.build_parser(), benchmark.main, [*argv, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_without_the_benchmarks_package_is_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] == "benchmarks"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "benchmarks", None)  # what an installed wheel sees
    code = run_cli(benchmark.build_parser(), benchmark.main, ["--suite", "smoke", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "benchmarks: the package is not importable here" in err


def test_cli_from_json_rerenders(tmp_path: Path) -> None:
    result = _result("full", {})
    source, markdown = tmp_path / "r.json", tmp_path / "B.md"
    source.write_text(json.dumps(result), encoding="utf-8")
    argv = ["--from-json", str(source), "--markdown", str(markdown), "--quiet"]
    assert run_cli(benchmark.build_parser(), benchmark.main, argv) == 0
    assert "### Full suite" in markdown.read_text(encoding="utf-8")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux /proc only")
def test_peak_memory_of_a_command_is_its_own_not_its_parents() -> None:
    """``ru_maxrss`` of a child starts at its parent's resident size at fork: a benchmark that
    generated a million customers saw 18 GB "driver peaks" that were its own memory."""
    import subprocess

    ballast = bytearray(600_000_000)  # this process resident: +600 MB, touched
    ballast[::4096] = b"\x01" * len(ballast[::4096])
    code = "from segmenter.model import peak_rss_mb; print(peak_rss_mb())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    child = float(out.stdout.strip())
    assert 0 < child < 500, child  # the child's own imports, not the parent's 600 MB
    del ballast


def test_ray_scale_table_of_some_runs_has_no_overhead_line() -> None:
    from benchmarks.ray_scale import render_ray_scale

    run = {
        "flags": "--engine local",
        "seconds": 12.5,
        "driver_peak_rss_mb": 900.0,
        "worker_peak_rss_mb": None,
        "workers_peak_rss_mb": None,
        "fit_sample_customers": None,
    }
    two = {**run, "flags": "--engine ray --ray-actors 2", "seconds": 15.0}
    section = {"customers": 100_000, "events": 2_300_000, "cpus": 2,
               "runs": {"local": run, "ray_2_actors": two},
               "ray_overhead_1_actor": None, "target_overhead": 0.15, "overhead_met": None,
               "load_average_before": [1.0], "load_average_after": [2.0]}  # fmt: skip
    text = "\n".join(render_ray_scale(section))
    assert "| local (`--engine local`) | 12.5 | - | 900.0 | - | - | 100000 |" in text
    # each Ray run against the local engine of the same run
    assert "| ray_2_actors (`--engine ray --ray-actors 2`) | 15.0 | +20.0% | 900.0 |" in text
    assert "Overhead" not in text and "Load average before [1.0]" in text


def test_ray_identity_compares_customers_by_id_without_relabelling(tmp_path: Path) -> None:
    from benchmarks.ray_identity import cases, compare, render_ray_identity

    local = pl.DataFrame({"user_id": ["a", "b", "c", "d"], "segment": [0, 1, 1, 2],
                          "value_tier": [0, 0, 1, 1], "taste_group": [3, 3, 3, 3]})  # fmt: skip
    ray = (
        local.reverse()
        .with_columns(  # another order, one customer moved, one missing
            pl.when(pl.col("user_id") == "b").then(2).otherwise(pl.col("segment")).alias("segment")
        )
        .filter(pl.col("user_id") != "d")
    )
    same = compare(local, ray)
    assert same["identical_segment"] == 0.5  # a and c of the local run's four
    assert same["identical_value_tier"] == 0.75 and same["customers_ray"] == 3
    section = {"cases": {"sample": {**same, "runs": {"local": {"seconds": 3.0},
               "ray": {"seconds": 4.0}}}}, "target": 0.995, "met": False,
               "missing": ["online_retail"]}  # fmt: skip
    text = "\n".join(render_ray_identity(section))
    assert "| sample | 4 / 3 | 50.00% | 75.00% | 75.00% | 3.0 | 4.0 |" in text
    assert "NOT met" in text and "Not run (file missing): online_retail" in text
    ctx = BenchContext("smoke", SIZES["smoke"], shared_data=tmp_path)  # no Online Retail there
    assert list(cases(ctx)) == ["sample"]


def test_peak_memory_never_goes_down_within_a_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel syncs VmHWM lazily, so a later read can be lower than an earlier one; a fork
    starts from its own mark."""
    import io

    from segmenter import model as model_module

    marks = iter(["2048", "1024", "1024"])
    monkeypatch.setattr(
        model_module, "open", lambda *a, **k: io.StringIO(f"VmHWM:\t {next(marks)} kB\n"),
        raising=False,
    )  # fmt: skip
    monkeypatch.setattr(model_module, "_PEAK_PID", 0)
    monkeypatch.setattr(model_module, "_PEAK_MB", 0.0)
    first = model_module.peak_rss_mb()
    assert first == round(2048 * 1.024 / 1e3, 1)
    assert model_module.peak_rss_mb() == first  # the lower read does not lower the peak
    monkeypatch.setattr(model_module.os, "getpid", lambda: -1)  # as in a forked child
    assert model_module.peak_rss_mb() == round(1024 * 1.024 / 1e3, 1)
