"""The math behind notebooks 02-03's lessons and widgets, against references (issue 15).

Scalar Newton-Schulz map and its regimes, the plain Newton iteration's instability, y_N against
the matrix iteration, the hand-written backwards against autograd, the backward memory and
matmul accounting against measurements, the covariance normalisations, and every widget
callback of notebook 02 run with changed knobs.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from gsoplib.ops import covariance, saved_tensor_bytes, sqrtm_eigh, sqrtm_newton_schulz
from gsoplib.ops.backward_memory import (
    PAPER_SCALES,
    count_batched_matmuls,
    newton_schulz_backward_cost,
    newton_schulz_matmuls,
    newton_schulz_saved_bytes,
)
from gsoplib.ops.iterations import (
    denman_beavers_sqrtm,
    example_spectrum,
    iterations_to_tolerance,
    newton_schulz_polynomial,
    newton_schulz_prenormalised,
    ns_scalar_map,
    ns_scalar_orbit,
    ns_scalar_regime,
    plain_newton_sqrtm,
    relative_errors,
)
from gsoplib.ops.normalisations import logm_eigh, normalise_covariance, power_euclidean
from gsoplib.ops.sqrtm_grad import eigh_gradient_factors, newton_schulz_grad, sqrtm_grad_exact
from gsoplib.viz import newton


def test_scalar_map_fixed_points_and_regimes():
    for p in (0.0, 1.0, 5.0):
        assert ns_scalar_map(p) == pytest.approx(p)
    assert ns_scalar_map(3.0) == 0.0
    expected = {0.01: "converges to +sqrt", 1.0: "converges to +sqrt", 2.9: "converges to +sqrt",
                3.0: "stalls at 0", 3.5: "converges to -sqrt", 4.0: "converges to -sqrt",
                4.9: "converges to +sqrt", 5.0: "fixed at 5", 5.1: "diverges", 6.0: "diverges"}
    for lam, regime in expected.items():
        assert ns_scalar_regime(lam) == regime, lam
    ys, ps = ns_scalar_orbit(0.3, 30)
    assert ys[-1] == pytest.approx(math.sqrt(0.3)) and ps[-1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="lam must be >= 0"):
        ns_scalar_regime(-1.0)


def test_sign_flips_once_per_step_above_three():
    for lam in (3.5, 4.0, 4.9):
        ys, ps = ns_scalar_orbit(lam, 60)
        flips = sum(p > 3 for p in ps[:-1])
        assert math.copysign(1, ys[-1]) == (-1) ** flips
        assert abs(ys[-1]) == pytest.approx(math.sqrt(lam))


def test_polynomial_equals_matrix_iteration_on_diagonal_matrices():
    lam = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    for n in (1, 2, 3, 7):
        lib = sqrtm_newton_schulz(torch.diag(lam).unsqueeze(0), iters=n)[0]
        assert torch.allclose(torch.diagonal(lib), newton_schulz_polynomial(lam, n))
    small = torch.tensor([1e-3], dtype=torch.float64)
    assert newton_schulz_polynomial(small, 3).item() == pytest.approx(1.5**3 * 1e-3, rel=0.01)
    assert newton_schulz_polynomial(small, 3).item() / math.sqrt(1e-3) < 0.12


def test_plain_newton_is_unstable_and_coupled_forms_are_not():
    for cond, worst in ((1e2, 1.0), (1e4, 1e6)):
        a, _ = example_spectrum(32, cond)
        plain = relative_errors(plain_newton_sqrtm(a, 30), a)[:, 0]
        db = relative_errors(denman_beavers_sqrtm(a, 30), a)[:, 0]
        assert plain.min() < 1e-5, "it converges first"
        assert plain[-1] > worst, "then round-off grows"
        assert db[-1] < 1e-12


def test_prenormalisation_options():
    a, lam = example_spectrum(16, 1e3)
    assert torch.allclose(newton_schulz_prenormalised(a, 3), sqrtm_newton_schulz(a, iters=3))
    assert lam.sum() == pytest.approx(16) and lam.max() / lam.min() == pytest.approx(1e3)
    for norm in ("trace", "frobenius"):
        assert relative_errors(newton_schulz_prenormalised(a, 25, norm)[None], a)[0, 0] < 1e-8
    assert not torch.isfinite(newton_schulz_prenormalised(a, 25, "none")).all(), \
        "trace n = 16: the top eigenvalue is above 5 and diverges"
    with pytest.raises(ValueError, match="prenormalisation"):
        newton_schulz_prenormalised(a, 3, "max")
    errors = torch.tensor([[0.5, 0.5], [1e-2, 0.4], [1e-4, 0.3]])
    assert iterations_to_tolerance(errors, 1e-3).tolist() == [3, 0]


def test_eigh_factors_and_exact_gradient():
    f = eigh_gradient_factors(torch.tensor([1.0, 1.0, 2.0]))
    assert torch.isinf(f[0, 1]) and f[0, 2] == 1.0 and f[2, 0] == -1.0 and f[0, 0] == 0
    s = covariance(torch.randn(3, 6, 20, dtype=torch.float64)).requires_grad_(True)
    g = torch.randn(3, 6, 6, dtype=torch.float64)
    g = g + g.mT
    (by_eigh,) = torch.autograd.grad((sqrtm_eigh(s) * g).sum(), s)
    exact = sqrtm_grad_exact(s.detach(), g)
    assert torch.allclose(exact, by_eigh, atol=1e-10)
    # finite where eigh's backward is NaN: repeated eigenvalues
    rep = torch.diag(torch.tensor([1.0, 1.0, 2.0], dtype=torch.float64)).unsqueeze(0)
    assert torch.isfinite(sqrtm_grad_exact(rep, torch.ones(1, 3, 3, dtype=torch.float64))).all()


@pytest.mark.parametrize("iters", [1, 3, 5])
def test_hand_written_newton_schulz_backward_equals_autograd(iters):
    s = covariance(torch.randn(3, 6, 20, dtype=torch.float64)).requires_grad_(True)
    g = torch.randn(3, 6, 6, dtype=torch.float64)
    (auto,) = torch.autograd.grad((sqrtm_newton_schulz(s, iters=iters) * g).sum(), s)
    hand = newton_schulz_grad(s.detach(), g, iters)
    assert torch.allclose(hand.grad, auto, atol=1e-12)
    assert hand.trace_coefficient.abs().max() > 1e-3, "a finite N leaves a trace term"
    converged = newton_schulz_grad(s.detach(), g, 40)
    assert converged.trace_coefficient.abs().max() < 1e-8, "the exact root's trace term vanishes"
    assert torch.allclose(converged.grad, sqrtm_grad_exact(s.detach(), g), atol=1e-8)


@pytest.mark.parametrize("iters", [1, 2, 3, 5])
@pytest.mark.parametrize("efficient", [False, True])
def test_backward_accounting_matches_measurements(iters, efficient):
    leaf = covariance(torch.randn(4, 8, 30)).requires_grad_(True)
    forward = partial(sqrtm_newton_schulz, leaf, iters=iters, memory_efficient=efficient)
    assert saved_tensor_bytes(forward) == newton_schulz_saved_bytes(4, 8, iters, efficient)
    assert count_batched_matmuls(forward) == newton_schulz_matmuls(iters, efficient)


def test_paper_scale_numbers():
    batch, n, iters = PAPER_SCALES["GSoP-Net2 head: batch 160, 256 x 256, N = 3"]
    auto = newton_schulz_backward_cost(batch, n, iters)
    lean = newton_schulz_backward_cost(batch, n, iters, memory_efficient=True)
    assert auto.saved_bytes == 160 * (9 * 256 * 256 + 3) * 4  # about 377 MB
    assert lean.saved_bytes == 160 * 256 * 256 * 4  # about 42 MB
    assert auto.forward_matmuls + auto.backward_matmuls == 18
    assert lean.forward_matmuls + lean.backward_matmuls == 24


def test_normalisations():
    cov = covariance(torch.randn(2, 5, 40, dtype=torch.float64))
    assert torch.allclose(torch.linalg.matrix_exp(logm_eigh(cov)), cov, atol=1e-8)
    near_log = power_euclidean(cov, 1e-4)
    assert torch.allclose(near_log, logm_eigh(cov), atol=1e-3)
    far = (power_euclidean(cov, 0.1) - logm_eigh(cov)).abs().max()
    assert far > (near_log - logm_eigh(cov)).abs().max()
    vec = normalise_covariance(cov, "signed_sqrt")
    assert vec.shape == (2, 15)
    exact = normalise_covariance(cov, "eigh_sqrt")
    assert torch.allclose(exact, normalise_covariance(cov, "ns_sqrt", iters=30), atol=1e-8)
    with pytest.raises(ValueError, match="kind must be one of"):
        normalise_covariance(cov, "sqrt")


def _titles(fig: Figure) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


def test_cobweb_widget_follows_lambda():
    titles = {lam: _titles(newton.cobweb(lam=lam))[0] for lam in (2.5, 3.0, 3.5, 6.0)}
    assert titles == {2.5: "lambda = 2.5: converges to +sqrt", 3.0: "lambda = 3: stalls at 0",
                      3.5: "lambda = 3.5: converges to -sqrt", 6.0: "lambda = 6: diverges"}
    short, long = newton.cobweb(lam=0.1, steps=2), newton.cobweb(lam=0.1, steps=20)
    assert len(short.axes[1].lines[0].get_xdata()) == 3
    assert len(long.axes[1].lines[0].get_xdata()) == 21


def test_ns_explorer_widget_follows_its_knobs():
    base = newton.ns_explorer_summary()
    assert base["error"] > 0.2 and base["iterations_to_tol"] == 14
    assert newton.ns_explorer_summary(iters=8)["error"] < base["error"]
    better = newton.ns_explorer_summary(condition=1e2)
    assert better["iterations_to_tol"] < base["iterations_to_tol"]
    assert newton.ns_explorer_summary(decay=0.3)["error"] != base["error"]
    assert newton.ns_explorer_summary(n=64)["scaled_eigenvalues"].shape == (64,)
    assert newton.ns_explorer_summary(prenormalisation="none")["iterations_to_tol"] == 0
    assert newton.ns_explorer_summary(prenormalisation="frobenius")["iterations_to_tol"] > 0
    assert newton.ns_explorer_summary(tol=1e-1)["iterations_to_tol"] < base["iterations_to_tol"]
    assert _titles(newton.ns_explorer())[0] == "trace: below tol at N = 14"
    assert _titles(newton.ns_explorer(prenormalisation="none"))[0] == "none: not below tol in 20"


def test_memory_widget_follows_its_knobs():
    three, five = newton.backward_memory(160, 256, 3), newton.backward_memory(160, 256, 5)
    assert _titles(three)[0] == "batch 160, 256 x 256, N = 3: 9x less"
    assert _titles(five)[0] == "batch 160, 256 x 256, N = 5: 15x less"
    big = newton.backward_memory(320, 256, 3)
    width = three.axes[0].patches[0].get_width()
    assert big.axes[0].patches[0].get_width() == pytest.approx(2 * width)
    assert _titles(three)[1] == "+33% matmuls"


def test_static_figures_draw():
    ratios = [line for line in newton.eigenvalue_maps(max_iters=10).axes[1].lines
              if len(line.get_xdata()) > 2]
    assert len(ratios) == 10  # y_N / sqrt(lambda) for N = 1..10
    lam, n3 = np.asarray(ratios[2].get_xdata()), np.asarray(ratios[2].get_ydata())
    # N = 3 on a small eigenvalue is ~(3/2)^3 lambda, not a root: 0.11 at lambda = 1e-3
    assert np.interp(-3, np.log10(lam), n3) == pytest.approx(1.5**3 * 1e-3 / 1e-3**0.5, rel=0.05)
    assert ratios[-1].get_ydata()[-1] == pytest.approx(1.0, abs=1e-9)  # lambda = 1 is exact
    assert len(newton.newton_instability(conditions=(1e2,), iters=5).axes[0].lines) == 3


def test_a_diverged_iterate_has_infinite_error():
    a, lam = example_spectrum(32, 1e4)
    assert lam.max() > 5
    errors = relative_errors(newton_schulz_prenormalised(a, 30, "none")[None], a)
    assert errors.item() == math.inf


def test_eigenvalues_in_three_to_five_give_a_non_principal_root():
    a, lam = example_spectrum(8, 1e2)
    assert 3 < lam.max() < 5
    y = newton_schulz_prenormalised(a, 40, "none")
    assert torch.allclose(y @ y, a, atol=1e-8), "a square root"
    assert relative_errors(y[None], a).item() > 0.5, "not the principal one"


def test_example_spectrum_scale_and_bad_input():
    _, lam = example_spectrum(32, 1e4)
    assert torch.isclose(lam.sum(), torch.tensor(32.0, dtype=torch.float64))
    assert lam.max() > 1, "trace n: the largest eigenvalue is above 1"
    assert math.isclose((lam.max() / lam.min()).item(), 1e4, rel_tol=1e-9)
    with pytest.raises(ValueError, match="example_spectrum needs n >= 2"):
        example_spectrum(1, 10.0)
