"""The ``ray_driver`` benchmark section end to end on tiny sizes: two ``discover --engine ray``
runs with the tiny encoder it builds. Skipped cleanly without the ``ray`` package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from benchmarks import ray_driver
from benchmarks.context import SIZES, BenchContext
from segmenter.embed import SentenceTransformerEncoder, resolve_model_path

pytest.importorskip("ray")
pytestmark = pytest.mark.ray


def test_tiny_encoder_is_a_safe_local_folder(tmp_path: Path) -> None:
    folder = ray_driver.tiny_encoder(tmp_path)
    assert resolve_model_path(folder) == str(folder)  # what --encoder accepts: no pickle
    encoder = SentenceTransformerEncoder(folder, device="cpu", show_progress=False)
    vectors = encoder.encode(["10 orders of tea", "one order of shoes"])
    assert vectors.shape == (2, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_shards_split_customers_across_files(tmp_path: Path) -> None:
    n_events = ray_driver.write_shards(40, 0, tmp_path / "events")
    parts = sorted((tmp_path / "events").glob("*.parquet"))
    assert len(parts) == ray_driver.SHARDS
    events = pl.concat([pl.read_parquet(p) for p in parts])
    assert events.height == n_events and events["user_id"].n_unique() == 40


def test_section_measures_the_driver_at_each_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ray_driver.SIZES, "smoke", (60, 120))
    monkeypatch.setitem(ray_driver.FIT_SAMPLE, "smoke", 40)
    section = ray_driver.run_ray_driver(BenchContext("smoke", SIZES["smoke"]))
    assert [r["customers"] for r in section["runs"]] == [60, 120]
    for run in section["runs"]:
        assert run["driver_peak_rss_mb"] > 0
        assert 20 <= run["fit_sample_customers"] <= 60  # the seeded sample, not everyone
        # ... but the profiles count every customer, merged from the blocks
        assert run["profiled_customers"] == run["customers"]
        assert run["assignment_shards"] >= 2
    assert section["customer_growth"] == 2.0 and section["driver_growth"] > 0
    text = "\n".join(ray_driver.render_ray_driver(section))
    assert "| 120 |" in text and "the driver's peak memory" in text
