"""The authors' covariance layer as they wrote its backward: a reference for what it keeps.

The GSoP-Net and iSQRT-COV authors' covariance layer computes GM-SOP Eq. 5's X I_hat X^T with an
explicit (M, M) centring matrix I_hat = (1/M)(I - 11^T/M), copied once per sample, inside a
hand-written autograd function: its forward saves the input X and I_hat for the backward, and its
backward is dL/dX = (G + G^T) X I_hat (G = dL/dSigma). So it keeps 4 (M^2 + cM) bytes per sample in
float32, where plain autograd through the same two products (:func:`covariance_centring_matrix`)
also keeps the product X I_hat: 4 (M^2 + 2cM). gsoplib's :func:`covariance` keeps X alone, 4cM.

Only for measuring and teaching (notebook 01, section 2): compute covariances with
:func:`gsoplib.ops.covariance`.

Examples:
    >>> import torch
    >>> from gsoplib.ops import covariance, saved_tensor_bytes
    >>> x = torch.randn(2, 8, 5, 5, requires_grad=True)
    >>> torch.allclose(authors_covpool(x), covariance(x), atol=1e-6)
    True
    >>> saved_tensor_bytes(lambda: authors_covpool(x)) == 2 * 4 * (25 * 25 + 8 * 25)
    True
    >>> shared = saved_tensor_bytes(lambda: authors_covpool(x, shared_i_hat=True))
    >>> shared == 4 * (25 * 25 + 2 * 8 * 25)
    True
"""

from __future__ import annotations

import torch

from ._precision import compute_dtype, no_autocast


class _CentringMatrixCovariance(torch.autograd.Function):
    """Sigma = X I_hat X^T saving (X, I_hat); backward (G + G^T) X I_hat."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, i_hat: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, i_hat)
        return x.bmm(i_hat).bmm(x.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, i_hat = ctx.saved_tensors
        return (grad + grad.transpose(1, 2)).bmm(x).bmm(i_hat), None


def authors_covpool(x: torch.Tensor, *, shared_i_hat: bool = False) -> torch.Tensor:
    """Channel covariance by GM-SOP Eq. 5's centring matrix, keeping what the authors' layer keeps.

    Args:
        x: (B, C, H, W) or (B, C, M) features; M = H*W positions.
        shared_i_hat: False (the authors' code) copies I_hat for every sample, a (B, M, M) tensor;
            True uses one (M, M) I_hat, expanded over the batch without a copy.

    Returns:
        (B, C, C) Sigma = X I_hat X^T = (1/M) X_c X_c^T, float32 (float64 for float64 ``x``),
        autocast off. Saved for the backward: X ((B, C, M)) and I_hat ((B, M, M), or one (M, M)
        when shared): 4 (M^2 + CM) bytes per sample in float32, or 4 M^2 once + 4 CM per sample.
    """
    if x.dim() == 4:
        x = x.flatten(2)
    if x.dim() != 3:
        raise ValueError(
            f"authors_covpool expects (B, C, H, W) or (B, C, M), got shape {tuple(x.shape)}"
        )
    b, _, m = x.shape
    with no_autocast(x.device):
        x = x.to(compute_dtype(x.dtype))
        eye = torch.eye(m, device=x.device, dtype=x.dtype)
        i_hat = ((eye - 1.0 / m) / m).expand(b, m, m)
        return _CentringMatrixCovariance.apply(x, i_hat if shared_i_hat else i_hat.contiguous())


__all__ = ["authors_covpool"]
