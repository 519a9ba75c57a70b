"""How far a layer's Newton-Schulz "square root" is from the square root, and the rank of the
covariance it was taken of (notebook 06; iSQRT-COV, Li et al. CVPR 2018, Eq. 5-7).

After the trace pre-normalisation A / tr(A) most eigenvalues of a C x C covariance are near
1/C or below, where N = 3 coupled Newton-Schulz iterations are far from converged: the map
lambda -> y_3(lambda) is about (3/2)^3 lambda there, linear rather than a square root. And a
covariance of M centred positions has rank at most M - 1 (Sigma = X^T J X with J 1 = 0), so for
C > M - 1 at least C - M + 1 eigenvalues are zero.

Examples:
    >>> import torch
    >>> from gsoplib.ops import covariance, sqrtm_newton_schulz
    >>> cov = covariance(torch.randn(2, 8, 6, 6, dtype=torch.float64))   # (B, C, C)
    >>> check = compare_root(cov, sqrtm_newton_schulz(cov, iters=30))    # near the exact root
    >>> bool(check.relative_error.max() < 1e-6), check.rank.tolist()
    (True, [8, 8])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .ops import sqrtm_eigh

#: An eigenvalue counts towards the rank when above this fraction of the largest.
RANK_RTOL = 1e-5


def numerical_rank(matrices: torch.Tensor, rtol: float = RANK_RTOL) -> torch.Tensor:
    """(B, n, n) symmetric -> (B,) number of eigenvalues above ``rtol`` times the largest."""
    evals = torch.linalg.eigvalsh(matrices.detach().to(torch.float64))
    return (evals > rtol * evals.amax(dim=-1, keepdim=True)).sum(dim=-1)


@dataclass
class RootComparison:
    """A covariance against its computed root, per image, in float64.

    cov_eigenvalues, root_eigenvalues: (B, C) descending; sqrt_eigenvalues: (B, C) the square
    roots of the covariance's (clamped at 0), what an exact root's eigenvalues would be;
    relative_error: (B,) ||root - Sigma^(1/2)||_F / ||Sigma^(1/2)||_F against the eigh root;
    rank: (B,) :func:`numerical_rank` of the covariance.
    """

    cov_eigenvalues: torch.Tensor
    root_eigenvalues: torch.Tensor
    sqrt_eigenvalues: torch.Tensor
    relative_error: torch.Tensor
    rank: torch.Tensor

    def eigenvalue_error(self) -> torch.Tensor:
        """(B, C) relative error of each root eigenvalue against the square root of the
        covariance's, over the non-zero ones (NaN past the rank)."""
        ratio = self.root_eigenvalues / self.sqrt_eigenvalues - 1
        keep = torch.arange(ratio.shape[1]) < self.rank.unsqueeze(1)
        return torch.where(keep, ratio, torch.full_like(ratio, float("nan")))


def compare_root(cov: torch.Tensor, root: torch.Tensor) -> RootComparison:
    """Compare ``root`` (B, C, C), e.g. an iSQRT-COV head's ``tap_cov_sqrt``, with the exact
    square root of ``cov`` (B, C, C), its ``tap_cov``.

    Raises:
        ValueError: the shapes differ or are not (B, C, C).
    """
    if cov.shape != root.shape or cov.dim() != 3 or cov.shape[1] != cov.shape[2]:
        raise ValueError(f"compare_root expects two (B, C, C) tensors of one shape, got "
                         f"{tuple(cov.shape)} and {tuple(root.shape)}")
    cov, root = cov.detach().to(torch.float64), root.detach().to(torch.float64)
    exact = sqrtm_eigh(cov)
    cov_evals = torch.linalg.eigvalsh(cov).flip(-1)
    root_evals = torch.linalg.eigvalsh((root + root.transpose(1, 2)) / 2).flip(-1)
    error = torch.linalg.matrix_norm(root - exact) / torch.linalg.matrix_norm(exact)
    return RootComparison(cov_evals, root_evals, cov_evals.clamp(min=0).sqrt(), error,
                          numerical_rank(cov))


__all__ = ["RANK_RTOL", "RootComparison", "compare_root", "numerical_rank"]
