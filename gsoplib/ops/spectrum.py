"""How concentrated a covariance's spectrum is: the largest eigenvalue's share of the trace.

A covariance whose energy sits in one direction has a share near 1; a white one 1/n. Matrix
power normalisation (the square root of iSQRT-COV, GSoP-Net Sec. 3.3; GM-SOP Eq. 5) takes the
square root of every eigenvalue, which lowers the share: the spectrum is flatter.
"""

from __future__ import annotations

import torch


def top_eigenvalue_share(matrices: torch.Tensor) -> torch.Tensor:
    """lambda_max / trace for symmetric PSD matrices: (..., n, n) -> (...), in float64.

    Eigenvalues are computed by ``eigvalsh`` in float64 and clamped at 0 (round-off can make the
    smallest slightly negative); an all-zero matrix gives 0.
    """
    if matrices.dim() < 2 or matrices.shape[-1] != matrices.shape[-2]:
        raise ValueError(f"expected (..., n, n) matrices, got shape {tuple(matrices.shape)}")
    evals = torch.linalg.eigvalsh(matrices.detach().double()).clamp(min=0)
    return evals[..., -1] / evals.sum(-1).clamp(min=1e-30)


__all__ = ["top_eigenvalue_share"]
