"""The backward passes of the matrix square root, written out (iSQRT-COV Sec. 3.2; Ionescu et al.).

Three gradients of L(Sigma^(1/2)) with respect to Sigma, given G = dL/d(output):

eigendecomposition  Sigma = U diag(lambda) U^T. Differentiating U^T U = I and Sigma U = U Lambda,
    dU = U (F o (U^T dSigma U)) with F_ij = 1 / (lambda_j - lambda_i) for i != j
    (:func:`eigh_gradient_factors`): infinite for repeated eigenvalues, so eigh's backward is NaN
    there even when the function of Sigma is smooth.
exact root          X = Sigma^(1/2) solves X^2 = Sigma; differentiating, X dX + dX X = dSigma, a
    Sylvester (Lyapunov) equation. In the eigenbasis it is diagonal:
    (U^T dX U)_ij = (U^T dSigma U)_ij / (sqrt(lambda_i) + sqrt(lambda_j)), and the gradient is the
    same map applied to G (:func:`sqrtm_grad_exact`): finite for repeated positive eigenvalues.
Newton-Schulz       reverse mode through T_k = (3I - Z_k Y_k)/2, Y_{k+1} = Y_k T_k,
    Z_{k+1} = T_k Z_k from the last step back (:func:`newton_schulz_grad`), then the chain rule
    through the pre-normalisation A = Sigma / t (t = tr Sigma) and the post-compensation
    sqrt(t) Y_N:
        dL/dSigma = G_A / t + ( <G, Y_N> / (2 sqrt(t)) - <G_A, A> / t ) I,
    with G_A = dL/dA. For the exact root the bracket vanishes (the root is homogeneous of degree
    1/2, so <G_A, A> = <G, sqrt(t) Y> / 2); for a finite N it does not.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .sqrtm import _check_square


def eigh_gradient_factors(evals: torch.Tensor) -> torch.Tensor:
    """F_ij = 1 / (lambda_j - lambda_i) for i != j and 0 on the diagonal: (..., n) -> (..., n, n).

    The factor eigh's backward multiplies the rotated upstream gradient by; inf where two
    eigenvalues are equal.
    """
    diff = evals.unsqueeze(-2) - evals.unsqueeze(-1)
    eye = torch.eye(evals.shape[-1], dtype=torch.bool, device=evals.device)
    return torch.where(eye, torch.zeros_like(diff), 1.0 / diff)


def sqrtm_grad_exact(a: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """dL/dA of the exact square root by the Sylvester equation in the eigenbasis, float64.

    a: (B, n, n) symmetric positive definite, grad: (B, n, n) dL/dA^(1/2) -> (B, n, n). Solves
    A^(1/2) S + S A^(1/2) = grad for S, which is the gradient (module docstring).
    """
    _check_square(a, "sqrtm_grad_exact")
    evals, u = torch.linalg.eigh(a.double())
    root = evals.clamp(min=0).sqrt()
    rotated = u.transpose(-1, -2) @ grad.double() @ u
    return u @ (rotated / (root.unsqueeze(-1) + root.unsqueeze(-2))) @ u.transpose(-1, -2)


class NewtonSchulzGrad(NamedTuple):
    """The hand-written Newton-Schulz backward and its parts, (B, n, n) and (B,)."""

    grad: torch.Tensor  # dL/dSigma
    grad_normalised: torch.Tensor  # G_A = dL/dA for A = Sigma / tr(Sigma)
    trace_coefficient: torch.Tensor  # the bracket multiplying I in dL/dSigma


def newton_schulz_grad(sigma: torch.Tensor, grad: torch.Tensor, iters: int) -> NewtonSchulzGrad:
    """Reverse mode of ``sqrtm_newton_schulz(sigma, iters)`` by hand (module docstring), float64.

    sigma: (B, n, n) symmetric PSD with positive trace, grad: (B, n, n) dL/d(output). It keeps
    every Y_k, Z_k, T_k of the forward, as autograd does; the step for step k is
        G_T = Y_k^T G_Y + G_Z Z_k^T,
        G_Y <- G_Y T_k^T - Z_k^T G_T / 2,
        G_Z <- T_k^T G_Z - G_T Y_k^T / 2.
    """
    _check_square(sigma, "newton_schulz_grad")
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    sigma, grad = sigma.double(), grad.double()
    t = torch.diagonal(sigma, dim1=-2, dim2=-1).sum(-1).view(-1, 1, 1)
    a = sigma / t
    eye = torch.eye(a.shape[-1], dtype=a.dtype)
    ys, zs, ts = [a], [eye.expand_as(a)], []
    for _ in range(iters):
        ts.append(0.5 * (3 * eye - zs[-1] @ ys[-1]))
        ys.append(ys[-1] @ ts[-1])
        zs.append(ts[-1] @ zs[-1])
    g_y, g_z = grad * t.sqrt(), torch.zeros_like(a)
    for y, z, tk in zip(reversed(ys[:-1]), reversed(zs[:-1]), reversed(ts)):
        g_t = y.transpose(-1, -2) @ g_y + g_z @ z.transpose(-1, -2)
        g_y = g_y @ tk.transpose(-1, -2) - 0.5 * z.transpose(-1, -2) @ g_t
        g_z = tk.transpose(-1, -2) @ g_z - 0.5 * g_t @ y.transpose(-1, -2)
    inner = (grad * ys[-1]).sum((-2, -1)) / (2 * t.view(-1).sqrt())
    coefficient = inner - (g_y * a).sum((-2, -1)) / t.view(-1)
    return NewtonSchulzGrad(g_y / t + coefficient.view(-1, 1, 1) * eye, g_y, coefficient)


__all__ = ["NewtonSchulzGrad", "eigh_gradient_factors", "newton_schulz_grad", "sqrtm_grad_exact"]
