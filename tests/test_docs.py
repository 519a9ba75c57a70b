"""The documentation site: built with --strict (a broken link or reference fails), every public
name rendered, the committed notebooks rendered as committed, the README a front door."""

from __future__ import annotations

import html
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Every subpackage and module whose __all__ is the public API, and the page that renders it.
PUBLIC = {
    "gsoplib.ops": "ops", "gsoplib.blocks": "blocks", "gsoplib.heads": "heads",
    "gsoplib.heads.gate": "heads", "gsoplib.models": "models",
    "gsoplib.models.build": "models",
    "gsoplib.models.backbones": "models", "gsoplib.models.named_weights": "models",
    "gsoplib.models.kwarg_bounds": "models", "gsoplib.data": "data", "gsoplib.train": "train",
    "gsoplib.checkpoint": "checkpoint", "gsoplib.pretrained": "checkpoint",
    "gsoplib.state_dict": "checkpoint",
    "gsoplib.registry": "checkpoint", "gsoplib.bundled": "checkpoint",
    "gsoplib.timing": "misc",
    "gsoplib.probe": "probe", "gsoplib.viz": "viz", "gsoplib.viz.charts": "viz",
    "gsoplib.attribution": "misc", "gsoplib.ablation": "misc", "gsoplib.class_usage": "misc",
    "gsoplib.linear_probe": "misc", "gsoplib.root_check": "misc", "gsoplib.toy_mixture": "misc",
    "gsoplib.convert": "misc", "gsoplib.images": "misc", "gsoplib.cli": "misc",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def _ids(page: Path) -> set[str]:
    return set(re.findall(r'id="([^"]+)"', page.read_text()))


def test_every_public_name_has_a_rendered_entry(site):
    """The API reference comes from the docstrings: a name added to an __all__ without a page
    that renders it fails here."""
    missing = []
    for module_name, page in PUBLIC.items():
        module = importlib.import_module(module_name)
        ids = _ids(site / "api" / page / "index.html")
        for name in module.__all__:
            obj = getattr(module, name)
            defined = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
            if f"{module_name}.{name}" not in ids and defined not in ids:
                missing.append(f"{module_name}.{name} (api/{page})")
    assert not missing, missing
    subpackages = [p.parent.name for p in (ROOT / "gsoplib").glob("*/__init__.py")
                   if p.parent.name not in ("explorer", "pretrained")]
    assert {f"gsoplib.{p}" for p in subpackages} <= set(PUBLIC)


def test_docstrings_render_their_shapes_and_equations(site):
    """Rendered, not copied: the docstring of sqrtm_newton_schulz appears on the ops page."""
    from gsoplib.ops import sqrtm_newton_schulz

    text = html.unescape(re.sub(r"<[^>]+>", "", (site / "api/ops/index.html").read_text()))
    first = " ".join(sqrtm_newton_schulz.__doc__.split("\n")[0].split())
    assert first[:60] in " ".join(text.split())


def test_the_notebooks_are_rendered_with_their_committed_outputs(site):
    import json

    for notebook in sorted((ROOT / "notebooks").glob("0*.ipynb")):
        page = site / "notebooks" / notebook.stem / "index.html"
        assert page.is_file(), page
        cells = json.loads(notebook.read_text())["cells"]
        text = next(
            "".join(out["text"]) for cell in cells if cell["cell_type"] == "code"
            for out in cell.get("outputs", []) if out.get("name") == "stdout"
            and len("".join(out["text"]).strip()) > 20
        )
        line = html.escape(text.strip().splitlines()[0].strip(), quote=False)
        assert line in page.read_text(), (notebook.name, line)


def test_the_readme_is_a_front_door_that_links_every_page():
    readme = (ROOT / "README.md").read_text()
    # a front door: the commands, a tour, the pages, what the measurements say, the layout
    assert len(readme.splitlines()) < 150
    assert "make explore" in readme and "make test" in readme
    links = re.findall(r"\]\((docs/[^)]+\.md)\)", readme)
    pages = {str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")}
    assert set(links) == pages, set(links) ^ pages
    assert all((ROOT / link).is_file() for link in links)
