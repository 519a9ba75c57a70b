"""Newton-Schulz square root against the exact eigh root (iSQRT-COV Eq. 2-4)."""

import pytest
import torch
from conftest import spd_batch

from gsoplib.ops import (
    covariance,
    newton_schulz_errors,
    sqrtm_eigh,
    sqrtm_newton_schulz,
    triu_vec,
)


def paper_newton_schulz(a: torch.Tensor, iters: int) -> torch.Tensor:
    """iSQRT-COV Eq. 2-4 literally: Y0 = A/tr, Z0 = I, T = 0.5(3I - ZY), Y <- YT, Z <- TZ."""
    trace = torch.diagonal(a, dim1=-2, dim2=-1).sum(-1).view(-1, 1, 1)
    y, z = a / trace, torch.eye(a.shape[-1], dtype=a.dtype).expand_as(a)
    for _ in range(iters):
        t = 0.5 * (3 * torch.eye(a.shape[-1], dtype=a.dtype) - z @ y)
        y, z = y @ t, t @ z
    return y * trace.sqrt()


@pytest.mark.parametrize("iters", [1, 2, 3, 5, 8])
def test_folded_newton_schulz_equals_the_papers_iteration(iters):
    a = spd_batch(3, 10, condition=50.0)
    torch.testing.assert_close(sqrtm_newton_schulz(a, iters=iters), paper_newton_schulz(a, iters))


def spectra() -> dict[str, torch.Tensor]:
    """Covariances of 64 variables whose spectra a network can produce."""
    torch.manual_seed(0)
    feats = torch.randn(8, 64, 4096, dtype=torch.float64)
    power_law = torch.arange(1, 65, dtype=torch.float64).pow(-1.0).sqrt().view(1, 64, 1)
    return {
        "well-conditioned (white features, cond ~1.6)": covariance(feats),
        "power-law (lambda_i ~ 1/i, cond ~64)": covariance(feats * power_law),
        "ill-conditioned (cond ~1e6)": covariance(
            feats * torch.logspace(0, -3, 64, dtype=torch.float64).view(1, 64, 1)
        ),
    }


@pytest.mark.parametrize("name", list(spectra()))
def test_newton_schulz_error_falls_monotonically_with_iterations(name, capsys):
    errors = newton_schulz_errors(spectra()[name], max_iters=12).mean(dim=1)
    assert torch.all(errors[1:] < errors[:-1]), errors
    with capsys.disabled():
        print(f"\n  NS relative error, {name}: N=3 {errors[2]:.3f}, N=5 {errors[4]:.3f}")


def test_newton_schulz_converges_to_the_exact_root():
    a = spd_batch(4, 16, condition=10.0)
    torch.testing.assert_close(
        sqrtm_newton_schulz(a, iters=30), sqrtm_eigh(a), atol=1e-10, rtol=1e-8
    )
    root = sqrtm_eigh(a)
    torch.testing.assert_close(root @ root, a)


def test_trace_post_compensation_makes_the_root_scale_correctly():
    a = spd_batch(2, 8, condition=4.0)
    torch.testing.assert_close(
        sqrtm_newton_schulz(100.0 * a, iters=25), 10.0 * sqrtm_newton_schulz(a, iters=25)
    )


@pytest.mark.parametrize("memory_efficient", [False, True])
@pytest.mark.parametrize("iters", [1, 2, 3, 5])
def test_newton_schulz_gradcheck(iters, memory_efficient):
    a = spd_batch(2, 5, condition=20.0).requires_grad_(True)
    fn = lambda m: sqrtm_newton_schulz(m, iters=iters, memory_efficient=memory_efficient)
    assert torch.autograd.gradcheck(fn, (a,))


def test_memory_efficient_backward_equals_autograd_backward_for_any_upstream_gradient():
    a = spd_batch(3, 12, condition=100.0)
    upstream = torch.randn(3, 12, 12, dtype=torch.float64)  # not symmetric on purpose
    grads = []
    for memory_efficient in (False, True):
        leaf = a.clone().requires_grad_(True)
        (
            sqrtm_newton_schulz(leaf, iters=5, memory_efficient=memory_efficient) * upstream
        ).sum().backward()
        grads.append(leaf.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_memory_efficient_path_saves_only_its_input():
    a = spd_batch(4, 32, condition=10.0).float().requires_grad_(True)

    def saved_bytes(memory_efficient: bool) -> int:
        total = []
        hooks = (lambda t: total.append(t.numel() * t.element_size()) or t, lambda t: t)
        with torch.autograd.graph.saved_tensors_hooks(*hooks):
            sqrtm_newton_schulz(a, iters=5, memory_efficient=memory_efficient)
        return sum(total)

    assert saved_bytes(True) == a.numel() * a.element_size()
    assert saved_bytes(False) >= 5 * saved_bytes(True)


def test_newton_schulz_gradient_approaches_the_eigh_gradient():
    a = spd_batch(2, 6, condition=5.0)
    upstream = torch.randn(2, 6, 6, dtype=torch.float64)
    upstream = upstream + upstream.transpose(1, 2)
    grads = []
    for fn in (lambda m: sqrtm_newton_schulz(m, iters=30), sqrtm_eigh):
        leaf = a.clone().requires_grad_(True)
        (fn(leaf) * upstream).sum().backward()
        grads.append(leaf.grad)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("memory_efficient", [False, True])
def test_dead_channels_and_zero_input_stay_finite(memory_efficient):
    x = torch.randn(3, 16, 7, 7)
    x[0] = 0.0  # an all-zero sample: zero covariance, zero trace
    x[1, :5] = 0.0  # dead ReLU channels: zero rows and columns
    x.requires_grad_(True)
    out = triu_vec(sqrtm_newton_schulz(covariance(x), iters=3, memory_efficient=memory_efficient))
    out.square().sum().backward()
    assert torch.isfinite(out).all()
    assert torch.isfinite(x.grad).all()
    assert out[0].abs().max() == 0


def test_bf16_autocast_input_gives_finite_float32_result():
    conv = torch.nn.Conv2d(3, 32, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats = conv(torch.randn(2, 3, 16, 16))
        assert feats.dtype == torch.bfloat16
        root = sqrtm_newton_schulz(covariance(feats), iters=5)
    assert root.dtype == torch.float32
    assert torch.isfinite(root).all()
    # bf16 features enter the float32 island unchanged: the result equals the float32 path.
    torch.testing.assert_close(root, sqrtm_newton_schulz(covariance(feats.float()), iters=5))


def test_bf16_iteration_error_against_float64_on_real_covariances(capsys):
    feats = torch.relu(torch.nn.Conv2d(3, 64, 3)(torch.randn(16, 3, 30, 30))).detach()
    cov = covariance(feats)
    exact = sqrtm_newton_schulz(cov.double(), iters=5)
    err = {}
    for name, dtype in (("float32", None), ("bfloat16", torch.bfloat16)):
        root = sqrtm_newton_schulz(cov, iters=5, matmul_dtype=dtype)
        assert root.dtype == torch.float32
        err[name] = ((root.double() - exact).norm() / exact.norm()).item()
    # bf16 keeps 8 significant bits: its rounding error is far above float32's, far below NS's own.
    assert err["float32"] < 1e-5 < err["bfloat16"] < 5e-2
    with capsys.disabled():
        print(f"\n  NS N=5 vs float64: float32 {err['float32']:.1e}, bf16 {err['bfloat16']:.1e}")


def test_bad_arguments_are_one_clear_error():
    with pytest.raises(ValueError, match="square matrices"):
        sqrtm_newton_schulz(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="iters must be >= 1"):
        sqrtm_newton_schulz(torch.eye(3).expand(1, 3, 3), iters=0)
