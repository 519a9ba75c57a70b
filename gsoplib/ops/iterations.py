"""The iterations behind the Newton-Schulz square root, for teaching and checking it.

Newton's method for X^2 = A (iSQRT-COV Sec. 3; Higham, "Functions of Matrices", ch. 6):
    plain           X_{k+1} = (X_k + X_k^{-1} A) / 2,  X_0 = I
    Denman-Beavers  Y_{k+1} = (Y_k + Z_k^{-1}) / 2,  Z_{k+1} = (Z_k + Y_k^{-1}) / 2,
                    Y_0 = A, Z_0 = I
    Newton-Schulz   T_k = (3I - Z_k Y_k) / 2,  Y_{k+1} = Y_k T_k,  Z_{k+1} = T_k Z_k
The plain form is unstable in floating point (round-off in X_k's non-commuting part is amplified
when A is ill conditioned); the coupled forms are not. Every iterate of the Newton-Schulz form is a
polynomial in A, so on an eigenvalue lambda it is the scalar iteration from y_0 = lambda, z_0 = 1,
whose product p = z y follows the map p <- p (3 - p)^2 / 4 (:func:`ns_scalar_map`).

Fixed points of that map: 0 and 5 (repelling at 5) and 1 (attracting, superattracting: f'(1) = 0).
From p_0 = lambda:
    lambda in (0, 3)    p_k -> 1 and y_k -> +sqrt(lambda)      (the principal root)
    lambda = 3          p_1 = 0: stalls at y = 0
    lambda in (3, 5)    p_1 = lambda (lambda - 3)^2 / 4 lies in (0, 5) below lambda: the orbit falls
                        into (0, 3) (except on the preimages of 3) and converges, but t_0 < 0 flips
                        the sign once per step spent above 3: y_k -> -sqrt(lambda) or +sqrt(lambda)
    lambda = 5          fixed: y stays at +-sqrt(5 lambda)
    lambda > 5          p_k grows without bound: diverges
The sufficient condition iSQRT-COV quotes from Higham, ||I - A|| < 1, is lambda in (0, 2) for a
symmetric A; trace pre-normalisation A = Sigma / tr(Sigma) puts every eigenvalue in [0, 1].
"""

from __future__ import annotations

import math

import torch

from ._precision import no_autocast
from .sqrtm import sqrtm_eigh

PRENORMALISATIONS = ("trace", "frobenius", "none")


def ns_scalar_map(p: torch.Tensor | float) -> torch.Tensor | float:
    """One step of p = z y under the scalar Newton-Schulz iteration: p (3 - p)^2 / 4."""
    return p * (3 - p) ** 2 / 4


def ns_scalar_orbit(lam: float, steps: int) -> tuple[list[float], list[float]]:
    """The scalar coupled iteration from y_0 = lam, z_0 = 1, in Python floats (float64).

    Returns (y, p): lists of steps + 1 values y_k and p_k = z_k y_k, k = 0..steps. An overflow
    stops at inf (the orbit diverged) and repeats it.
    """
    y, z = float(lam), 1.0
    ys, ps = [y], [z * y]
    for _ in range(steps):
        if math.isfinite(y) and abs(y) < 1e150:
            t = 0.5 * (3.0 - z * y)
            y, z = y * t, t * z
        else:
            y, z = math.inf, math.inf
        ys.append(y)
        ps.append(z * y if math.isfinite(y) else math.inf)
    return ys, ps


def ns_scalar_regime(lam: float, steps: int = 200) -> str:
    """Where the scalar iteration from lambda = lam ends (module docstring):

    'converges to +sqrt', 'converges to -sqrt', 'stalls at 0', 'fixed at 5', 'diverges'.
    """
    if lam < 0:
        raise ValueError(f"lam must be >= 0 (an eigenvalue of a PSD matrix), got {lam}")
    ys, ps = ns_scalar_orbit(lam, steps)
    y, p = ys[-1], ps[-1]
    if not math.isfinite(p):
        return "diverges"
    if p == 0.0:
        return "stalls at 0"
    if math.isclose(p, 5.0, rel_tol=1e-9):
        return "fixed at 5"
    if math.isclose(p, 1.0, rel_tol=1e-9):
        return "converges to +sqrt" if y > 0 else "converges to -sqrt"
    raise RuntimeError(f"the orbit from {lam} has not settled after {steps} steps (p = {p})")


def newton_schulz_polynomial(lam: torch.Tensor, iters: int) -> torch.Tensor:
    """y_N(lambda): what N Newton-Schulz iterations make of a trace-normalised eigenvalue.

    Elementwise on ``lam`` (any shape); equals the eigenvalues of ``sqrtm_newton_schulz(A, N)``
    for a trace-1 A. For small lambda every factor t_k is about 3/2, so y_N ~ (3/2)^N lambda:
    linear in lambda, not its square root.
    """
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    y, z = lam.clone(), torch.ones_like(lam)
    for _ in range(iters):
        t = 0.5 * (3 - z * y)
        y, z = y * t, t * z
    return y


def plain_newton_sqrtm(a: torch.Tensor, iters: int) -> torch.Tensor:
    """Iterates X_1..X_N of the uncoupled Newton iteration X_{k+1} = (X_k + X_k^{-1} A) / 2.

    a: (B, n, n) symmetric positive definite -> (N, B, n, n), in a's dtype (autocast off
    inside). X_k^{-1} A is a linear solve, as a careful implementation would do it: the
    instability is the iteration's, not the inverse's.
    """
    x = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device).expand_as(a).clone()
    out = []
    with no_autocast(a.device):
        for _ in range(iters):
            x = 0.5 * (x + torch.linalg.solve(x, a))
            out.append(x)
    return torch.stack(out)


def plain_newton_amplification(evals: torch.Tensor) -> torch.Tensor:
    """How much one plain Newton step amplifies a perturbation of the converged X = A^(1/2).

    Linearising X_{k+1} = (X_k + X_k^{-1} A) / 2 at X = A^(1/2), a perturbation E becomes
    (E - A^(-1/2) E A^(1/2)) / 2; in A's eigenbasis entry (i, j) is multiplied by
    (1 - sqrt(lambda_j / lambda_i)) / 2. Returns the largest modulus over all pairs,
    (sqrt(kappa) - 1) / 2 for condition number kappa: above 1 (unstable) once kappa > 9.
    evals: (..., n) positive -> (...).
    """
    ratio = (evals.unsqueeze(-2) / evals.unsqueeze(-1)).sqrt()
    return ((1 - ratio) / 2).abs().amax(dim=(-2, -1))


def denman_beavers_sqrtm(a: torch.Tensor, iters: int) -> torch.Tensor:
    """Iterates Y_1..Y_N of the coupled Denman-Beavers iteration (with inverses).

    a: (B, n, n) symmetric positive definite -> (N, B, n, n), in a's dtype (autocast off
    inside). Stable: Y_k and Z_k correct each other, so round-off is not amplified (Higham,
    Functions of Matrices, Sec. 6.4).
    """
    y, z = a.clone(), torch.eye(a.shape[-1], dtype=a.dtype, device=a.device).expand_as(a).clone()
    out = []
    with no_autocast(a.device):
        for _ in range(iters):
            y, z = 0.5 * (y + torch.linalg.inv(z)), 0.5 * (z + torch.linalg.inv(y))
            out.append(y)
    return torch.stack(out)


def newton_schulz_prenormalised(
    a: torch.Tensor, iters: int, prenormalisation: str = "trace"
) -> torch.Tensor:
    """Coupled Newton-Schulz with a chosen pre-normalisation and its post-compensation.

    prenormalisation: 'trace' (iSQRT-COV's, what :func:`gsoplib.ops.sqrtm_newton_schulz` does),
    'frobenius' (A / ||A||_F, the other norm iSQRT-COV discusses) or 'none' (iterate on A
    itself). a: (B, n, n) -> (B, n, n) ~ a^(1/2), in a's dtype (autocast off inside); inf/NaN
    where it diverges.
    """
    if prenormalisation not in PRENORMALISATIONS:
        raise ValueError(
            f"prenormalisation must be one of {', '.join(PRENORMALISATIONS)}, "
            f"got {prenormalisation!r}"
        )
    if prenormalisation == "trace":
        scale = torch.diagonal(a, dim1=-2, dim2=-1).sum(-1)
    elif prenormalisation == "frobenius":
        scale = torch.linalg.matrix_norm(a)
    else:
        scale = torch.ones(a.shape[0], dtype=a.dtype)
    scale = scale.view(-1, 1, 1)
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    with no_autocast(a.device):  # in a's dtype under autocast too, as sqrtm_newton_schulz
        y, z = a / scale, eye.expand_as(a)
        for _ in range(iters):
            t = 0.5 * (3 * eye - z @ y)
            y, z = y @ t, t @ z
        return y * scale.sqrt()


def relative_errors(iterates: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """||X_k - a^(1/2)||_F / ||a^(1/2)||_F per iterate: (N, B, n, n), (B, n, n) -> (N, B).

    The reference is :func:`gsoplib.ops.sqrtm_eigh` in float64; a diverged iterate gives inf.
    """
    exact = sqrtm_eigh(a.double())
    err = torch.linalg.matrix_norm(iterates.double() - exact) / torch.linalg.matrix_norm(exact)
    return torch.nan_to_num(err, nan=math.inf, posinf=math.inf)


def iterations_to_tolerance(errors: torch.Tensor, tol: float) -> torch.Tensor:
    """First N (1-based) with error < tol per column of an (N, B) error table; 0 where none."""
    below = errors < tol
    first = below.double().argmax(dim=0) + 1
    return torch.where(below.any(dim=0), first, torch.zeros_like(first))


def example_spectrum(
    n: int, condition: float, decay: float = 1.0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A (1, n, n) float64 symmetric positive definite matrix and its eigenvalues (n,).

    lambda_i = condition^(-(i / (n - 1))^decay), i = 0..n-1, rescaled to trace n (the scale of
    a correlation matrix): lambda_max / lambda_min = condition. decay = 1 is a geometric
    spectrum; decay < 1 drops quickly into a long tail of small eigenvalues (what deep features'
    covariances look like); decay > 1 keeps most eigenvalues near the top. Random orthogonal
    eigenvectors from ``seed``.
    """
    if n < 2 or condition < 1 or decay <= 0:
        raise ValueError(
            f"example_spectrum needs n >= 2, condition >= 1 and decay > 0, "
            f"got n={n}, condition={condition}, decay={decay}"
        )
    position = torch.linspace(0, 1, n, dtype=torch.float64)
    lam = torch.as_tensor(float(condition), dtype=torch.float64) ** (-(position**decay))
    lam = lam * n / lam.sum()
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=generator))
    return ((q * lam) @ q.T).unsqueeze(0), lam


__all__ = [
    "PRENORMALISATIONS",
    "denman_beavers_sqrtm",
    "iterations_to_tolerance",
    "newton_schulz_polynomial",
    "newton_schulz_prenormalised",
    "ns_scalar_map",
    "ns_scalar_orbit",
    "ns_scalar_regime",
    "plain_newton_amplification",
    "plain_newton_sqrtm",
    "relative_errors",
    "example_spectrum",
]
