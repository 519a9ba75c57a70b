"""Covariance pooling of convolutional features (GSoP-Net Sec. 3.1 and 3.2; iSQRT-COV Eq. 1).

The authors build the centring matrix I_hat = (1/M)(I - 11^T/M) and compute X I_hat X^T, which
costs an (M, M) matrix per sample and 2CM^2 extra FLOPs. Here the features are centred directly:
Sigma = (1/M) Xc Xc^T with Xc = X - mean, one batched GEMM and no (M, M) tensor.
"""

from __future__ import annotations

import torch

from ._precision import compute_dtype, no_autocast


def covariance(x: torch.Tensor) -> torch.Tensor:
    """Channel covariance of feature maps, the biased (1/M) estimate.

    Args:
        x: (B, C, H, W) or (B, C, M) features; M = H*W positions are the samples.

    Returns:
        (B, C, C) symmetric covariance, float32 (float64 if ``x`` is float64), computed with
        autocast disabled. Sigma_b = (1/M) (X_b - mu_b 1^T)(X_b - mu_b 1^T)^T.
    """
    if x.dim() == 4:
        x = x.flatten(2)
    if x.dim() != 3:
        raise ValueError(
            f"covariance expects (B, C, H, W) or (B, C, M), got shape {tuple(x.shape)}"
        )
    m = x.shape[-1]
    with no_autocast(x.device):
        x = x.to(compute_dtype(x.dtype))
        xc = x - x.mean(dim=-1, keepdim=True)
        return torch.bmm(xc, xc.transpose(1, 2)).div_(m)


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
    x: (B, C, H, W) or (B, C, M) -> (B, C, C).
    """
    if x.dim() == 4:
        x = x.flatten(2)
    b, _, m = x.shape
    with no_autocast(x.device):
        x = x.to(compute_dtype(x.dtype))
        eye = torch.eye(m, device=x.device, dtype=x.dtype)
        i_hat = (eye - torch.full_like(eye, 1.0 / m)) / m
        return x.bmm(i_hat.expand(b, m, m)).bmm(x.transpose(1, 2))
