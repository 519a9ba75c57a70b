"""Notebook 04's later additions: the router widget (section 5), the load-loss check figure
(section 3) and fig3_figure's per-seed training speed (section 7)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gsoplib.viz import gate_benchmarks, lessons_mixture


def test_router_curves_linear_saturates_cosine_does_not():
    curves = lessons_mixture.router_curves([1.0, 10.0, 100.0], s=2.0)
    linear, cosine = curves["linear"], curves["cosine"]
    # the numbers notebook 04 prints in section 5 (seed 0, 512 images, K = 4 of N = 8)
    assert np.round(linear["effective"], 2).tolist() == [3.19, 1.26, 1.03]
    assert np.round(cosine["effective"], 2).tolist() == [3.65, 3.65, 3.65]
    assert np.ptp(cosine["effective"]) < 1e-4                 # the cosine ignores |W_g|
    assert linear["largest"][-1] > 0.98 > lessons_mixture.cosine_bound(2.0, 4)
    assert cosine["per_image"].max() <= lessons_mixture.cosine_bound(2.0, 4) + 1e-6
    assert cosine["per_image"].shape == (3, 512)


def test_cosine_bound_is_the_extreme_softmax():
    assert math.isclose(lessons_mixture.cosine_bound(2.0, 4), math.exp(4) / (math.exp(4) + 3))
    assert math.isclose(lessons_mixture.cosine_bound(0.5, 1), 1.0)
    assert round(lessons_mixture.cosine_bound(2.0, 4), 3) == 0.948


def test_router_view_recomputes_for_growth_and_scale():
    low = lessons_mixture.router_view(growth=1.0, s=2.0)
    high = lessons_mixture.router_view(growth=100.0, s=2.0)
    assert low.axes[0].get_title().startswith("W_g x 1: 3.19 of 4 count (linear)")
    assert high.axes[0].get_title().startswith("W_g x 100: 1.03 of 4 count (linear)")
    assert "at every growth" in low.axes[0].get_title()
    sharp = lessons_mixture.router_view(growth=10.0, s=8.0)
    assert "stays below 0.948" in low.axes[1].get_title()
    assert "stays below 1.000" in sharp.axes[1].get_title()     # e^16 / (e^16 + 3) to 3 digits
    cosine_low = float(low.axes[2].get_title().rsplit("cosine ", 1)[1].rstrip(")"))
    cosine_sharp = float(sharp.axes[2].get_title().rsplit("cosine ", 1)[1].rstrip(")"))
    assert cosine_sharp > cosine_low + 0.1                      # a larger s sharpens the weights
    assert len(low.axes) == 3 and low.axes[0].get_xscale() == "log"


def test_load_check_figure_counts_the_pairs_within_two_se():
    formula = np.array([0.1, 0.5, 0.9, 0.3])
    se = np.full(4, 0.01)
    simulated = formula + np.array([0.0, 0.015, -0.03, 0.005])
    fig = lessons_mixture.load_check_figure(formula, simulated, se, title="t")
    assert fig.axes[1].get_title() == "3 of 4 within 2 SE (about 95% expected); largest 3.0 SE"
    assert fig.axes[0].get_title().startswith("4 pairs")
    with pytest.raises(ValueError, match="equal length"):
        lessons_mixture.load_check_figure(formula, simulated[:3], se)


def test_fig3_figure_draws_every_seed_speed_when_asked():
    seeds = [{"N": 4, "K": k, "test_top1": 90.0 + j, "train_images_per_s": v}
             for k, speeds in ((1, (450.0, 470.0, 460.0)), (2, (400.0, 420.0, 430.0)))
             for j, v in enumerate(speeds)]
    rows = [{"N": 4, "K": k, "test_top1": 91.0, "test_top1_std": 1.0, "train_images_per_s": m,
             "effective_components": k} for k, m in ((1, 460.0), (2, 420.0))]
    fig = gate_benchmarks.fig3_figure(rows, seeds=seeds, speed_seeds=True)
    speed = fig.axes[1]
    bars = speed.containers[0].lines[2][0].get_segments()
    assert [(float(s[0][1]), float(s[1][1])) for s in bars] == [(450.0, 470.0), (400.0, 430.0)]
    assert len(speed.collections[-1].get_offsets()) == 6         # every seed a dot
    assert "seed range" in speed.get_ylabel()
    plain = gate_benchmarks.fig3_figure(rows, seeds=seeds).axes[1]  # the default: medians only
    assert not plain.containers and "seed range" not in plain.get_ylabel()
    with pytest.raises(ValueError, match="speed_seeds=True needs"):
        gate_benchmarks.fig3_figure(rows, speed_seeds=True)


def test_mixture_timing_figure_draws_a_bar_per_method_and_the_prediction():
    rows = [{"level": level, "method": m, "fwd_bwd_ms": ms, "x_vs_ave": x}
            for level in ("head", "network")
            for m, ms, x in (("GM-SOP-16-8 (dispatch)", 6.0, 0.6), ("Ave-SOP-16", 10.0, 1.0))]
    fig = gate_benchmarks.mixture_timing_figure(rows, predicted=9 / 16, titles=("h", "n"))
    head, network = fig.axes
    assert [p.get_width() for p in head.patches] == [0.6, 1.0]
    ticks = {t.get_text(): y for t, y in zip(head.get_yticklabels(), head.get_yticks())}
    assert ticks == {"GM-SOP-16-8 (dispatch)": 1, "Ave-SOP-16": 0}                # first row on top
    marks = {line.get_label(): line.get_xdata()[0] for line in head.lines}
    assert marks["the count of CM evaluations: 0.56"] == 9 / 16 and marks["Ave-SOP (1x)"] == 1.0
    assert len(network.lines) == 1 and head.get_title() == "h"       # the prediction: head only
    with pytest.raises(ValueError, match="needs 2 titles"):
        gate_benchmarks.mixture_timing_figure(rows, titles=("h",))


def test_timing_verdict_resolves_only_rounds_that_agree_on_a_side():
    # notebook 04's committed rounds: dispatch / Ave-SOP-16 and GM-SOP-16-4 / GM-SOP-8-4
    assert lessons_mixture.timing_verdict([0.45, 0.31, 0.38], 5 / 16).startswith(
        "not resolved: the rounds spread 0.14, more than their median's 0.07 from the 0.31")
    assert lessons_mixture.timing_verdict([0.99, 0.75, 0.95], 1.0).startswith("not resolved")
    # the rounds agree on a side and spread less than their median lies from the prediction
    assert lessons_mixture.timing_verdict([0.50, 0.52, 0.51], 1.0) == (
        "resolved: all rounds below the 1.00 predicted (spread 0.02)")
    above = lessons_mixture.timing_verdict([1.30, 1.25, 1.35], 1.0)
    assert above.startswith("resolved: all rounds above")
    assert lessons_mixture.timing_verdict([0.9, 1.1], 1.0).startswith("not resolved")   # both sides
    with pytest.raises(ValueError, match="at least one"):
        lessons_mixture.timing_verdict([], 1.0)


def test_class_choice_shares_rows_sum_to_k_and_tell_a_class_fixed_gate_from_a_blind_one():
    import torch
    labels = torch.arange(400) % 4
    fixed = torch.stack([(2 * labels + j) % 8 for j in range(4)], dim=1)   # class c: 2c .. 2c + 3
    shares = lessons_mixture.class_choice_shares(fixed, labels, 8)
    assert shares.shape == (4, 8) and np.allclose(shares.sum(1), 4)
    assert np.array_equal(shares[1], [0, 0, 1, 1, 1, 1, 0, 0])                 # class 1 fixes 2..5
    torch.manual_seed(0)
    blind = torch.rand(400, 8).argsort(dim=1)[:, :4]
    spread = lessons_mixture.class_choice_shares(blind, labels, 8)
    assert np.allclose(spread.sum(1), 4) and 0.3 < spread.min() and spread.max() < 0.7
    fig = lessons_mixture.class_choice_figure(fixed, labels, 8, class_names=list("abcd"), title="t")
    assert fig.axes[0].get_title() == "t" and len(fig.axes[0].texts) == 32
    with pytest.raises(ValueError):
        lessons_mixture.class_choice_shares(fixed[:3], labels, 8)
