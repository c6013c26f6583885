"""The report's explanation parts: rules on the cards, reasons, and the customer search box in a
real browser (hostile ids stay text)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from benchmarks.fake import HashingEncoder
from segmenter.config import SegmenterConfig
from segmenter.data import load_events
from segmenter.explain import Explainer
from segmenter.explain.run import write_explanations
from segmenter.model import Segmenter
from segmenter.report import write_report
from segmenter.runfolder import customers_table, write_run
from tests.test_browser import EVIL_USER, driver  # noqa: F401  (the browser fixture)


@pytest.fixture(scope="module")
def explained_run(
    small_tables: dict[str, pl.DataFrame], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    evil = pl.col("user_id").replace({"C0000001": EVIL_USER})
    data = load_events(
        small_tables["events"].with_columns(evil), users=small_tables["users"].with_columns(evil)
    )
    config = SegmenterConfig(k=4, value_tiers=2, umap_dims=0, pca_dims=8)
    model = Segmenter(config, encoder=HashingEncoder(64), progress=False).fit(data)
    out = tmp_path_factory.mktemp("explain-report") / "run"
    write_run(model, data, out)
    write_explanations(out, Explainer(model, progress=False).fit(customers_table(model)))
    write_report(out)
    return out


def test_report_shows_rules_and_reasons(explained_run: Path) -> None:
    html = (explained_run / "report.html").read_text(encoding="utf-8")
    assert "Definition (depth-3 rules)" in html and 'id="explain-search"' in html
    assert 'class="reasons"' in html
    assert EVIL_USER not in html  # escaped in the embedded data and in the cards


@pytest.mark.browser
def test_search_box_explains_any_customer(driver: Any, explained_run: Path) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    driver.get((explained_run / "report.html").resolve().as_uri())
    box = driver.find_element(By.ID, "explain-search")
    out = driver.find_element(By.ID, "explain-out")
    box.send_keys("C0000002")
    assert out.text.startswith("C0000002 is in ")
    box.clear()
    box.send_keys(EVIL_USER)
    assert out.text.startswith(EVIL_USER + " is in ")
    assert driver.execute_script("return window.__xss") is None
    box.clear()
    box.send_keys("nobody")
    assert out.text == "No customer with id nobody in this run."
    logs = driver.get_log("browser")
    assert [e for e in logs if e["level"] == "SEVERE"] == []
