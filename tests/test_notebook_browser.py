"""The committed notebook 06 in JupyterLab, in a real browser: its interactive charts (stored as
Vega-Lite outputs by gsoplib.viz.charts) render with nothing fetched from the network, and
hovering a bar shows the probe's number the file holds."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from test_explorer_browser import CHROMIUM, CHROMIUM_FLAGS, free_port, hover_until
from test_explorer_browser import pytestmark as BROWSER_MARKS

from gsoplib.viz.charts.spec import MIMETYPE

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "06_inspecting.ipynb"
CHART_MIME = MIMETYPE
RENDERED = ".jp-RenderedVegaCommon5"  # JupyterLab's own Vega-Lite 5 renderer
pytestmark = BROWSER_MARKS  # e2e, slow, skipped without Chromium: as the explorer's


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Base URL of a JupyterLab serving notebooks/ on 127.0.0.1, no token, no kernel started
    by the test (the stored outputs are what is shown)."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("lab") / "lab.log"
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
        "--ServerApp.ip=127.0.0.1", "--ServerApp.token=", "--ServerApp.password=",
        f"--ServerApp.root_dir={ROOT / 'notebooks'}", "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--allow-root",
    ]  # fmt: skip
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not come up:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def stored_weights() -> dict[int, float]:
    """Channel -> weight of the channel weights chart the committed notebook stores."""
    nb = nbformat.read(ROOT / "notebooks" / NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "charts.channel_weights_chart(" in cell.source:
            for out in cell.outputs:
                if CHART_MIME in out.get("data", {}):
                    rows = out["data"][CHART_MIME]["datasets"]["weights"]
                    return {r["channel"]: r["weight"] for r in rows}
    raise AssertionError(f"{NOTEBOOK} stores no channel weights chart")


def test_the_notebook_s_charts_render_in_jupyterlab_and_hover_shows_the_numbers(lab):
    from playwright.sync_api import sync_playwright

    weights = stored_weights()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        fetched = []
        page.on("request", lambda r: fetched.append(r.url)
                if not r.url.startswith(("http://127.0.0.1", "data:", "blob:")) else None)
        page.goto(f"{lab}/lab/tree/{NOTEBOOK}")
        page.wait_for_selector(RENDERED, timeout=90_000)
        chart = page.locator(RENDERED).first
        chart.scroll_into_view_if_needed()
        canvas = chart.locator("canvas, svg").first
        canvas.wait_for(timeout=30_000)
        box = canvas.bounding_box()
        # bars fill the plot from a few % to ~70% of the chart's width, tallest on the left
        points = [(box["width"] * fx, box["height"] * 0.6) for fx in (0.08, 0.1, 0.2, 0.3)]
        tip = hover_until(page, canvas, points, "channel")
        assert float(tip["weight"]) == pytest.approx(weights[int(tip["channel"])], abs=1e-4)
        browser.close()
    assert not fetched, f"the notebook page fetched from the network: {fetched[:5]}"
