"""gsoplib.viz.lessons_sqrtm_gradient: the null-direction gradient of the regularised root and of
Newton-Schulz (notebook 02, section 4)."""

import math

import pytest
import torch

from gsoplib.viz.lessons_sqrtm_gradient import null_gradient_figure, null_gradient_summary


def test_summary_matches_the_closed_forms():
    s = null_gradient_summary(eps_values=(1e-2, 1e-4), iters=(1, 3, 10))
    torch.testing.assert_close(s["eigh"].abs(), 1 / (2 * s["eps"].sqrt()))
    torch.testing.assert_close(s["sylvester"], 1 / (2 * s["eps"].sqrt()))
    torch.testing.assert_close(s["newton_schulz"], 1.5 ** s["iters"] / math.sqrt(3.0))
    assert round(float(s["matched_eps"][1]), 3) == 0.066
    # at its matched eps the regularised root has Newton-Schulz's entry
    torch.testing.assert_close(1 / (2 * s["matched_eps"].sqrt()), s["newton_schulz"])


def test_summary_depends_on_the_trace_and_rejects_no_zero():
    small, large = (null_gradient_summary(lam, eps_values=(1e-2,), iters=(3,)) for lam in
                    ((0.0, 1.0, 2.0), (0.0, 10.0, 20.0)))
    assert small["newton_schulz"][0] > 2 * large["newton_schulz"][0]
    assert torch.equal(small["eigh"], large["eigh"])          # the eps side does not see the trace
    with pytest.raises(ValueError):
        null_gradient_summary((1.0, 2.0))


def test_figure_titles_state_the_finding():
    fig = null_gradient_figure(eps_values=(1e-1, 1e-3, 1e-5), iters=(1, 2, 3, 4, 5), marked=(3, 5))
    left, right = fig.axes[:2]
    assert "eps^-0.50" in left.get_title()
    assert "N = 3 acts like eps = 0.066" in right.get_title()
    other = null_gradient_figure(eps_values=(1e-1, 1e-3), iters=(1, 5), marked=(5,))
    assert "N = 5 acts like eps = 0.013" in other.axes[1].get_title()
