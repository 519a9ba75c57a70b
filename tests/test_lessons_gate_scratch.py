"""Notebook 04's from-scratch gate and head against gsoplib, and the toy whose gating branch can
learn (the release's collapse under the balance loss, GM-SOP Eq. 4).

The from-scratch code is the notebook's (sections 2 and 4): if the library's default gate or its
dispatch changes what it computes, the notebook's equality breaks, and so does this test.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from gsoplib.heads import GatedMixtureHead, NoisyTopKGate, balance_loss
from gsoplib.heads.mixture import top_k_softmax
from gsoplib.toy_mixture import toy_data
from gsoplib.viz import lessons_mixture


def _mixing_gate_eval(f, gate):
    """The notebook's default (mixing) gate in eval: standardise, s cos(f, w_n), top K, softmax."""
    f = (f - gate.norm.running_mean) / (gate.norm.running_var + gate.norm.eps).sqrt()
    logits = gate.logit_scale * F.normalize(f, dim=1) @ F.normalize(gate.w_gate, dim=1).T
    top = logits.topk(gate.k, dim=1)
    weights = torch.zeros_like(logits).scatter(1, top.indices, top.values.softmax(dim=1))
    return weights, top.indices


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
