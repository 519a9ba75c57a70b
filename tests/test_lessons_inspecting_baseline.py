"""Notebook 06's baseline widget (gsoplib.viz.lessons_inspecting) and the figure options the
notebook uses: shared colour limits of attribution maps, a numbered position-weight grid and
labelled covariance axes (each default unchanged: the explorer draws the defaults)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from gsoplib import viz
from gsoplib.attribution import integrated_gradients, occlusion
from gsoplib.data import load_dataset, normalize
from gsoplib.pretrained import load_pretrained
from gsoplib.probe import probe
from gsoplib.viz import lessons_inspecting


@pytest.fixture(scope="module")
def tshirt():
    split = load_dataset("fashion_mnist", train=False)
    first = int((split.labels == 0).nonzero()[0, 0])
    image = normalize(split.images[first:first + 1], split.info.mean, split.info.std)
    model = load_pretrained("fmnist_small_gsop1").model.eval()
    return model, image, split.images[first][0] > 25, split.info


def test_baseline_attributions_from_grey_are_gsoplibs(tshirt):
    model, image, _, _ = tshirt
    maps = lessons_inspecting.baseline_attributions(model, image, 0.0, nodes=16)
    torch.testing.assert_close(maps.occlusion[None], occlusion(model, image))
    torch.testing.assert_close(maps.integrated[None],
                               integrated_gradients(model, image, n_steps=16))
    with torch.no_grad():
        logits = model(image)[0]
    assert maps.target == int(logits.argmax())
    assert maps.change == pytest.approx((logits[maps.target] - model(torch.zeros_like(image))[0,
                                         maps.target]).item(), abs=1e-5)
    with pytest.raises(ValueError, match="one normalised image"):
        lessons_inspecting.baseline_attributions(model, image[0], 0.0)


def _numbers(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"[-+]?\d+\.\d+", text)]


def test_baseline_view_recomputes_the_maps_when_the_intensity_moves(tshirt):
    model, image, garment, info = tshirt
    titles = {}
    for intensity in (0.0, info.mean[0]):
        fig = lessons_inspecting.baseline_view(intensity, model, image, garment, info.mean[0],
                                               info.std[0])
        occ, ig = (_numbers(ax.get_title())[1:] for ax in fig.axes[1:3])
        total, change = _numbers(fig.get_suptitle())[1:]
        assert total == pytest.approx(change, rel=0.05)          # completeness, 128 nodes
        titles[intensity] = occ, ig
    (occ_black, ig_black), (occ_grey, ig_grey) = titles[0.0], titles[info.mean[0]]
    # black leaves the background as it is: the garment scores, the background hardly
    assert occ_black[0] > 2 * occ_black[1] and abs(ig_black[1]) < 0.1 < ig_black[0]
    # gsoplib's grey paints the background: it scores higher than the garment
    assert occ_grey[1] > occ_grey[0] and ig_grey[1] > ig_grey[0]
    with pytest.raises(ValueError, match="intensity must be in"):
        lessons_inspecting.baseline_view(1.5, model, image, garment)


def test_baseline_view_keeps_given_colour_limits(tshirt):
    model, image, garment, info = tshirt
    own = lessons_inspecting.baseline_view(0.05, model, image, garment, info.mean[0], info.std[0],
                                           nodes=16)
    fixed = lessons_inspecting.baseline_view(0.05, model, image, garment, info.mean[0],
                                             info.std[0], nodes=16, limits=(1.5, 0.7))
    own_lims = [abs(ax.images[-1].norm.vmax) for ax in own.axes[1:3]]
    fixed_lims = [abs(ax.images[-1].norm.vmax) for ax in fixed.axes[1:3]]
    assert fixed_lims == pytest.approx([1.5, 0.7])                # the given limits, not the maps'
    assert own_lims[0] != pytest.approx(1.5) and own_lims[1] != pytest.approx(0.7)


def test_attribution_figure_takes_shared_colour_limits():
    maps = {"Grad-CAM": torch.rand(12, 12) * 0.5, "IG": torch.randn(12, 12)}
    plain = viz.attribution_figure(torch.randn(1, 12, 12), maps)
    norms = [ax.images[1].norm for ax in plain.axes[1:3]]
    assert norms[0].vmax == pytest.approx(maps["Grad-CAM"].max().item())
    assert norms[1].vmax == pytest.approx(maps["IG"].abs().max().item())
    shared = viz.attribution_figure(torch.randn(1, 12, 12), maps, limits={"Grad-CAM": 1.0,
                                                                         "IG": 7.5})
    norms = [ax.images[1].norm for ax in shared.axes[1:3]]
    assert (norms[0].vmin, norms[0].vmax) == (0, 1.0)
    assert (norms[1].vmin, norms[1].vmax) == (-7.5, 7.5)
    one = viz.attribution_figure(torch.randn(1, 12, 12), maps, limits={"IG": 7.5})
    assert one.axes[1].images[1].norm.vmax == pytest.approx(maps["Grad-CAM"].max().item())
    with pytest.raises(ValueError, match="must be positive"):
        viz.attribution_figure(torch.randn(1, 12, 12), maps, limits={"IG": 0.0})


def test_position_grid_ticks_and_covariance_axis_labels_are_options():
    model = load_pretrained("fmnist_small_gsop_pos").model
    split = load_dataset("fashion_mnist", train=False)
    insp = probe(model, normalize(split.images[:2], split.info.mean, split.info.std))
    plain = viz.position_weights(insp, "layer3.2.attn", 0)
    assert not plain.axes[0].axison
    ticked = viz.position_weights(insp, "layer3.2.attn", 0, grid_ticks=True)
    assert list(ticked.axes[0].get_xticks()) == list(range(7)) == list(ticked.axes[0].get_yticks())
    assert (ticked.axes[0].get_xlabel(), ticked.axes[0].get_ylabel()) == ("column", "row")
    insp2 = probe(load_pretrained("fmnist_small_gsop2").model,
                  normalize(split.images[:2], split.info.mean, split.info.std))
    bare = viz.covariance(insp2, "head.pool", 0)
    assert not bare.axes[0].axison
    assert [ax.get_ylabel() for ax in bare.axes if hasattr(ax, "_colorbar")] == ["", ""]
    labelled = viz.covariance(insp2, "head.pool", 0, axis_labels=("channel j", "channel i"),
                              colorbar_label="entry")
    heat = [ax for ax in labelled.axes if ax.get_xlabel() == "channel j"]
    assert len(heat) == 2 and all(ax.get_ylabel() == "channel i" for ax in heat)
    bars = [ax for ax in labelled.axes if hasattr(ax, "_colorbar")]
    assert [ax.get_ylabel() for ax in bars] == ["entry", "entry"]


def test_choice_share_counts_images_and_the_figure_draws_it_beside_mean_omega():
    # 6 images, 3 classes, N = 4, K = 2: class 0 always {0, 1}; class 1 {0, 1} then {2, 3};
    # class 2 always {2, 3}
    indices = torch.tensor([[0, 1], [1, 0], [0, 1], [2, 3], [3, 2], [2, 3]])
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    share = lessons_inspecting.choice_share(indices, labels, 3, 4)
    expected = torch.tensor([[1, 1, 0, 0], [0.5, 0.5, 0.5, 0.5], [0, 0, 1, 1]],
                            dtype=torch.float64)
    torch.testing.assert_close(share, expected)
    torch.testing.assert_close(share.sum(1), torch.full((3,), 2.0, dtype=torch.float64))
    weights = torch.zeros(6, 4).scatter_(1, indices, torch.tensor([[0.7, 0.3]]).expand(6, 2))
    fig = lessons_inspecting.choice_share_figure(indices, weights, labels, ["a", "b", "c"],
                                                 title="t")
    left, right = fig.axes[0].images[0], fig.axes[1].images[0]
    np.testing.assert_allclose(left.get_array(), expected.numpy())
    assert (left.norm.vmin, left.norm.vmax) == (0, 1)
    # class 0's two images put 0.7 then 0.3 on component 0 (the first of each row's indices)
    assert right.get_array()[0, 0] == pytest.approx((0.7 + 0.3) / 2)
    assert right.get_array()[2, 2] == pytest.approx((0.7 + 0.3) / 2)
    assert right.get_array()[1, 0] == pytest.approx(0.7 / 2)
    bars = [ax.get_ylabel() for ax in fig.axes if hasattr(ax, "_colorbar")]
    assert bars == ["share of the class's images\nchoosing the component", "mean omega"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a (2)", "b (2)", "c (2)"]
    assert fig.get_suptitle() == "t"


def test_region_sums_split_a_map_into_positive_negative_and_net_per_region():
    heat = torch.tensor([[1.0, -2.0], [0.5, -0.25]])
    top = torch.tensor([[True, True], [False, False]])
    sums = lessons_inspecting.region_sums(heat, {"top": top, "bottom": ~top})
    assert sums["top"] == (1.0, -2.0, -1.0) and sums["bottom"] == (0.5, -0.25, 0.25)
    assert sum(v.net for v in sums.values()) == pytest.approx(heat.sum().item())
    with pytest.raises(ValueError, match="shape"):
        lessons_inspecting.region_sums(heat, {"wrong": torch.ones(3, 3, dtype=torch.bool)})


def test_region_sums_figure_draws_the_parts_and_the_net_of_each_map(tshirt):
    """On the T-shirt, integrated gradients from gsoplib's grey put most of the logit's rise on
    the background, from black none: the figure's bars and diamonds are those numbers."""
    model, image, garment, info = tshirt
    maps = {f"from {v:.2f}": lessons_inspecting.baseline_attributions(
        model, image, (v - info.mean[0]) / info.std[0], nodes=128).integrated
        for v in (info.mean[0], 0.0)}
    regions = {"garment": garment, "background": ~garment}
    fig = lessons_inspecting.region_sums_figure(maps, regions)
    assert [ax.get_title() for ax in fig.axes] == list(maps)
    for ax, heat in zip(fig.axes, maps.values()):
        sums = lessons_inspecting.region_sums(heat, regions)
        widths = [bar.get_width() for bar in ax.patches]            # positive bars, then negative
        assert widths == pytest.approx([s.positive for s in sums.values()]
                                       + [s.negative for s in sums.values()])
        nets = [line.get_xdata()[0] for line in ax.lines if line.get_marker() == "D"]
        assert nets == pytest.approx([s.net for s in sums.values()])
        assert [t.get_text() for t in ax.texts] == [f"net {s.net:+.2f}" for s in sums.values()]
    grey, black = (lessons_inspecting.region_sums(h, regions) for h in maps.values())
    assert grey["background"].net > grey["garment"].net and abs(black["background"].net) < 0.1
    assert black["garment"].negative < -1                         # cancellation inside the garment
