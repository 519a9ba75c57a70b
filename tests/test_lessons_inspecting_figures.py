"""Notebook 06's spectrum and shuffle-control figures (gsoplib.viz.lessons_inspecting)."""

import pytest
import torch

from gsoplib.viz import lessons_inspecting as li


def test_spectra_figure_draws_relative_eigenvalues_largest_first_with_a_floor():
    low_rank = torch.tensor([0.0, 4.0, -1e-20, 1.0, 2.0])       # rank 3, one round-off negative
    fig = li.spectra_figure({"low rank": low_rank, "full": torch.tensor([3.0, 1.0, 2.0, 0.5, 0.1])},
                            mark=3, floor=1e-12, title="t")
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if line.get_label() in ("low rank", "full")]
    y = lines[0].get_ydata()
    assert list(lines[0].get_xdata()) == [1, 2, 3, 4, 5]
    assert y[:3] == pytest.approx([1.0, 0.5, 0.25]) and list(y[3:]) == [1e-12, 1e-12]
    assert lines[1].get_ydata()[-1] == pytest.approx(0.1 / 3)
    assert ax.get_yscale() == "log" and any(line.get_linestyle() == "--" for line in ax.get_lines())


def test_null_histograms_figure_places_the_measured_value_in_sds():
    controls = {"a": torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0]), "b": torch.arange(4.0)}
    fig = li.null_histograms_figure(controls, {"a": 2.0 + 3 * controls["a"].std().item(), "b": 1.5})
    titles = [ax.get_title() for ax in fig.axes]
    assert "+3.0 sd" in titles[0] and "+0.0 sd" in titles[1]
    assert fig.axes[0].get_lines()[0].get_xdata()[0] == pytest.approx(2.0 + 3 * 1.5811, abs=1e-3)
    with pytest.raises(ValueError, match="same panels"):
        li.null_histograms_figure(controls, {"a": 0.0})


def test_eigenvalue_errors_figure_draws_percent_and_leaves_out_nans():
    errors = {"N = 3": torch.tensor([-0.01, -0.1, -0.5, float("nan")]), "N = 10": torch.zeros(4)}
    fig = li.eigenvalue_errors_figure(errors, title="t")
    curve = next(line for line in fig.axes[0].get_lines() if line.get_label() == "N = 3")
    assert list(curve.get_xdata()) == [1, 2, 3]
    assert list(curve.get_ydata()) == pytest.approx([-1.0, -10.0, -50.0])
