"""Matrix square root of covariance matrices (iSQRT-COV meta-layer; GSoP-Net2; GM-SOP Eq. 5-6).

Newton-Schulz (iSQRT-COV, Li et al. CVPR 2018, Eq. 2-4):
    pre-normalisation   A = Sigma / tr(Sigma)            (eigenvalues in (0, 1]: NS converges)
    coupled iteration   T = 0.5 (3I - Z Y);  Y <- Y T;  Z <- T Z;   Y_0 = A, Z_0 = I
    post-compensation   Sigma^(1/2) ~ sqrt(tr(Sigma)) Y_N
The first step is folded (Z_1 = 0.5(3I - A), Y_1 = A Z_1) and the last computes Y only, so N
iterations cost 3N - 3 batched matmuls forward. N is approximate by design: 3 iterations (GSoP-Net2,
GM-SOP) or 5 (iSQRT-COV ImageNet recipes).

Backward: plain autograd through the iteration is the reference (6N - 6 matmuls). The
``memory_efficient`` path saves only Sigma and recomputes the iteration during backward: it keeps
one (B, n, n) tensor instead of 3N (4 for N = 1) plus three (B,) trace vectors
(:mod:`gsoplib.ops.backward_memory` counts them), for one extra forward pass (+33% matmuls).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from ._precision import compute_dtype, no_autocast

DEFAULT_EPS = 1e-5


def _check_square(a: torch.Tensor, name: str) -> None:
    if a.dim() != 3 or a.shape[-1] != a.shape[-2]:
        raise ValueError(
            f"{name} expects a batch of square matrices (B, n, n), got {tuple(a.shape)}"
        )


def _newton_schulz(
    a: torch.Tensor, iters: int, eps: float, matmul_dtype: torch.dtype | None
) -> torch.Tensor:
    """Trace-normalised coupled Newton-Schulz on (B, n, n); differentiable plain torch.

    T = 0.5 (3I - Z Y) is one ``baddbmm`` (1.5 I - 0.5 Z Y): one kernel instead of a product,
    a subtraction and a scaling. With ``matmul_dtype`` the iteration runs in that dtype while the
    trace, its clamp and the post-compensation stay in ``a``'s dtype.
    """
    b, n, _ = a.shape
    trace = torch.diagonal(a, dim1=-2, dim2=-1).sum(-1).clamp(min=eps).view(b, 1, 1)
    out_dtype = a.dtype
    a = (a / trace).to(matmul_dtype or out_dtype)
    eye15 = torch.eye(n, device=a.device, dtype=a.dtype).mul_(1.5)
    z = eye15 - 0.5 * a
    y = a.bmm(z)
    if iters >= 2:
        for _ in range(iters - 2):
            t = torch.baddbmm(eye15, z, y, alpha=-0.5)
            y, z = y.bmm(t), t.bmm(z)
        y = y.bmm(torch.baddbmm(eye15, z, y, alpha=-0.5))
    return y.to(out_dtype) * trace.sqrt()


class _NewtonSchulzRecompute(torch.autograd.Function):
    """Newton-Schulz that saves only its input and recomputes the iteration in backward."""

    @staticmethod
    def forward(ctx, a, iters, eps, matmul_dtype):
        ctx.save_for_backward(a)
        ctx.iters, ctx.eps, ctx.matmul_dtype = iters, eps, matmul_dtype
        return _newton_schulz(a, iters, eps, matmul_dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        (a,) = ctx.saved_tensors
        with torch.enable_grad(), no_autocast(a.device):
            leaf = a.detach().requires_grad_(True)
            y = _newton_schulz(leaf, ctx.iters, ctx.eps, ctx.matmul_dtype)
            (grad_a,) = torch.autograd.grad(y, leaf, grad_out.to(y.dtype))
        return grad_a, None, None, None


def sqrtm_newton_schulz(
    a: torch.Tensor,
    iters: int = 5,
    eps: float = DEFAULT_EPS,
    memory_efficient: bool = False,
    matmul_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Approximate square root of symmetric positive semi-definite matrices by Newton-Schulz.

    Args:
        a: (B, n, n) symmetric PSD matrices (covariances).
        iters: N, the number of coupled iterations (>= 1). Relative error against the exact
            root falls with N; see ``tests/test_ops_sqrtm.py`` for measured values.
        eps: the trace is clamped to >= eps, so an all-zero matrix (dead ReLU channels) gives
            a zero root with finite gradients instead of NaN.
        memory_efficient: save only ``a`` for backward and recompute the iteration there.
        matmul_dtype: opt-in lower precision for the iteration's matmuls (``torch.bfloat16``);
            the trace normalisation stays in float32. Its error against float64 is measured in
            ``tests/test_ops_sqrtm.py``; the default (None) keeps float32.

    Returns:
        (B, n, n) ~ a^(1/2), float32 (float64 if ``a`` is float64), autocast disabled.
    """
    _check_square(a, "sqrtm_newton_schulz")
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    with no_autocast(a.device):
        a = a.to(compute_dtype(a.dtype))
        if memory_efficient:
            return _NewtonSchulzRecompute.apply(a, iters, eps, matmul_dtype)
        return _newton_schulz(a, iters, eps, matmul_dtype)


def sqrtm_eigh(a: torch.Tensor) -> torch.Tensor:
    """Exact square root U diag(sqrt(max(lambda, 0))) U^T of symmetric (B, n, n) matrices.

    The reference for Newton-Schulz. Its backward is NaN or wrong for repeated eigenvalues and
    batched eigh is slow on GPUs: use it to check, not to train.
    """
    _check_square(a, "sqrtm_eigh")
    with no_autocast(a.device):
        a = a.to(compute_dtype(a.dtype))
        evals, evecs = torch.linalg.eigh(a)
        return (evecs * evals.clamp(min=0).sqrt().unsqueeze(-2)) @ evecs.transpose(-1, -2)


def newton_schulz_errors(a: torch.Tensor, max_iters: int = 10) -> torch.Tensor:
    """Relative Frobenius error ||Y_N - a^(1/2)|| / ||a^(1/2)|| for N = 1..max_iters.

    Computed in float64 against :func:`sqrtm_eigh`. a: (B, n, n) -> (max_iters, B).
    """
    _check_square(a, "newton_schulz_errors")
    a = a.detach().to(torch.float64)
    exact = sqrtm_eigh(a)
    norm = torch.linalg.matrix_norm(exact).clamp(min=torch.finfo(torch.float64).tiny)
    errors = [
        torch.linalg.matrix_norm(sqrtm_newton_schulz(a, iters=n) - exact) / norm
        for n in range(1, max_iters + 1)
    ]
    return torch.stack(errors)
