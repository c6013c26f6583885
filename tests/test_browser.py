"""The report in a real browser: headless chromium opens it from file://, offline.

Skips (loudly) only where chromium or chromedriver cannot be found.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from benchmarks.fake import HashingEncoder
from segmenter.config import SegmenterConfig
from segmenter.data import load_events
from segmenter.model import Segmenter
from segmenter.runfolder import write_run

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[1] / "reports" / "screenshots"
SCRIPT_PAYLOAD = "<script>window.__xss=1</script>"
ATTR_PAYLOAD = '" onmouseover="window.__xss=1'
IMG_PAYLOAD = '<img src=x onerror="window.__xss=1">'
EVIL_USER = "</script><script>window.__xss=1</script>"


def _find(names: Sequence[str], fallbacks: Sequence[str]) -> str | None:
    for name in names:
        if found := shutil.which(name):
            return found
    return next((p for p in fallbacks if Path(p).is_file()), None)


CHROMIUM = _find(("chromium", "chromium-browser", "google-chrome"), ("/usr/bin/chromium",))
CHROMEDRIVER = _find(("chromedriver",), ("/usr/bin/chromedriver",))


def FakeEncoder() -> HashingEncoder:
    """Hashed bag of words: fast, deterministic, normalized float32."""
    return HashingEncoder(64)


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip(
            f"browser test skipped: chromium ({CHROMIUM or 'not found'}) or chromedriver "
            f"({CHROMEDRIVER or 'not found'}) was not found on PATH or in /usr/bin; install "
            f"them with `apt-get install chromium chromium-driver`"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def run_dir(
    small_tables: dict[str, pl.DataFrame], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A run folder from small synthetic data whose customers wrote hostile text."""
    evil = pl.col("user_id").replace({"C0000001": EVIL_USER})
    events = small_tables["events"].with_columns(
        evil,
        pl.when(pl.col("event_type") == "review")
        .then(pl.lit(f"{SCRIPT_PAYLOAD} {ATTR_PAYLOAD}"))
        .otherwise(pl.col("text"))
        .alias("text"),
        pl.when(pl.col("category") == "Electronics")
        .then(pl.lit(IMG_PAYLOAD + " ") + pl.col("item_name"))
        .otherwise(pl.col("item_name"))
        .alias("item_name"),
    )
    users = small_tables["users"].with_columns(evil)
    data = load_events(events, users=users)
    config = SegmenterConfig(k=5, umap_dims=0, pca_dims=8)
    model = Segmenter(config, encoder=HashingEncoder(64), progress=False).fit(data)
    out = tmp_path_factory.mktemp("browser-run") / "run"
    write_run(model, data, out)
    return out


@pytest.fixture(scope="module")
def page(driver: Any, run_dir: Path) -> Any:
    url = (run_dir / "report.html").resolve().as_uri()
    driver.get_log("performance")  # drop what the browser did before opening the page
    driver.get_log("browser")
    driver.get(url)
    driver.execute_script("return document.readyState")
    return driver


def test_no_console_errors_and_no_requests(page: Any, run_dir: Path) -> None:
    logs = page.get_log("browser")
    assert [entry for entry in logs if entry["level"] in ("SEVERE", "WARNING")] == [], logs
    assert page.execute_script("return performance.getEntriesByType('resource').length") == 0
    url = (run_dir / "report.html").resolve().as_uri()
    requested = []
    for entry in page.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requested.append(message["params"]["request"]["url"])
    assert [u for u in requested if u != url and not u.startswith("data:")] == []
    assert "http://" not in page.page_source and "https://" not in page.page_source


def test_map_draws_every_customer(page: Any, run_dir: Path) -> None:
    n = pl.read_parquet(run_dir / "assignments.parquet").height
    canvas = page.find_element("id", "map-canvas")
    assert canvas.get_attribute("data-points") == str(n)
    painted = page.execute_script(
        """
        const c = document.getElementById('map-canvas');
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < px.length; i += 4) { if (px[i] > 0) n++; }
        return n;
        """
    )
    assert painted > 2 * n


def test_every_segment_card_is_rendered(page: Any, run_dir: Path) -> None:
    names = pl.read_parquet(run_dir / "segments.parquet")["name"].to_list()
    cards = page.find_elements("css selector", "article.card")
    assert len(cards) == len(names) == 5
    for card, name in zip(cards, names, strict=True):
        assert card.is_displayed()
        assert card.find_element("css selector", "h3").text == name
        assert card.find_elements("css selector", ".stats tbody tr")
    heat_rows = page.find_elements("css selector", "table.heat tbody tr")
    assert len(heat_rows) == len(names)
    # value and taste: the sentence, the trade-off chart and the segment x tier counts
    section = page.find_element("id", "value-taste")
    assert section.find_element("css selector", "p.lead").text.startswith(("All 5 ", "5 "))
    chart = section.find_element("css selector", "svg.chart")
    assert chart.size["width"] > 200 and len(chart.find_elements("css selector", "polyline")) == 2
    by_tier = section.find_elements("css selector", "#segment-by-tier tbody tr")
    assert len(by_tier) == len(names)


def test_hostile_text_shows_as_text_and_never_runs(page: Any) -> None:
    assert page.execute_script("return window.__xss") is None
    items = [e.text for e in page.find_elements("css selector", ".item-name")]
    assert any(item.startswith(IMG_PAYLOAD + " ") for item in items), items
    for details in page.find_elements("css selector", "details.reps"):
        page.execute_script("arguments[0].open = true", details)
    body = page.find_element("tag name", "body").text
    assert SCRIPT_PAYLOAD in body
    assert page.find_elements("css selector", "main script, main img") == []
    # hover the hostile customer's dot: the tooltip shows the id as text
    hit = page.execute_script(
        """
        const map = JSON.parse(document.getElementById('report-data').textContent).map;
        const i = map.u.indexOf(arguments[0]);
        const c = document.getElementById('map-canvas');
        const r = c.getBoundingClientRect();
        const x = 14 + map.x[i] * (c.clientWidth - 28);
        const y = 14 + (1 - map.y[i]) * (c.clientHeight - 28);
        c.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + x, clientY: r.top + y}));
        const tip = document.getElementById('map-tip');
        const near = map.u.filter((u, j) =>
            Math.abs(map.x[j] - map.x[i]) * c.clientWidth < 3 &&
            Math.abs(map.y[j] - map.y[i]) * c.clientHeight < 3);
        return {i: i, hidden: tip.hidden, who: tip.querySelector('strong').textContent,
                near: near, children: tip.querySelectorAll('script, img').length};
        """,
        EVIL_USER,
    )
    assert hit["i"] >= 0 and not hit["hidden"]
    assert hit["who"] in hit["near"] and EVIL_USER in hit["near"]
    assert hit["children"] == 0
    assert page.execute_script("return window.__xss") is None


def test_legend_highlights_a_segment_and_screenshot(page: Any) -> None:
    first = page.find_element("css selector", "#map-legend .legend-item")
    page.execute_script("arguments[0].scrollIntoView()", first)
    first.click()
    assert "has-active" in page.find_element("id", "map-legend").get_attribute("class")
    first.click()
    assert "has-active" not in page.find_element("id", "map-legend").get_attribute("class")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.execute_script("window.scrollTo(0, 0)")
    shot = SCREENSHOTS / "browser-test-report.png"
    assert page.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    assert page.get_log("browser") == []
