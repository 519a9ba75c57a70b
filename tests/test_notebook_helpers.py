"""The helpers the notebooks call instead of code of their own: saved_tensor_bytes,
count_parameters, linear_probe, and newton_schulz_convergence's labels and marks."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from gsoplib import viz
from gsoplib.models import count_parameters, create_model
from gsoplib.ops import covariance, newton_schulz_errors, saved_tensor_bytes, sqrtm_newton_schulz
from gsoplib.train import LinearProbeResult, linear_probe

matplotlib.use("Agg")
BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _spd(batch: int, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return covariance(torch.randn(batch, n, 3 * n, generator=g))


# saved_tensor_bytes ----------------------------------------------------------------------------


def test_saved_tensor_bytes_counts_a_storage_once_or_every_saved_tensor():
    x = torch.randn(5, 7, requires_grad=True)
    nbytes = 5 * 7 * 4
    # x * x saves x twice (as self and as other): one buffer, two saved tensors.
    assert saved_tensor_bytes(lambda: x * x) == nbytes
    assert saved_tensor_bytes(lambda: x * x, unique_storages=False) == 2 * nbytes
    # A view shares its base's storage: counted at the storage's full size, once.
    assert saved_tensor_bytes(lambda: x[0] * x) == nbytes
    assert saved_tensor_bytes(lambda: x[0] * x, unique_storages=False) == nbytes + 7 * 4


def test_saved_tensor_bytes_is_zero_without_grad_and_counts_custom_functions():
    x = torch.randn(2, 4, 9)
    assert saved_tensor_bytes(lambda: covariance(x)) == 0
    leaf = x.clone().requires_grad_(True)
    # gsoplib's covariance backward saves only its input X (notebook 01).
    assert saved_tensor_bytes(lambda: covariance(leaf)) == leaf.numel() * 4


def test_memory_efficient_newton_schulz_saves_only_its_input_and_autograd_grows_with_iters():
    leaf = _spd(4, 16).requires_grad_(True)
    one = leaf.numel() * 4
    efficient = [saved_tensor_bytes(lambda n=n: sqrtm_newton_schulz(leaf, iters=n,
                                                                    memory_efficient=True))
                 for n in (3, 5)]
    autograd = [saved_tensor_bytes(lambda n=n: sqrtm_newton_schulz(leaf, iters=n)) for n in (3, 5)]
    assert efficient == [one, one]
    assert one < autograd[0] < autograd[1]


def _harness_before(fn) -> int:
    """benchmarks/harness.py's saved_tensor_bytes as it was written before it called gsoplib."""
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total[0]


def test_benchmark_harness_numbers_are_unchanged():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import harness
    finally:
        sys.path.remove(str(BENCHMARKS))
    leaf = _spd(4, 16).requires_grad_(True)
    torch.manual_seed(0)
    model = create_model("small_gsop1", num_classes=10, in_chans=1)
    x = torch.randn(2, 1, 28, 28)
    for fn in (lambda: sqrtm_newton_schulz(leaf, iters=5), lambda: model(x)):
        assert harness.saved_tensor_bytes(fn) == _harness_before(fn) > 0


# count_parameters ------------------------------------------------------------------------------


def test_count_parameters_counts_shared_once_skips_buffers_and_frozen_on_request():
    linear = nn.Linear(3, 4)
    assert count_parameters(linear) == 3 * 4 + 4
    assert count_parameters(nn.BatchNorm2d(6)) == 12          # weight and bias; no running stats
    shared = nn.Sequential(linear, nn.ReLU(), linear)
    assert count_parameters(shared) == 16
    frozen = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    frozen[0].requires_grad_(False)
    assert count_parameters(frozen) == 16 + 10
    assert count_parameters(frozen, trainable_only=True) == 10


# linear_probe ----------------------------------------------------------------------------------


def _blobs(n: int, seed: int, shift: float = 5.0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    centres = torch.tensor([[0.0, 0.0], [shift, 0.0], [0.0, shift]])
    return centres[labels] + torch.randn(n, 2, generator=g), labels


def test_linear_probe_separates_blobs_and_is_at_chance_on_noise():
    train_x, train_y = _blobs(300, 0)
    test_x, test_y = _blobs(150, 1)
    result = linear_probe(train_x, train_y, test_x, test_y, steps=200)
    assert isinstance(result, LinearProbeResult) and result.num_classes == 3
    assert result.train_accuracy > 0.95 and result.test_accuracy > 0.95
    g = torch.Generator().manual_seed(2)
    noise = linear_probe(torch.randn(300, 2, generator=g), train_y,
                         torch.randn(600, 2, generator=g), torch.arange(600) % 3, steps=200)
    assert noise.test_accuracy < 0.5                           # chance is 1/3


def test_linear_probe_is_deterministic_and_leaves_the_global_random_state_alone():
    train_x, train_y = _blobs(120, 3, shift=1.0)
    test_x, test_y = _blobs(60, 4, shift=1.0)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = linear_probe(train_x, train_y, test_x, test_y, steps=50, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    assert linear_probe(train_x, train_y, test_x, test_y, steps=50, seed=7) == first
    assert linear_probe(train_x, train_y, test_x, test_y, steps=50, num_classes=5).num_classes == 5


def test_linear_probe_rejects_mismatched_inputs():
    x, y = _blobs(30, 0)
    with pytest.raises(ValueError):
        linear_probe(x, y, x[:, :1], y)
    with pytest.raises(ValueError):
        linear_probe(x, y[:-1], x, y)
    with pytest.raises(ValueError):
        linear_probe(x.view(30, 2, 1), y, x, y)


# viz.newton_schulz_convergence: labels and several marks ----------------------------------------


def test_newton_schulz_convergence_labels_one_line_per_matrix_and_marks_several_counts():
    m = _spd(3, 8).double()
    names = ["a", "b", "c"]
    fig = viz.newton_schulz_convergence(m, max_iters=6, used=(3, 5), labels=names)
    assert isinstance(fig, Figure)
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    errors = newton_schulz_errors(m, max_iters=6).numpy()
    for j, name in enumerate(names):
        np.testing.assert_allclose(lines[name].get_ydata(), errors[:, j])
    assert lines["N = 3"].get_xdata()[0] == 3 and lines["N = 5"].get_xdata()[0] == 5
    assert not any(label.startswith("median") for label in lines)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == names + ["N = 3", "N = 5"]


def test_newton_schulz_convergence_default_is_unchanged_and_labels_must_match():
    m = _spd(3, 8).double()
    fig = viz.newton_schulz_convergence(m, max_iters=6, used=4)
    labelled = [line.get_label() for line in fig.axes[0].lines
                if not line.get_label().startswith("_")]
    assert labelled == ["median of 3", "N = 4"]
    with pytest.raises(ValueError):
        viz.newton_schulz_convergence(m, labels=["only one"])
