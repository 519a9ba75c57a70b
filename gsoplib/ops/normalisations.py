"""Ways to normalise a covariance before a classifier, side by side (GM-SOP Sec. 2.2; B-CNN).

    raw            Sigma
    signed_sqrt    sign(Sigma) * sqrt(|Sigma|) element-wise, then divided by its Frobenius norm
                   (the bilinear CNN's normalisation: it rescales entries, not the spectrum)
    ns_sqrt        Newton-Schulz root, N iterations (iSQRT-COV, GSoP-Net2, GM-SOP)
    eigh_sqrt      the exact root U diag(sqrt(lambda)) U^T
    log            the matrix logarithm U diag(log(max(lambda, eps))) U^T (log-Euclidean)

Matrix power normalisation Sigma^p is the Power-Euclidean metric's map; (Sigma^p - I) / p tends
to log(Sigma) as p -> 0 (:func:`power_euclidean`), which is why GM-SOP calls the square root
(p = 1/2) an approximation of the Log-Euclidean metric that avoids the log's blow-up at tiny
eigenvalues.
"""

from __future__ import annotations

import torch

from ._precision import no_autocast
from .sqrtm import _check_square, sqrtm_eigh, sqrtm_newton_schulz
from .triu import triu_vec

NORMALISATIONS = ("raw", "signed_sqrt", "ns_sqrt", "eigh_sqrt", "log")


def logm_eigh(a: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Matrix logarithm of symmetric PSD (B, n, n) matrices, eigenvalues clamped to >= eps.

    In a's dtype, autocast off inside (as every covariance, trace and root op of gsoplib)."""
    _check_square(a, "logm_eigh")
    with no_autocast(a.device):
        evals, u = torch.linalg.eigh(a)
        return (u * evals.clamp(min=eps).log().unsqueeze(-2)) @ u.transpose(-1, -2)


def power_euclidean(a: torch.Tensor, p: float, eps: float = 1e-12) -> torch.Tensor:
    """(A^p - I) / p for symmetric PSD (B, n, n) matrices by eigh; p > 0."""
    _check_square(a, "power_euclidean")
    if p <= 0:
        raise ValueError(f"p must be > 0, got {p}")
    with no_autocast(a.device):  # in a's dtype under autocast too
        evals, u = torch.linalg.eigh(a)
        mapped = (evals.clamp(min=eps) ** p - 1) / p
        return (u * mapped.unsqueeze(-2)) @ u.transpose(-1, -2)


def normalise_covariance(cov: torch.Tensor, kind: str, iters: int = 3) -> torch.Tensor:
    """One of :data:`NORMALISATIONS` applied to (B, n, n) covariances -> (B, n(n+1)/2) vectors.

    The result is vectorised by :func:`gsoplib.ops.triu_vec`, as the heads do; ``iters`` is N
    for 'ns_sqrt'.
    """
    _check_square(cov, "normalise_covariance")
    if kind == "raw":
        out = cov
    elif kind == "signed_sqrt":
        out = cov.sign() * cov.abs().sqrt()
        out = out / torch.linalg.matrix_norm(out).clamp(min=1e-12).view(-1, 1, 1)
    elif kind == "ns_sqrt":
        out = sqrtm_newton_schulz(cov, iters=iters)
    elif kind == "eigh_sqrt":
        out = sqrtm_eigh(cov)
    elif kind == "log":
        out = logm_eigh(cov)
    else:
        raise ValueError(f"kind must be one of {', '.join(NORMALISATIONS)}, got {kind!r}")
    return triu_vec(out)


__all__ = ["NORMALISATIONS", "logm_eigh", "normalise_covariance", "power_euclidean"]
