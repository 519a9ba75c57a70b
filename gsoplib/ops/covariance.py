"""Covariance pooling of convolutional features (GSoP-Net Sec. 3.1 and 3.2; iSQRT-COV Eq. 1).

The authors build the centring matrix I_hat = (1/M)(I - 11^T/M) and compute X I_hat X^T, which
costs an (M, M) matrix per sample and 2CM^2 extra FLOPs. Here the features are centred directly:
Sigma = (1/M) Xc Xc^T with Xc = X - mean, one batched GEMM and no (M, M) tensor.
"""

from __future__ import annotations

import torch

from ._precision import compute_dtype, no_autocast


class _Covariance(torch.autograd.Function):
    """Sigma = (1/M) Xc Xc^T saving only X: backward recomputes Xc instead of keeping it.

    With G the upstream gradient, dL/dXc = (G + G^T) Xc / M, and the centring's own backward
    (subtracting the mean over positions) vanishes because Xc has zero mean over positions:
    dL/dX = (G + G^T) Xc / M = S X - (S mu) 1^T with S = (G + G^T) / M, formed in one (B, C, M)
    buffer. So the op saves nothing beyond its input and never holds two copies of X at once.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        xc = x - x.mean(dim=-1, keepdim=True)
        return torch.bmm(xc, xc.transpose(1, 2)).div_(x.shape[-1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        sym = (grad + grad.transpose(1, 2)).div_(x.shape[-1])
        mean = x.mean(dim=-1, keepdim=True)
        if x.shape[-1] > 1 and x.stride(1) == 1:
            # Position-major x (a flattened channels_last map): compute (dL/dX)^T = X^T S - 1 mu^T S
            # so the gradient comes out in x's own layout, and the conv before it gets a
            # channels_last gradient without a copy.
            xt = x.transpose(1, 2)
            return torch.bmm(xt, sym).sub_(torch.bmm(mean.transpose(1, 2), sym)).transpose(1, 2)
        return torch.bmm(sym, x).sub_(torch.bmm(sym, mean))


def covariance(x: torch.Tensor) -> torch.Tensor:
    """Channel covariance of feature maps, the biased (1/M) estimate.

    Args:
        x: (B, C, H, W) or (B, C, M) features; M = H*W positions are the samples.

    Returns:
        (B, C, C) symmetric covariance, float32 (float64 if ``x`` is float64), computed with
        autocast disabled. Sigma_b = (1/M) (X_b - mu_b 1^T)(X_b - mu_b 1^T)^T. Only ``x`` is
        saved for backward. A channels_last ``x`` is used in place, without a copy, and its
        gradient is channels_last too: one batched GEMM forward on the centred features, one
        (plus a matrix-vector product for the mean) backward.
    """
    if x.dim() == 4:
        x = x.flatten(2)
    if x.dim() != 3:
        raise ValueError(
            f"covariance expects (B, C, H, W) or (B, C, M), got shape {tuple(x.shape)}"
        )
    with no_autocast(x.device):
        return _Covariance.apply(x.to(compute_dtype(x.dtype)))


def position_covariance(x: torch.Tensor) -> torch.Tensor:
    """Position covariance (GSoP-Net Sec. 3.2): positions are the variables, channels the samples.

    Args:
        x: (B, C, h, w) reduced (and usually pooled) feature map.

    Returns:
        (B, hw, hw) covariance, centred over channels and divided by C. The authors' code
        subtracts the mean with a 1/64 constant where 1/C is meant; this is the correct centring.
    """
    if x.dim() != 4:
        raise ValueError(f"position_covariance expects (B, C, h, w), got shape {tuple(x.shape)}")
    return covariance(x.flatten(2).transpose(1, 2))


def covariance_centring_matrix(x: torch.Tensor) -> torch.Tensor:
    """The authors' formulation X I_hat X^T with an explicit (M, M) centring matrix.

    Kept only as a reference for tests and benchmarks: it is what :func:`covariance` avoids.
    Like the authors' code it materialises I_hat once per sample, a (B, M, M) tensor.
    x: (B, C, H, W) or (B, C, M) -> (B, C, C).
    """
    if x.dim() == 4:
        x = x.flatten(2)
    b, _, m = x.shape
    with no_autocast(x.device):
        x = x.to(compute_dtype(x.dtype))
        eye = torch.eye(m, device=x.device, dtype=x.dtype)
        i_hat = ((eye - torch.full_like(eye, 1.0 / m)) / m).repeat(b, 1, 1)  # as the authors do
        return x.bmm(i_hat).bmm(x.transpose(1, 2))
