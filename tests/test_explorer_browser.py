"""The explorer in a real browser: `streamlit run` on 127.0.0.1, driven by Playwright + Chromium.

Uploads an image, waits for every view to render, and saves full-page screenshots to
``tests/output/screenshots/``; with ``GSOP_SCREENSHOTS=docs`` also to ``docs/screenshots/``, the
committed copies the README shows.
"""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "explorer" / "app.py"
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = [ROOT / "tests" / "output" / "screenshots"] + (
    [ROOT / "docs" / "screenshots"] if os.environ.get("GSOP_SCREENSHOTS") == "docs" else []
)
PREFERRED = "fmnist_small_gsop2"  # blocks and an iSQRT-COV head: every view has figures
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Chromium at {CHROMIUM}"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """The bundled GSoP-Net2 checkpoint when it ships, else an untrained one saved for the test
    (a bundled name or a path: the app's --checkpoint takes either)."""
    from gsoplib.pretrained import list_pretrained

    if PREFERRED in list_pretrained():
        return PREFERRED
    from test_explorer_app import make_checkpoint

    return str(make_checkpoint(tmp_path_factory.mktemp("ckpt"), "small_gsop2"))


@pytest.fixture(scope="module")
def server(checkpoint, tmp_path_factory):
    """Base URL of the app, served headless; its log is printed if it fails to come up."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("streamlit") / "server.log"
    command = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.headless", "true",
        "--server.port", str(port),
        "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",
        "--server.fileWatcherType", "none",
        "--", "--checkpoint", checkpoint,
    ]  # fmt: skip
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                    if reply.read() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer within 60 s:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
        )
        yield chromium
        chromium.close()


def wait_idle(page, timeout_ms: int = 60_000) -> None:
    """Wait until the script has started after an interaction and then finished."""
    page.wait_for_timeout(300)
    page.wait_for_selector(IDLE, timeout=timeout_ms)


def photo() -> bytes:
    """A light phone-style photo: a dark shape on a pale background, EXIF-rotated."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (320, 240), (235, 232, 228))
    ImageDraw.Draw(image).rectangle((100, 40, 220, 200), fill=(40, 50, 70))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, exif=exif)
    return buffer.getvalue()


def screenshot(page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main element, so the window is first made
    as tall as that element's content (a full-page screenshot alone keeps the viewport)."""
    viewport = page.viewport_size
    height = page.evaluate("document.querySelector(\"[data-testid='stMain']\").scrollHeight")
    page.set_viewport_size({"width": viewport["width"], "height": min(max(height, 600), 8000)})
    page.wait_for_timeout(300)
    for folder in SHOTS:
        page.screenshot(path=str(folder / name), full_page=True)
    page.set_viewport_size(viewport)


def test_upload_renders_every_view_and_saves_screenshots(server, browser):
    from gsoplib.explorer.views import VIEWS

    for folder in SHOTS:
        folder.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    # Nothing on the page may leave the machine: no font server, no icon, no telemetry.
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(server)
    wait_idle(page)
    page.set_input_files(
        ".st-key-upload_images input[type=file]",
        files=[{"name": "phone.jpg", "mimeType": "image/jpeg", "buffer": photo()}],
    )
    page.get_by_text("phone.jpg: JPEG RGB 320x240").wait_for(timeout=60_000)
    wait_idle(page)
    # The gallery's default sample comes first: inspect the upload.
    page.locator(".st-key-image").click()
    page.get_by_role("option", name="2. phone.jpg").click()
    wait_idle(page)
    for view in VIEWS:
        page.locator(".st-key-view").get_by_text(view, exact=True).click()
        wait_idle(page)
        assert page.locator("[data-testid='stException']").count() == 0, view
        assert page.locator("[data-testid='stAlertContentError']").count() == 0, view
        content = page.locator(f".st-key-view-{view.lower()}")
        content.wait_for(timeout=60_000)
        # Vega draws its charts after the script has finished: wait for one
        shown = ".stVegaLiteChart, [data-testid='stTable'], [data-testid='stDownloadButton']"
        content.locator(shown).first.wait_for(timeout=30_000)
        if view == "Batch":  # the heatmap over the gallery says more than over two images
            page.locator(".st-key-batch_over").get_by_text("the whole sample gallery").click()
            wait_idle(page)
            content.locator(".stVegaLiteChart").first.wait_for(timeout=30_000)
        screenshot(page, f"explorer-{view.lower()}.png")
    page.close()
    outside = [url for url in requests
               if not url.startswith((server, "data:", "blob:", "about:"))]
    assert requests and not outside, outside


def css_key(key: str) -> str:
    """The CSS class Streamlit gives a container with this key."""
    return "st-key-" + re.sub(r"[^a-zA-Z0-9_-]", "-", key.strip())


def chart_css(name: str) -> str:
    """A selector of the chart the views show as ``name`` (explorer/views.py ``chart``)."""
    from gsoplib.explorer.pipeline import file_stem

    # Vega draws into an SVG or a canvas, whichever Streamlit chose for the chart
    key = css_key(f"chart-{file_stem(name)}")
    return f".{key} .stVegaLiteChart svg.marks, .{key} .stVegaLiteChart canvas"


def open_view(page, server: str, view: str) -> None:
    page.goto(server)
    wait_idle(page)
    page.locator(".st-key-view").get_by_text(view, exact=True).click()
    wait_idle(page)


def tooltip(page) -> dict[str, str]:
    """The Vega tooltip's rows (key -> value) while it is shown, else {}."""
    element = page.locator("#vg-tooltip-element.visible")
    if element.count() == 0:
        return {}
    keys = element.locator("td.key").all_inner_texts()
    values = element.locator("td.value").all_inner_texts()
    return {k.rstrip(":").strip(): v.strip() for k, v in zip(keys, values)}


def hover_until(page, canvas, points, wanted: str) -> dict[str, str]:
    """Hover each (x, y) of ``points`` over ``canvas`` until the tooltip has ``wanted``."""
    for x, y in points:
        canvas.hover(position={"x": x, "y": y})
        page.wait_for_timeout(150)
        tip = tooltip(page)
        if wanted in tip:
            return tip
    raise AssertionError(f"no tooltip with {wanted!r} over the chart")


def gallery_probe(checkpoint: str):
    """The probe of the app's default sample (Fashion-MNIST test image #0) as it converts it."""
    from gsoplib.checkpoint import load_checkpoint
    from gsoplib.images import decode_image, to_model_image, to_tensor
    from gsoplib.pretrained import list_pretrained, load_pretrained
    from gsoplib.probe import probe

    ckpt = load_pretrained(checkpoint) if checkpoint in list_pretrained() else \
        load_checkpoint(checkpoint)
    data = (ROOT / "explorer" / "gallery" / "fashion_mnist" / "9-00000.png").read_bytes()
    picture = to_model_image(decode_image(data).image, ckpt.in_chans, ckpt.input_size)
    return probe(ckpt.model, to_tensor(picture, ckpt.mean, ckpt.std)[None],
                 class_names=ckpt.classes)


def test_hovering_a_covariance_cell_shows_both_channels_and_the_probe_s_value(
        server, browser, checkpoint):
    insp = gallery_probe(checkpoint)
    record = insp.of_kind("gsop_channel")[0]
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    open_view(page, server, "Blocks")
    canvas = page.locator(chart_css(f"{record.path}: covariance"))
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    # the first panel, covariance (before), is the left quarter of the chart
    points = [(box["width"] * fx, box["height"] * fy) for fy in (0.4, 0.5, 0.3, 0.6)
              for fx in (0.08, 0.12, 0.16)]
    tip = hover_until(page, canvas, points, "row channel")
    assert tip["matrix"] == "covariance (before)"
    row, col = int(tip["row channel"]), int(tip["column channel"])
    expected = float(record["tap_cov"][0, row, col])
    # d3-format writes negative numbers with the minus sign U+2212
    assert float(tip["entry"].replace("\u2212", "-")) == pytest.approx(expected, rel=1e-3,
                                                                       abs=1e-6)
    page.close()


def test_clicking_a_channel_shows_its_map_and_the_selection_survives_switching_views(
        server, browser, checkpoint):
    insp = gallery_probe(checkpoint)
    record = insp.of_kind("gsop_channel")[0]
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    open_view(page, server, "Blocks")
    canvas = page.locator(chart_css(f"{record.path}: channel weights"))
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    # low in the plot, where most bars reach, over the first half of the sorted channels
    points = [(box["width"] * fx, box["height"] * fy) for fy in (0.75, 0.7, 0.65, 0.8)
              for fx in (0.3, 0.25, 0.35, 0.2, 0.4, 0.15)]
    tip = hover_until(page, canvas, points, "channel")
    channel = int(tip["channel"])
    assert float(tip["weight"]) == pytest.approx(
        float(record["tap_channel_weights"][0, channel]), rel=1e-3)
    x, y = next((x, y) for x, y in points if _shows(page, canvas, x, y, channel))
    canvas.click(position={"x": x, "y": y})
    wait_idle(page)
    caption = f"Feature maps of channels {channel} (selected)."
    page.get_by_text(caption).wait_for(timeout=30_000)
    maps = page.locator(chart_css(f"{record.path}: feature maps"))
    assert maps.count() == 1
    for view in ("Head", "Prediction", "Blocks"):
        page.locator(".st-key-view").get_by_text(view, exact=True).click()
        wait_idle(page)
    page.get_by_text(caption).wait_for(timeout=30_000)
    page.close()


def _shows(page, canvas, x: float, y: float, channel: int) -> bool:
    canvas.hover(position={"x": x, "y": y})
    page.wait_for_timeout(150)
    return tooltip(page).get("channel") == str(channel)


def test_clicking_a_row_of_the_batch_heatmap_inspects_that_image(server, browser, checkpoint):
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    open_view(page, server, "Batch")
    page.locator(".st-key-batch_over").get_by_text("the whole sample gallery").click()
    wait_idle(page)
    block = page.locator(".st-key-batch_block input").input_value()
    heatmap = page.locator(chart_css(f"{block}: channel weights of the images"))
    heatmap.scroll_into_view_if_needed()
    box = heatmap.bounding_box()
    points = [(box["width"] * fx, box["height"] * fy) for fy in (0.5, 0.4, 0.6, 0.3)
              for fx in (0.3, 0.2, 0.4)]
    # a row of a sample other than the one already chosen (the gallery's default, #0)
    for x, y in points:
        heatmap.hover(position={"x": x, "y": y})
        page.wait_for_timeout(150)
        name = tooltip(page).get("name")
        if name and name != "9-00000.png":
            break
    else:
        raise AssertionError("no row of another sample under the pointer")
    heatmap.click(position={"x": x, "y": y})
    wait_idle(page)
    # the clicked sample joins the chosen images and becomes the one every view inspects
    page.locator(".st-key-image").wait_for(timeout=30_000)
    assert name in page.locator(".st-key-image input").input_value()
    page.close()



LAYOUT_VIEWS = ("Prediction", "Blocks", "Head", "Attributions", "Batch")


def chart_boxes(page, scope: str) -> list[dict]:
    """The drawn box (SVG or canvas) of every chart inside ``scope``, in page coordinates."""
    boxes = []
    for element in page.locator(f"{scope} .stVegaLiteChart").all():
        drawn = element.locator("svg.marks, canvas").first
        drawn.wait_for(timeout=30_000)
        box = drawn.bounding_box()
        if box and box["width"] > 0:
            boxes.append({**box, "name": element.get_attribute("aria-label") or "?"})
    return boxes


def content_box(element) -> dict:
    """An element's box without its padding and border, in page coordinates."""
    return element.evaluate("""e => {
        const r = e.getBoundingClientRect(), s = getComputedStyle(e);
        const left = parseFloat(s.paddingLeft) + parseFloat(s.borderLeftWidth);
        const right = parseFloat(s.paddingRight) + parseFloat(s.borderRightWidth);
        return {x: r.x + left, y: r.y, width: r.width - left - right, height: r.height};
    }""")


def overlap(a: dict, b: dict) -> float:
    dx = min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"])
    dy = min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"])
    return max(dx, 0) * max(dy, 0)


def assert_laid_out(page, columns: list[str], where: str) -> None:
    """Every chart inside its column (a pixel of slack) and no two charts overlapping."""
    every = []
    for column in columns:
        bounds = content_box(page.locator(column).first)
        boxes = chart_boxes(page, column)
        for box in boxes:
            assert box["x"] >= bounds["x"] - 1 and (
                box["x"] + box["width"] <= bounds["x"] + bounds["width"] + 1), (
                f"{where}: chart {box['name']!r} spans x {box['x']:.0f}-"
                f"{box['x'] + box['width']:.0f}, its column {bounds['x']:.0f}-"
                f"{bounds['x'] + bounds['width']:.0f}")
        every += boxes
    for i, a in enumerate(every):
        for b in every[i + 1:]:
            assert overlap(a, b) < 1, f"{where}: {a['name']!r} overlaps {b['name']!r}"


@pytest.mark.parametrize("width", [1280, 1920])
def test_every_chart_fits_its_column_without_overlap_alone_and_compared(server, browser, width):
    for folder in SHOTS:
        folder.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": width, "height": 1000})
    page.goto(server)
    wait_idle(page)
    main = "[data-testid='stMainBlockContainer']"
    for view in LAYOUT_VIEWS:
        page.locator(".st-key-view").get_by_text(view, exact=True).click()
        wait_idle(page)
        page.locator(f".st-key-view-{view.lower()} .stVegaLiteChart").first.wait_for(
            timeout=60_000)
        assert_laid_out(page, [main], f"{view} at {width} px")
    # compare mode: the second picker starts on the first bundled checkpoint
    page.locator(".st-key-compare").get_by_text("Compare with a second checkpoint").click()
    wait_idle(page)
    compared = [".st-key-a_compared", ".st-key-b_compared"]
    for view in LAYOUT_VIEWS:
        page.locator(".st-key-view").get_by_text(view, exact=True).click()
        wait_idle(page)
        for column in compared:   # a chart, or a note that the model has no such part
            page.locator(f"{column} .stVegaLiteChart, {column} [data-testid='stAlert']"
                         ).first.wait_for(timeout=60_000)
        assert_laid_out(page, compared, f"compare, {view} at {width} px")
        if view == "Head" and width == 1280:
            screenshot(page, "explorer-compare-head.png")
    page.close()
