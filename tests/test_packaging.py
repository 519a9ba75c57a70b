"""gsoplib as a user gets it: the built wheel, installed outside the repo, explorer included."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")


def test_every_package_folder_is_in_the_wheel_s_list():
    """pyproject lists gsoplib's packages by hand (the explorer is mapped from explorer/): a
    package folder missing from that list would be missing from every installed gsoplib."""
    tomllib = pytest.importorskip("tomllib", reason="needs Python 3.11's tomllib to read "
                                  "pyproject.toml")
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {".".join(p.parent.relative_to(ROOT).parts)
               for p in (ROOT / "gsoplib").rglob("__init__.py")}
    assert folders | {"gsoplib.explorer"} == set(setuptools["packages"])
    assert setuptools["package-dir"] == {"gsoplib.explorer": "explorer"}
    assert "explorer" not in setuptools["packages"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(ROOT)], check=True, timeout=600)
    [built] = out.glob("gsoplib-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_holds_the_explorer_under_gsoplib_and_no_top_level_explorer(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "gsoplib/explorer/app.py" in names and "gsoplib/explorer/views.py" in names
    for gallery in (ROOT / "explorer" / "gallery").glob("*/classes.json"):
        folder = f"gsoplib/explorer/gallery/{gallery.parent.name}/"
        assert f"{folder}classes.json" in names, folder
        shipped = {n for n in names if n.startswith(folder) and n.endswith(".png")}
        assert len(shipped) == len(list(gallery.parent.glob("*.png"))) > 0, folder
    assert any(n.startswith("gsoplib/pretrained/") and n.endswith(".safetensors") for n in names)
    assert not [n for n in names if n.split("/")[0] in ("explorer", "tests", "notebooks")]


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The wheel installed into a folder of its own (no editable install, not the repo): the
    test's environment provides the dependencies, PYTHONPATH puts this gsoplib first."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, timeout=600)
    return target


def _env(target: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(target)}


@pytest.mark.slow
def test_the_installed_wheel_imports_from_its_own_folder(installed, tmp_path):
    where = subprocess.run(
        [sys.executable, "-c", "import gsoplib, gsoplib.cli as c; print(gsoplib.__file__); "
                               "print(c.explorer_app())"],
        cwd=tmp_path, env=_env(installed), capture_output=True, text=True, check=True)
    module, app = where.stdout.split()
    assert Path(module).is_relative_to(installed) and Path(app).is_relative_to(installed)
    assert Path(app) == installed / "gsoplib" / "explorer" / "app.py"


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Chromium at {CHROMIUM}")
def test_gsop_explore_from_the_installed_wheel_serves_the_page(installed, tmp_path):
    from test_explorer_browser import CHROMIUM_FLAGS, IDLE, free_port

    port = free_port()
    log = tmp_path / "explore.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gsoplib.cli", "explore", "--headless", "--port", str(port),
             "--checkpoint", "fmnist_small_gsop1"],
            cwd=tmp_path, env=_env(installed), stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                    if reply.read() == b"ok":
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        from playwright.sync_api import TimeoutError as PlaywrightTimeout
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                 args=CHROMIUM_FLAGS, headless=True)
            page = browser.new_page()
            page.goto(url)
            # The app reads "not running" for a moment before its first run starts: wait for
            # the checkpoint's card to be drawn, then for the run to end, before reading.
            try:
                page.get_by_text("test top-1", exact=False).first.wait_for(timeout=90_000)
            except PlaywrightTimeout:
                pass  # the asserts below say what the page showed instead
            page.wait_for_timeout(300)
            page.wait_for_selector(IDLE, timeout=90_000)
            text = page.inner_text("body")
            browser.close()
        # The bundled checkpoint's card and the gallery, both read from the installed files.
        assert "Second-order pooling explorer" in text and "small_gsop1(" in text
        assert "test top-1 93.31%" in text and "Ankle boot (test #0)" in text
        assert "Traceback" not in text and "Error" not in text
    finally:
        proc.terminate()
        proc.wait(timeout=20)
