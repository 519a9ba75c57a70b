"""gsoplib.viz: every figure runs on the CPU under Agg, has the stated size and shows the data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from PIL import Image
from test_probe import CLASSES, N_COMPONENTS, K, toy_net

from gsoplib import viz
from gsoplib.ops import newton_schulz_errors
from gsoplib.probe import probe

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def insp():
    torch.manual_seed(1)
    return probe(toy_net("isqrt"), torch.randn(4, 1, 16, 16))


@pytest.fixture(scope="module")
def mixture():
    torch.manual_seed(2)
    return probe(toy_net("mixture"), torch.randn(6, 1, 16, 16))


def _rendered(fig: Figure, figsize, dpi: int = 50) -> Image.Image:
    assert isinstance(fig, Figure)
    np.testing.assert_allclose(fig.get_size_inches(), figsize)
    image = viz.to_pil(fig, dpi=dpi)
    assert image.size == (round(figsize[0] * dpi), round(figsize[1] * dpi))
    return image


def _images(fig: Figure):
    return [im for ax in fig.axes for im in ax.images]


def test_prediction_bars_are_the_top_k(insp):
    fig = viz.prediction(insp, 1, figsize=(4, 2.5))
    _rendered(fig, (4, 2.5))
    bars = fig.axes[0].patches
    expected = [p.probability for p in insp.top[1]][::-1]
    np.testing.assert_allclose([b.get_width() for b in bars], expected, rtol=1e-6)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == \
        [p.name for p in insp.top[1]][::-1]


def test_channel_weights_sorted_with_top_and_bottom_feature_maps(insp):
    fig = viz.channel_weights(insp, "layer1.attn", 2, show=3, figsize=(8, 5))
    _rendered(fig, (8, 5))
    w = insp["layer1.attn"]["tap_channel_weights"][2].flatten().numpy()
    bars = fig.axes[0]
    heights = np.concatenate([p.get_data().values for p in bars.patches])
    np.testing.assert_allclose(heights, np.sort(w)[::-1], rtol=1e-6)
    assert "layer1.attn (gsop_channel)" in bars.get_title()
    mosaic = _images(fig)[0].get_array()
    fmap = insp["layer1.attn"]["tap_input"][2].numpy()
    order = np.argsort(-w, kind="stable")
    np.testing.assert_allclose(mosaic[:16, :16], fmap[order[0]], rtol=1e-6)  # most boosted
    row2 = 16 + 2 + 16 // 4
    np.testing.assert_allclose(mosaic[row2:row2 + 16, :16], fmap[order[-1]], rtol=1e-6)
    labels = [t.get_text() for t in fig.axes[1].texts]
    assert f"ch {order[0]}: {w[order[0]]:.2f}" in labels and "suppressed" in labels
    assert any(ax.get_ylabel() == "block input" for ax in fig.axes)  # the colorbar


def test_se_blocks_get_channel_weight_figures_too(insp):
    fig = viz.channel_weights(insp, "layer3.attn")
    assert "(se)" in fig.axes[0].get_title()


def test_position_weights_pooled_and_overlaid_on_the_input(insp):
    fig = viz.position_weights(insp, "layer2.attn", 0, figsize=(7, 3))
    _rendered(fig, (7, 3))
    pooled, base, over = _images(fig)
    np.testing.assert_allclose(pooled.get_array(),
                               insp["layer2.attn"]["tap_pos_weights_pooled"][0, 0].numpy(),
                               rtol=1e-6)
    assert base.get_array().shape == over.get_array().shape == (16, 16)  # the input's size
    assert over.get_alpha() == pytest.approx(0.6)
    assert any(ax.get_ylabel() == "position weight" for ax in fig.axes)


def test_covariance_heatmaps_are_centred_at_zero_with_a_spectrum(insp):
    fig = viz.covariance(insp, "layer1.attn", 1, figsize=(11, 3.5))
    _rendered(fig, (11, 3.5))
    before, after = _images(fig)
    cov = insp["layer1.attn"]["tap_cov"][1].numpy()
    np.testing.assert_allclose(before.get_array(), cov, rtol=1e-6)
    for im in (before, after):
        assert isinstance(im.norm, TwoSlopeNorm) and im.norm.vcenter == 0
        assert im.norm.vmin == pytest.approx(-im.norm.vmax)
        assert im.norm.vmax == pytest.approx(np.abs(im.get_array()).max())
    titles = [ax.get_title() for ax in fig.axes]
    assert "covariance (before) 4x4" in titles and "after row-wise BN 4x4" in titles
    spectrum = next(ax for ax in fig.axes if ax.get_title() == "eigenvalue spectrum")
    evals = np.linalg.eigvalsh(cov.astype(np.float64))[::-1]
    np.testing.assert_allclose(spectrum.lines[0].get_ydata(), evals / evals[0], rtol=1e-5)


def test_isqrt_covariance_shows_the_newton_schulz_output_beside_the_exact_root(insp):
    fig = viz.covariance(insp, "head", 0)
    assert "Newton-Schulz output" in " ".join(ax.get_title() for ax in fig.axes)
    spectrum = next(ax for ax in fig.axes if ax.get_title() == "eigenvalue spectrum")
    cov, output, exact = (line.get_ydata() for line in spectrum.lines)
    evals = np.linalg.eigvalsh(insp["head"]["tap_cov_sqrt"][0].double().numpy())[::-1]
    np.testing.assert_allclose(output, evals / evals[0], rtol=1e-6)
    cov_evals = np.linalg.eigvalsh(insp["head"]["tap_cov"][0].double().numpy())[::-1]
    kept = cov_evals > 1e-6 * cov_evals[0]
    np.testing.assert_allclose(exact[kept], np.sqrt(cov_evals[kept] / cov_evals[0]), rtol=1e-5)
    # 3 Newton-Schulz steps flatten the spectrum, but only partway to the exact root
    assert (output[1:] > cov[1:]).all() and (output[kept][1:] < exact[kept][1:]).all()


def test_gate_choices_highlight_exactly_the_k_chosen(mixture):
    fig = viz.gate_choices(mixture, "head", 3, figsize=(9, 3))
    _rendered(fig, (9, 3))
    chosen = set(mixture["head"]["tap_gate_indices"][3].tolist())
    orange = matplotlib.colors.to_rgba(viz.CHOSEN)
    for ax in fig.axes[:2]:
        highlighted = {i for i, b in enumerate(ax.patches) if b.get_facecolor() == orange}
        assert highlighted == chosen and len(ax.patches) == N_COMPONENTS
    heights = [b.get_height() for b in fig.axes[1].patches]
    np.testing.assert_allclose(heights, mixture["head"]["tap_gate_weights"][3].numpy())
    assert sum(h > 0 for h in heights) == K


def test_gate_usage_grid_and_histogram(mixture):
    fig = viz.gate_usage(mixture, "head", figsize=(9, 3.5))
    _rendered(fig, (9, 3.5))
    w = mixture["head"]["tap_gate_weights"].numpy()
    np.testing.assert_allclose(_images(fig)[0].get_array(), w)
    counts = [b.get_height() for b in fig.axes[1].patches]
    assert counts == (w > 0).sum(0).tolist() and sum(counts) == 6 * K
    with pytest.raises(ValueError, match="has no tap_gate_weights"):
        viz.gate_usage(mixture, "layer1.attn")


def test_figures_for_one_image_cover_every_part(insp, mixture):
    figs = viz.figures(insp, 0)
    assert list(figs) == [
        "prediction", "layer1.attn: channel weights", "layer1.attn: covariance",
        "layer2.attn: position weights", "layer2.attn: covariance",
        "layer3.attn: channel weights", "head: covariance", "head: Newton-Schulz",
    ]
    assert all(isinstance(f, Figure) for f in figs.values())
    mix = viz.figures(mixture, 2)
    best = int(mixture["head"]["tap_gate_indices"][2, 0])
    assert "head: gate" in mix and f"head.components.{best}.pool: covariance" in mix
    plain = viz.figures(probe(toy_net(blocks=False), torch.randn(1, 1, 16, 16)))
    assert list(plain) == ["prediction"]


def test_newton_schulz_convergence_plots_the_errors(insp):
    cov = insp["head"]["tap_cov"]
    fig = viz.newton_schulz_convergence(cov, max_iters=6, used=3, figsize=(5, 3.5))
    _rendered(fig, (5, 3.5))
    median = next(line for line in fig.axes[0].lines if line.get_label().startswith("median"))
    expected = np.median(newton_schulz_errors(cov, max_iters=6).numpy(), axis=1)
    np.testing.assert_allclose(median.get_ydata(), expected)
    assert expected[-1] < expected[0]
    assert any(line.get_label() == "N = 3" for line in fig.axes[0].lines)


def no_gate_rows(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "component_usage"} for r in rows]


def test_training_curves_from_a_jsonl_file(tmp_path):
    rows = [
        {"epoch": e, "train_loss": 2 / e, "test_loss": 2.2 / e, "train_top1": 0.5 + e / 20,
         "test_top1": 0.45 + e / 20, "lr": 0.1 / e, "aux_loss": 0.01 * e,
         "images_per_s": 400.0 + e, "component_usage": [0.1 * e, 1 - 0.1 * e]}
        for e in range(1, 5)
    ]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fig = viz.training_curves(path, title="run", figsize=(9, 6))
    _rendered(fig, (9, 6))
    loss = fig.axes[0]
    assert loss.get_ylabel() == "loss"
    np.testing.assert_allclose(loss.lines[1].get_ydata(), [r["test_loss"] for r in rows])
    usage = next(ax for ax in fig.axes if ax.get_title() == "gate usage per epoch")
    np.testing.assert_allclose(usage.images[0].get_array(),
                               [r["component_usage"] for r in rows])
    no_gate = viz.training_curves(no_gate_rows(rows))
    assert not any(ax.get_title() == "gate usage per epoch" for ax in no_gate.axes)
    speed = next(ax for ax in fig.axes if ax.get_ylabel() == "training images/s")
    np.testing.assert_allclose(speed.lines[0].get_ydata(), [r["images_per_s"] for r in rows])
    labels = [ax.get_ylabel() for ax in no_gate.axes]
    assert "balance loss (aux)" in labels and len(labels) == 5
    # A model without a mixture head records aux 0: no balance-loss panel, a 2 x 2 figure.
    plain = viz.training_curves([{**r, "aux_loss": 0.0} for r in no_gate_rows(rows)])
    assert [ax.get_ylabel() for ax in plain.axes] == [
        "loss", "top-1 accuracy", "learning rate (end of epoch)", "training images/s"]
    with pytest.raises(ValueError, match="at least one metrics row"):
        viz.training_curves([])


def test_overlay_heatmap_and_display_image():
    image = torch.randn(3, 20, 30)
    shown = viz.display_image(image)
    assert shown.shape == (20, 30, 3) and shown.min() == 0 and shown.max() == 1
    heat = torch.zeros(5, 5)
    heat[0, 0] = 1.0
    out = viz.overlay(image, heat, alpha=1.0, size=(60, 40))
    assert out.size == (60, 40) and out.mode == "RGB"
    native = np.asarray(viz.overlay(image, heat, alpha=1.0))
    assert native.shape == (20, 30, 3)
    jet = matplotlib.colormaps["jet"]
    np.testing.assert_allclose(native[-1, -1] / 255, jet(0.0)[:3], atol=0.01)  # cold corner
    assert native[0, 0, 0] > native[-1, -1, 0]  # hot corner is redder
    m = np.array([[1.0, 0.0], [0.0, -0.5]])
    hm = viz.heatmap_image(m, size=64)
    assert hm.size == (64, 64)
    rgb = np.asarray(hm) / 255
    middle = matplotlib.colormaps[viz.DIVERGING](0.5)[:3]
    np.testing.assert_allclose(rgb[40, 0], middle, atol=0.01)  # zero is the centre colour
    assert rgb[0, 0, 0] > rgb[0, 0, 2] and rgb[63, 63, 2] > rgb[63, 63, 0]
    with pytest.raises(ValueError, match="takes one image, got a batch of 2"):
        viz.display_image(torch.zeros(2, 1, 4, 4))


def test_attribution_figure_one_panel_per_map():
    image = torch.randn(1, 1, 12, 12)
    maps = {"Grad-CAM": torch.rand(12, 12), "Integrated Gradients": torch.randn(12, 12)}
    fig = viz.attribution_figure(image, maps, figsize=(9, 3))
    _rendered(fig, (9, 3))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:3] == ["input", "Grad-CAM", "Integrated Gradients"]
    signed = _images(fig)[-1]
    assert isinstance(signed.norm, TwoSlopeNorm) and signed.norm.vcenter == 0


def test_figure_errors_name_the_problem(insp):
    with pytest.raises(ValueError, match=r"head \(isqrt_cov\) has none of the taps "
                                         "tap_channel_weights"):
        viz.channel_weights(insp, "head")
    with pytest.raises(KeyError, match="no probed block 'layer9'; probed: layer1.attn"):
        viz.covariance(insp, "layer9")
    with pytest.raises(IndexError, match="image 7 is out of range"):
        viz.covariance(insp, "head", 7)
    assert len(insp.class_names) == CLASSES


def test_viz_never_touches_pyplot():
    code = (
        "import sys, torch; sys.path.insert(0, 'tests')\n"
        "from test_probe import toy_net\n"
        "from gsoplib import viz\nfrom gsoplib.probe import probe\n"
        "insp = probe(toy_net('mixture'), torch.randn(2, 1, 16, 16))\n"
        "figs = viz.figures(insp); viz.gate_usage(insp, 'head')\n"
        "[viz.to_pil(f, 30) for f in figs.values()]\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_block_figures_select_the_image_and_the_right_figures(mixture):
    figs = viz.block_figures(mixture, "layer2.attn", 4)
    assert list(figs) == ["layer2.attn: position weights", "layer2.attn: covariance"]
    pooled = _images(figs["layer2.attn: position weights"])[0].get_array()
    np.testing.assert_allclose(pooled, mixture["layer2.attn"]["tap_pos_weights_pooled"][4, 0])
    head = viz.block_figures(mixture, "head", 4)
    best = int(mixture["head"]["tap_gate_indices"][4, 0])
    assert list(head) == ["head: gate", f"head.components.{best}.pool: covariance"]


def test_step_curves_draw_each_run_s_logged_steps_and_its_warm_up():
    from gsoplib import viz

    runs = [{"model": name, "warmup_steps": 4,
             "steps": [{"step": s, "epoch": s / 8, "lr": min(1.0, s / 4) * 0.1,
                        "train_loss": 2.0 - s / 10 - shift, "train_top1": s / 20}
                       for s in range(2, 17, 2)],
             "epochs": [{"epoch": 1, "test_top1": 0.5}, {"epoch": 2, "test_top1": 0.7}]}
            for name, shift in (("a", 0.0), ("b", 0.3))]
    fig = viz.step_curves(runs, title="t")
    loss, top1, lr = fig.axes
    assert [line.get_label() for line in loss.get_lines()] == ["a", "b"]
    assert list(loss.get_lines()[1].get_ydata()) == [r["train_loss"] for r in runs[1]["steps"]]
    assert list(lr.get_lines()[0].get_ydata())[:3] == [0.05, 0.1, 0.1]
    assert lr.patches and lr.patches[0].get_x() == 0  # the shaded warm-up, 4 of 16 steps
    tests = [line for line in top1.get_lines() if line.get_label() == "a: test"]
    assert list(tests[0].get_ydata()) == [0.5, 0.7]
    with pytest.raises(ValueError, match="has no step rows"):
        viz.step_curves([{"model": "empty", "steps": []}])


def test_probe_figure_draws_each_pooling_s_mean_per_backbone():
    from gsoplib.viz.sweep import probe_figure

    rows = [{"dataset": "d", "classes": 8, "backbone": b, "pooling": p, "per_class": 5,
             "seeds": 3, "test_top1": 10.0 * i + j, "test_top1_std": 1.0}
            for i, b in enumerate(("none", "trained")) for j, p in enumerate(("gap", "root"))]
    fig = probe_figure(rows + [{**rows[0], "per_class": 100, "test_top1": 99.0}], "d", 5)
    ax = fig.axes[0]
    heights = sorted(round(p.get_height(), 6) for p in ax.patches)
    assert heights == [0.0, 1.0, 10.0, 11.0]
    assert [line.get_ydata()[0] for line in ax.lines if line.get_linestyle() == ":"] == [12.5]
    with pytest.raises(ValueError, match="no probe rows for 'd' at 20 labels a class"):
        probe_figure(rows, "d", 20)


def test_sweep_view_shows_one_backbone_s_seeds_and_reads_the_lead_over_gap():
    from gsoplib.viz.sweep import sweep_view

    backbones = ["small", "large"]
    rows = [{"dataset": "d", "backbone": b, "pooling": p, "seeds": 3,
             "test_top1": mean, "test_top1_std": 0.5, "runs": [mean - 0.5, mean, mean + 0.5]}
            for b, scores in (("small", {"GAP": 60.0, "iSQRT-COV head": 70.0}),
                              ("large", {"GAP": 90.0, "iSQRT-COV head": 89.0}))
            for p, mean in scores.items()]
    small = sweep_view(rows, backbones, "d", "small")
    assert small.axes[1].get_title() == "small: iSQRT-COV head +10.0 over GAP (largest std 0.5)"
    assert sorted(small.axes[1].collections[0].get_offsets()[:, 1]) == [59.5, 60.0, 60.5]
    large = sweep_view(rows, backbones, "d", "large")
    assert large.axes[1].get_title() == "large: best: GAP (largest std 0.5)"
    only = sweep_view(rows, backbones, "d", "large", poolings=["iSQRT-COV head"])
    assert [t.get_text() for t in only.axes[1].get_xticklabels()] == ["iSQRT-COV head"]
    with pytest.raises(ValueError, match="no sweep rows for 'd' on backbone 'huge'"):
        sweep_view(rows, backbones, "d", "huge")
