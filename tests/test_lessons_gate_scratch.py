"""Notebook 04's from-scratch component model, gate, head and gate statistics against gsoplib, the
toy whose gating branch can learn (the release's collapse under the balance loss, GM-SOP Eq. 4),
and the figures the notebook draws from the committed benchmark JSON.

The from-scratch code is the notebook's (sections 1, 2 and 4): if the library's component model,
default gate, dispatch or diagnostics change what they compute, the notebook's equality breaks,
and so does this test.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from matplotlib.container import BarContainer
from matplotlib.figure import Figure

from gsoplib.heads import GatedMixtureHead, NoisyTopKGate, balance_loss
from gsoplib.heads.gate import gate_diagnostics
from gsoplib.heads.mixture import parametric_srsop, top_k_softmax
from gsoplib.ops import sqrtm_newton_schulz
from gsoplib.toy_mixture import toy_data
from gsoplib.viz import gate_benchmarks, lessons_mixture


def _mixing_gate_eval(f, gate):
    """The notebook's default (mixing) gate in eval: standardise, s cos(f, w_n), top K, softmax."""
    f = (f - gate.norm.running_mean) / (gate.norm.running_var + gate.norm.eps).sqrt()
    logits = gate.logit_scale * F.normalize(f, dim=1) @ F.normalize(gate.w_gate, dim=1).T
    top = logits.topk(gate.k, dim=1)
    weights = torch.zeros_like(logits).scatter(1, top.indices, top.values.softmax(dim=1))
    return weights, top.indices


def _srsop_by_hand(x, weights):
    """The notebook's parametric SR-SOP (GM-SOP Eq. 6 as implemented): 1x1 convs + ReLU,
    centred covariance, Newton-Schulz root (the upper triangle is taken by the caller)."""
    z = x.flatten(2)
    for w in weights:
        z = F.relu(w @ z)
    z = z - z.mean(dim=2, keepdim=True)
    return sqrtm_newton_schulz(z @ z.transpose(1, 2) / z.shape[2], iters=3)


def _conv_weights(cm):
    return [layer.weight.detach()[:, :, 0, 0] for layer in cm.project
            if isinstance(layer, torch.nn.Conv2d)]


@pytest.mark.parametrize("channels", [(256, 128), (24, 12)])
def test_parametric_srsop_from_scratch(channels):
    torch.manual_seed(0)
    x = torch.randn(3, 16, 6, 5)
    cm = parametric_srsop(16, channels)
    upper = torch.triu_indices(channels[-1], channels[-1])
    with torch.no_grad():
        by_hand = _srsop_by_hand(x, _conv_weights(cm))[:, upper[0], upper[1]]
        torch.testing.assert_close(by_hand, cm(x))


def test_the_whole_head_from_scratch_with_the_gap_gating_branch():
    torch.manual_seed(0)
    head = GatedMixtureHead(16, component="sop", num_components=6, k=3, num_classes=5,
                            sop_channels=(16, 8), gate_branch="gap")
    x = torch.randn(12, 16, 5, 5)
    upper = torch.triu_indices(8, 8)
    bn, fc = head.classifier[0], head.classifier[2]
    with torch.no_grad():
        for _ in range(3):
            head.train()(torch.randn(12, 16, 5, 5))
        head.eval()
        weights, indices = _mixing_gate_eval(x.mean(dim=(2, 3)), head.gate)
        top = weights.gather(1, indices)
        z = torch.zeros(len(x), head.dim)
        for n, cm in enumerate(head.components):
            rows, slot = (indices == n).nonzero(as_tuple=True)
            if len(rows):
                rep = _srsop_by_hand(x[rows], _conv_weights(cm))[:, upper[0], upper[1]]
                z.index_add_(0, rows, top[rows, slot, None] * rep)
        standardised = (z - bn.running_mean) / (bn.running_var + bn.eps).sqrt()
        standardised = standardised * bn.weight + bn.bias
        torch.testing.assert_close(standardised @ fc.weight.T + fc.bias, head(x))


def test_mutual_information_and_effective_components_from_scratch():
    torch.manual_seed(2)
    labels = torch.randint(0, 5, (600,))
    logits = torch.randn(600, 8) + 2.0 * F.one_hot(labels, 8)   # the class leans on a component
    weights, indices, kept = top_k_softmax(logits, 3)
    pairs = torch.zeros(600, 8).scatter(1, indices, 1.0)
    joint = torch.zeros(5, 8).index_add(0, labels, pairs) / pairs.sum()
    margins = joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True)
    mi = (joint * (joint / margins).log2()).nansum()
    report = gate_diagnostics(indices, weights, labels)
    assert 0.05 < report.mutual_information < 1.0
    assert abs(float(mi) - report.mutual_information) < 1e-5
    effective = (1 / kept.square().sum(dim=1)).mean()
    assert abs(float(effective) - report.effective_components) < 1e-5


def test_default_gate_in_eval_is_the_standardised_cosine_top_k():
    torch.manual_seed(1)
    gate = NoisyTopKGate(12, num_experts=8, k=3)
    shift = torch.linspace(-3.0, 3.0, 12)
    with torch.no_grad():
        for _ in range(10):
            gate.train()(2.0 * torch.randn(32, 12) + shift)
        f = 2.0 * torch.randn(40, 12) + shift
        out = gate.eval()(f)
        weights, indices = _mixing_gate_eval(f, gate)
    assert gate.form == "mixing"
    torch.testing.assert_close(weights, out.weights)
    assert torch.equal(indices, out.indices)
    # the running statistics matter: with the initial ones (0, 1) the choice would differ
    with torch.no_grad():
        raw = top_k_softmax(gate.logit_scale * F.normalize(f, dim=1)
                            @ F.normalize(gate.w_gate, dim=1).T, 3)[1]
    assert not torch.equal(raw, out.indices)


@pytest.mark.parametrize("component", ["sop", "gap"])
def test_head_from_scratch_runs_each_chosen_component_once(component):
    torch.manual_seed(0)
    head = GatedMixtureHead(16, component=component, num_components=6, k=2, num_classes=5,
                            sop_channels=(16, 8), gap_dim=12)
    x = torch.randn(12, 16, 5, 5)
    with torch.no_grad():
        for _ in range(3):
            head.train()(torch.randn(12, 16, 5, 5))
        head.eval()
        weights, indices = _mixing_gate_eval(head.gate_branch(x), head.gate)
        top = weights.gather(1, indices)
        z, evaluations = torch.zeros(len(x), head.dim), 0
        for n, cm in enumerate(head.components):
            rows, slot = (indices == n).nonzero(as_tuple=True)
            if len(rows):
                z.index_add_(0, rows, top[rows, slot, None] * cm(x[rows]))
                evaluations += len(rows)
        torch.testing.assert_close(head.classifier(z), head(x))
    assert evaluations == 12 * 2


def test_balance_loss_is_alpha_times_the_squared_cv_of_the_importance():
    torch.manual_seed(0)
    weights = top_k_softmax(torch.randn(32, 8), 3)[0]
    importance = weights.sum(dim=0)
    torch.testing.assert_close(balance_loss(weights, alpha=100),
                               100 * importance.var() / importance.mean() ** 2)


@pytest.fixture(scope="module")
def data():
    return toy_data(train_samples=2000, test_samples=400)


@pytest.fixture(scope="module")
def branch_runs(data):
    return {(gate, alpha): lessons_mixture.train_branch_toy(data, alpha, gate, steps=300)
            for gate, alpha in (("release", 0.0), ("release", 100.0), ("mixing", 100.0))}


def test_the_balance_loss_shrinks_the_release_branch_and_ties_its_weights(branch_runs):
    free, tied = branch_runs[("release", 0.0)], branch_runs[("release", 100.0)]
    mixing = branch_runs[("mixing", 100.0)]
    ratio = {key: run.history[-1][1] / run.history[0][1] for key, run in branch_runs.items()}
    assert ratio[("release", 100.0)] < 0.5 < ratio[("release", 0.0)]
    assert ratio[("mixing", 100.0)] > 0.7
    assert tied.history[0][2] == 0.0                  # the constant init ties every logit at first
    assert tied.history[-1][2] < 0.05 < free.history[-1][2]
    assert mixing.history[-1][2] > 0.05
    assert tied.train_cv < free.train_cv
    steps = [step for step, _, _ in tied.history]
    assert steps[0] == 1 and steps[-1] == 300 and all(s % 25 == 0 for s in steps[1:])
    assert "alpha = 100" in tied.summary() and tied.label == "release, alpha = 100"


def test_the_run_is_deterministic(data, branch_runs):
    again = lessons_mixture.train_branch_toy(data, 100.0, "release", steps=300)
    assert again.history == branch_runs[("release", 100.0)].history


def test_bad_window_is_refused(data):
    with pytest.raises(ValueError, match="window"):
        lessons_mixture.train_branch_toy(data, 0.0, steps=10, window=20)


def test_branch_collapse_figure_draws_a_line_per_run(branch_runs):
    runs = list(branch_runs.values())
    fig = lessons_mixture.branch_collapse_figure(runs, title="a finding")
    assert isinstance(fig, Figure)
    left, right = fig.axes
    assert len(left.lines) == len(right.lines) == 3
    assert left.get_yscale() == "log" and right.get_ylim()[0] == 0
    assert [line.get_label() for line in left.lines] == [run.label for run in runs]
    assert list(left.lines[1].get_ydata()) == [f for _, f, _ in runs[1].history]
    assert fig._suptitle.get_text() == "a finding"
    with pytest.raises(ValueError):
        lessons_mixture.branch_collapse_figure([])


SATURATION = [
    {"variant": "live", "logit_span": 48.0, "effective_components": 1.13, "weight_deviation": 0.35,
     "test_top1": 71.7, "test_top1_std": 8.6},
    {"variant": "live_z_loss", "logit_span": 49.0, "effective_components": 1.14,
     "weight_deviation": 0.35, "test_top1": 73.9, "test_top1_std": 5.6},
    {"variant": "mixing", "logit_span": 0.6, "effective_components": 3.94,
     "weight_deviation": 0.024, "test_top1": 96.6, "test_top1_std": 1.4},
    {"variant": "cosine_learned", "logit_span": 0.05, "effective_components": 4.0,
     "weight_deviation": 0.002, "test_top1": 96.5, "test_top1_std": 1.0},
]


def test_gate_status_names_the_three_states():
    assert [gate_benchmarks.gate_status(r) for r in SATURATION] == [
        "one component", "one component", "mixes", "tied at 1/K"]
    # K = 1: one weight of 1 is neither a collapse nor a tie
    assert gate_benchmarks.gate_status(
        {"effective_components": 1.0, "weight_deviation": 0.0}, k=1) == "mixes"


def test_saturation_overview_colours_by_state_and_labels_close_points_once():
    fig = gate_benchmarks.saturation_overview(SATURATION, titles=("left finding", "right finding"))
    left, right = fig.axes
    labels = sorted(t.get_text().replace("\n", " ") for t in left.texts)
    assert labels == ["cosine_learned", "live, live_z_loss", "mixing"]
    states = {c.get_label(): len(c.get_offsets()) for c in left.collections}
    assert states == {"mixes": 1, "one component": 2, "tied at 1/K": 1}
    assert [b.get_height() for b in right.patches] == [71.7, 73.9, 96.6, 96.5]
    colours = [b.get_facecolor()[:3] for b in right.patches]
    assert colours[0] == colours[1] != colours[2] != colours[3]
    assert right.get_ylim()[0] <= 71.7 - 8.6                 # every error bar inside the axes
    assert left.get_title() == "left finding" and right.get_title() == "right finding"
    with pytest.raises(ValueError, match="2 titles"):
        gate_benchmarks.saturation_overview(SATURATION, titles=("one",))


def test_fig3_figure_with_seeds_spans_the_seed_range_and_states_the_findings():
    seeds = [{"N": 4, "K": k, "test_top1": acc} for k, accs in ((1, (80.0, 90.0, 85.0)),
                                                               (2, (96.0, 99.5, 97.0)))
             for acc in accs]
    rows = [{"N": 4, "K": k, "test_top1": sum(a["test_top1"] for a in seeds if a["K"] == k) / 3,
             "test_top1_std": 5.0, "train_images_per_s": 400.0, "effective_components": k}
            for k in (1, 2)]
    fig = gate_benchmarks.fig3_figure(rows, seeds=seeds, titles=("a", "b", "c"))
    accuracy = fig.axes[0]
    bars = accuracy.containers[0].lines[2][0].get_segments()
    assert [(float(s[0][1]), float(s[1][1])) for s in bars] == [(80.0, 90.0), (96.0, 99.5)]
    assert len(accuracy.collections[-1].get_offsets()) == 6        # every seed a dot
    assert accuracy.get_ylim()[1] <= 100.5
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="no seed rows"):
        gate_benchmarks.fig3_figure(rows, seeds=seeds[:3])


def test_balance_figure_draws_a_column_per_gate_with_seed_ranges():
    def run(gate, alpha, seed, top):
        share = [top] + [(1 - top) / 15] * 15
        return {"gate": gate, "alpha": alpha, "seed": seed, "train_usage_sorted": share,
                "image_share_sorted": [4 * s for s in share]}

    rows = [run(g, a, seed, top) for g in ("live", "release") for a in (0.0, 100.0)
            for seed, top in ((0, 0.2), (1, 0.3))]
    fig = gate_benchmarks.balance_figure(rows, titles=["t1", "t2", "t3", "t4"])
    axes = fig.axes
    assert len(axes) == 4 and [ax.get_title() for ax in axes] == ["t1", "t2", "t3", "t4"]
    bars = [c for c in axes[0].containers if isinstance(c, BarContainer)]
    assert len(bars) == 2                           # live, training usage: alpha 0 and 100
    assert abs(bars[0].patches[0].get_height() - 25.0) < 1e-9     # the mean of 20% and 30%
    assert [t.get_text() for t in axes[0].get_legend().get_texts()][-2:] == [
        "alpha = 0 (2 seeds; error bars: lowest to highest seed)",
        "alpha = 100 (2 seeds; error bars: lowest to highest seed)"]
    with pytest.raises(ValueError, match="4 titles"):
        gate_benchmarks.balance_figure(rows, titles=["one"])


def test_fig2_figure_takes_a_title_per_panel(data):
    from gsoplib.toy_mixture import train_toy_mixture

    runs = [train_toy_mixture(data, 8, 2, alpha, steps=20, window=10) for alpha in (0.0, 100.0)]
    fig = lessons_mixture.fig2_figure(runs, titles=("x", "y", "z"))
    assert [ax.get_title() for ax in fig.axes] == ["x", "y", "z"]
    with pytest.raises(ValueError, match="3 titles"):
        lessons_mixture.fig2_figure(runs, titles=("x",))


def test_saturation_overview_points_draw_accuracy_as_positions_not_bars():
    fig = gate_benchmarks.saturation_overview(SATURATION, accuracy="points")
    right = fig.axes[1]
    assert not right.patches                                   # no bars
    tops = [float(c.lines[0].get_ydata()[0]) for c in right.containers]
    assert tops == [71.7, 73.9, 96.6, 96.5]
    assert right.get_ylim()[0] <= 71.7 - 8.6
    with pytest.raises(ValueError, match="bars' or 'points"):
        gate_benchmarks.saturation_overview(SATURATION, accuracy="pie")


def test_fig3_figure_right_panel_can_show_the_largest_weight_against_the_tie():
    rows = [{"N": 4, "K": k, "test_top1": 90.0, "test_top1_std": 1.0, "train_images_per_s": 400.0,
             "effective_components": k, "largest_weight": w} for k, w in ((1, 1.0), (2, 0.55))]
    fig = gate_benchmarks.fig3_figure(rows, right="largest_weight")
    right = fig.axes[2]
    drawn, tie = right.lines[0], right.lines[-1]
    assert list(drawn.get_ydata()) == [1.0, 0.55] and list(tie.get_ydata()) == [1.0, 0.5]
    assert "largest" in right.get_ylabel()
    effective = gate_benchmarks.fig3_figure(rows).axes[2]
    assert list(effective.lines[0].get_ydata()) == [1, 2]
    with pytest.raises(ValueError, match="right must be"):
        gate_benchmarks.fig3_figure(rows, right="nothing")


def test_saturation_overview_crowd_moves_a_large_group_to_the_legend():
    crowded = SATURATION + [dict(SATURATION[2], variant=f"mixing_{i}") for i in range(3)]
    fig = gate_benchmarks.saturation_overview(crowded, crowd=2)
    left = fig.axes[0]
    labels = sorted(t.get_text().replace("\n", " ") for t in left.texts)
    assert labels == ["A", "cosine_learned", "live, live_z_loss"]
    legend = [t.get_text().replace("\n", " ") for t in left.get_legend().get_texts()]
    assert "A: mixing, mixing_0, mixing_1, mixing_2" in legend
    default = gate_benchmarks.saturation_overview(crowded).axes[0]
    assert "A" not in [t.get_text() for t in default.texts]
