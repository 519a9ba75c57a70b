"""The probe, the figures and the attributions on the real zoo networks (the toy networks of
test_probe.py pin the mechanics; these pin that every variant exposes what the explorer shows)."""

import matplotlib

matplotlib.use("Agg")

import re  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

from gsoplib import attribution, viz  # noqa: E402
from gsoplib.models import create_model, list_models  # noqa: E402
from gsoplib.probe import probe  # noqa: E402
from gsoplib.taps import part_paths  # noqa: E402

SMALL = [name for name in list_models() if name.startswith("small")]
FIGURES = Path(__file__).parent / "output" / "figures"  # kept for a look after the run
EXPECTED_KIND = {  # the kinds of the parts each variant must report, in network order
    "small_vanilla": [],
    "small_se": ["se"] * 9,
    "small_cbam": ["cbam"] * 9,
    "small_isqrt": ["isqrt_cov"],
    "small_gsop1": ["gsop_channel"] * 3,
    "small_gsop2": ["gsop_channel"] * 2 + ["isqrt_cov"],
    "small_gsop_pos": ["gsop_position"] * 3,
    "small_gsop_pos2": ["gsop_position"] * 2 + ["isqrt_cov"],
    "small_gmsop": ["gated_mixture"],
    "small_gmgap": ["gated_mixture"],
}


def hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(4, 1, 28, 28)


def trained_like(name: str) -> nn.Module:
    """The model with BN statistics from a few batches, in train mode as a user may leave it."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=1)
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(16, 1, 28, 28))
    return model


@pytest.mark.parametrize("name", SMALL)
def test_probe_reports_every_part_of_every_variant_and_leaves_the_model_as_it_was(name, images):
    model = trained_like(name)
    model.eval()
    with torch.no_grad():
        expected_logits = model(images)
    model.train()
    insp = probe(model, images)
    assert model.training and hooks(model) == 0
    torch.testing.assert_close(insp.logits, expected_logits)
    assert part_paths(model) == [r.path for r in insp.parts()]
    parts = [r for r in insp.parts() if r.kind != "custom"]
    if name in EXPECTED_KIND:
        assert [r.kind for r in parts] == EXPECTED_KIND[name]
    assert insp.has_second_order == bool(parts)
    for record in parts:
        if "tap_channel_weights" in record:
            w = record["tap_channel_weights"]
            assert w.shape[0] == 4 and w.shape[2:] == (1, 1)
            assert ((w > 0) & (w < 1)).all()
        if "tap_pos_weights" in record:
            w = record["tap_pos_weights"]
            assert w.shape[:2] == (4, 1) and ((w > 0) & (w < 1)).all()
        for cov in ("tap_cov", "tap_pos_cov"):
            if cov in record and record.kind != "gated_mixture":
                c = record[cov]
                torch.testing.assert_close(c, c.transpose(-1, -2))
        if record.kind == "gated_mixture":
            weights = record["tap_gate_weights"]
            k = record["tap_gate_indices"].shape[1]
            assert torch.all((weights != 0).sum(1) == k)
            torch.testing.assert_close(weights.sum(1), torch.ones(4))


@pytest.mark.parametrize("name", ["small_gsop1", "small_gsop_pos", "small_gsop2", "small_gmsop"])
def test_every_figure_renders_for_the_zoo_models(name, images):
    insp = probe(trained_like(name), images)
    figures = viz.figures(insp, 0)
    parts = [r.path for r in insp.parts()]
    assert len(figures) > 1 and all(any(p in title for title in figures) for p in parts)
    folder = FIGURES / name
    folder.mkdir(parents=True, exist_ok=True)
    for title, fig in figures.items():
        assert min(fig.get_size_inches()) > 0 and fig.axes, title
        path = folder / (re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") + ".png")
        fig.savefig(path, dpi=80)
        with Image.open(path) as png:
            assert png.size == tuple(round(80 * v) for v in fig.get_size_inches()), title


@pytest.mark.parametrize("name", ["small_gsop1", "small_gsop_pos", "small_gmsop"])
@pytest.mark.parametrize("method", ["gradcam", "occlusion", "integrated_gradients"])
def test_each_attribution_method_runs_on_gsop_position_and_mixture_models(name, method, images):
    model = trained_like(name).eval()
    options = {"n_steps": 4} if method == "integrated_gradients" else {}
    maps = attribution.attribute(model, images[:2], method, **options)
    assert maps.shape == (2, 28, 28) and torch.isfinite(maps).all()
    assert maps.abs().sum() > 0
    assert hooks(model) == 0 and not model.training
