"""eigenvalue_maps' optional histogram of given eigenvalues (notebook 02, figure of section 5)."""
import pytest
import torch

from gsoplib.viz import newton


def test_histogram_follows_the_given_eigenvalues():
    figs = [newton.eigenvalue_maps(channels=64, eigenvalues=torch.full((10, 8), v))
            for v in (2e-3, 0.2)]
    assert [len(fig.axes) for fig in figs] == [3, 3]      # the twin axis holds the histogram
    labels = [fig.axes[2].get_ylabel() for fig in figs]
    assert "median 0.002" in labels[0] and "0% above" in labels[0]
    assert "median 0.2" in labels[1] and "100% above" in labels[1]
    heights = [max(p.get_height() for p in fig.axes[2].patches) for fig in figs]
    assert heights == pytest.approx([1.0, 1.0])           # one bin holds all of them
    left = [next(p.get_x() for p in fig.axes[2].patches if p.get_height() > 0) for fig in figs]
    assert 1e-3 < left[0] < 2e-3 < 0.1 < left[1] < 0.2


def test_no_eigenvalues_no_histogram_and_zeros_left_out():
    assert len(newton.eigenvalue_maps(channels=64).axes) == 2
    mixed = torch.tensor([0.0, 0.0, 0.02, 0.02])
    label = newton.eigenvalue_maps(channels=64, eigenvalues=mixed).axes[2].get_ylabel()
    assert "median 0.02" in label and "100% above" in label
