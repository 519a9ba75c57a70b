"""Notebook 06's class-mean figures (gsoplib.viz.lessons_inspecting): class_means against a
loop, the class-mean channel-weight grid (w-bar_k - w-bar, what notebook 06's class share counts)
and the grids of position maps, on data whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gsoplib.viz import lessons_inspecting as li


def _toy(n_per_class: int = 6, n_classes: int = 3, channels: int = 5, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_classes).repeat_interleave(n_per_class)
    shift = torch.zeros(n_classes, channels)
    shift[1, 2] = 0.3                                      # class 1 favours channel 2
    w = 0.5 + shift[labels] + 0.01 * torch.randn(len(labels), channels, generator=gen)
    return w, labels


def test_class_means_is_the_mean_of_each_classs_images_and_nan_for_an_empty_class():
    w, labels = _toy()
    means = li.class_means(w, labels, 4)                   # class 3 has no image
    for k in range(3):
        torch.testing.assert_close(means[k], w[labels == k].double().mean(0))
    assert torch.isnan(means[3]).all()
    maps = w.view(-1, 5, 1).expand(-1, 5, 2)               # (S, h, w) keeps its shape
    assert li.class_means(maps, labels, 3).shape == (3, 5, 2)


def test_class_mean_weights_figure_draws_the_deviation_from_the_overall_mean():
    w, labels = _toy()
    fig = li.class_mean_weights_figure({"a": w, "b": w[:, :3]}, labels, ["x", "y", "z"],
                                       shares={"a": 0.5, "b": 0.25}, title="found")
    grid = np.asarray(fig.axes[0].images[0].get_array())
    expected = li.class_means(w, labels, 3) - w.double().mean(0)
    np.testing.assert_allclose(grid, expected.numpy())
    assert np.unravel_index(np.abs(grid).argmax(), grid.shape) == (1, 2)   # class 1, channel 2
    assert fig.axes[0].get_title() == "a: the class explains 50%"
    assert fig.axes[1].get_title() == "b: the class explains 25%"
    assert fig.get_suptitle() == "found"
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["x (6)", "y (6)", "z (6)"]
    bars = fig.axes[2:]                          # one colour bar per panel, each labelled
    assert len(bars) == 2
    assert all(bar.get_ylabel() == "class mean - overall mean weight" for bar in bars)


def test_map_grid_figure_one_scale_per_row_and_blank_nan():
    row1 = {"p": torch.zeros(3, 3), "q": torch.ones(3, 3)}
    moved = torch.full((3, 3), 2.0)
    moved[:, 0] = math.nan
    row2 = {"p": torch.full((3, 3), 5.0), "q": moved}
    fig = li.map_grid_figure({"first": row1, "second": row2}, title="two\nlines")
    images = [ax.images[0] for ax in fig.axes if ax.images][:4]
    assert (images[0].norm.vmin, images[0].norm.vmax) == (0.0, 1.0)
    assert (images[2].norm.vmin, images[2].norm.vmax) == (2.0, 5.0)     # NaN ignored
    assert fig.axes[0].get_title() == "p" and fig.axes[0].get_ylabel() == "first"
    with pytest.raises(ValueError, match="same columns"):
        li.map_grid_figure({"first": row1, "second": {"p": torch.zeros(3, 3)}})


def test_class_mean_maps_figure_rows_are_blocks_columns_classes():
    w, labels = _toy(channels=4)
    maps = w.view(-1, 2, 2)
    fig = li.class_mean_maps_figure({"block": maps}, labels, ["x", "y", "z"],
                                    shares={"block": 0.4})
    drawn = np.asarray(fig.axes[1].images[0].get_array())  # column "y"
    np.testing.assert_allclose(drawn, maps[labels == 1].double().mean(0).numpy())
    assert fig.axes[0].get_ylabel() == "block\nclass explains\n40%"
    assert [ax.get_title() for ax in fig.axes[:3]] == ["x", "y", "z"]


def test_class_mean_maps_figure_outlines_draw_the_class_mean_mask():
    labels = torch.tensor([0, 0, 1, 1])
    maps = torch.rand(4, 4, 4, generator=torch.Generator().manual_seed(0))
    masks = torch.zeros(4, 4, 4)
    masks[:2, 1:3, 1:3] = 1.0  # class 0: a garment in the middle
    plain = li.class_mean_maps_figure({"a": maps, "b": maps}, labels, ["x", "y"])
    drawn = li.class_mean_maps_figure({"a": maps, "b": maps}, labels, ["x", "y"], outlines=masks)
    assert all(len(ax.collections) == 0 for ax in plain.axes[:4])
    contoured = [len(ax.collections) > 0 for ax in drawn.axes[:4]]
    assert contoured == [True, False, True, False]  # class 1's mean mask is 0: no contour
