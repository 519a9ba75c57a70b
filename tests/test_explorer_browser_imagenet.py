"""The explorer in a real browser on a converted ImageNet-size network: a GSoP-Net1 ResNet-50
converted by gsoplib.convert from a file in the authors' layout (tests/imagenet_checkpoint.py)
opens like a bundled model, and a real photo (matplotlib's sample photograph, 512x600) is
resized to 256 and centre-cropped to 224, with every view drawn for it.

The Blocks view is saved to tests/output/screenshots/ (the weights are untrained: not a README
picture).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_explorer_browser import (  # noqa: F401  (fixtures)
    SHOTS,
    browser,
    server,
    wait_idle,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(),
                       reason="needs Chromium at /usr/bin/chromium"),
]


def real_photo() -> Path:
    """A photograph that ships with matplotlib (a package gsoplib depends on): offline."""
    from matplotlib import cbook

    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    from imagenet_checkpoint import save_imagenet_checkpoint

    return str(save_imagenet_checkpoint(tmp_path_factory.mktemp("imagenet")))


def test_a_converted_resnet50_shows_every_view_for_a_real_photo(
        server, browser, checkpoint):  # noqa: F811  (the fixtures imported above)
    from gsoplib.explorer.views import VIEWS

    from gsoplib.checkpoint import load_checkpoint
    from gsoplib.images import decode_image, to_model_image, to_tensor
    from gsoplib.probe import probe

    ckpt = load_checkpoint(checkpoint)
    path = real_photo()
    picture = to_model_image(decode_image(path.read_bytes()).image, 3, ckpt.input_size,
                             resize=ckpt.resize)
    top5 = [c.name for c in probe(ckpt.model, to_tensor(picture, ckpt.mean, ckpt.std)[None],
                                  class_names=ckpt.classes).top[0]]
    SHOTS[0].mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(server)
    wait_idle(page, 120_000)
    sidebar = page.locator("[data-testid='stSidebar']")
    sidebar.get_by_text("resnet50_gsop1", exact=False).first.wait_for(timeout=60_000)
    assert "1000 classes" in sidebar.inner_text()
    page.set_input_files(
        ".st-key-upload_images input[type=file]",
        files=[{"name": path.name, "mimeType": "image/jpeg", "buffer": path.read_bytes()}],
    )
    page.get_by_text(f"{path.name}: JPEG RGB 512x600").wait_for(timeout=60_000)
    wait_idle(page, 120_000)
    page.locator(".st-key-image").click()
    page.get_by_role("option", name=f"2. {path.name}").click()
    wait_idle(page, 120_000)
    for view in VIEWS:
        page.locator(".st-key-view").get_by_text(view, exact=True).click()
        wait_idle(page, 120_000)
        assert page.locator("[data-testid='stException']").count() == 0, view
        assert page.locator("[data-testid='stAlertContentError']").count() == 0, view
        content = page.locator(f".st-key-view-{view.lower()}")
        content.wait_for(timeout=60_000)
        shown = ".stVegaLiteChart, [data-testid='stTable'], [data-testid='stDownloadButton']"
        if view == "Head":  # global average pooling: the view says there is nothing to draw
            content.get_by_text("a first-order head (global average pooling)").wait_for()
            continue
        content.locator(shown).first.wait_for(timeout=60_000)
        if view == "Prediction":  # the top-5, by their ImageNet names, as the probe has them
            text = content.inner_text()
            assert all(name in text for name in top5), (top5, text[:500])
        if view == "Blocks":
            assert content.locator(".stVegaLiteChart").count() >= 4
            page.screenshot(path=str(SHOTS[0] / "explorer-resnet50-blocks.png"), full_page=True)
    page.close()
