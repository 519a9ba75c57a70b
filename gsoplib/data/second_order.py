"""A generated "second-order" dataset: classes that differ only in how channels co-vary.

Each image is a stationary Gaussian field with C channels. Every class has the same per-pixel
mean (0) and variance (1) in every channel and the same spatial smoothness; class k differs only
in its C x C channel correlation matrix R_k, whose off-diagonal entries are +rho or -rho in the
k-th sign pattern. So:

- Global average pooling of any *linear* map of the image sees E[w^T x] = 0 for every class: the
  class is invisible to first-order statistics. A first-order network can only find it by building
  products of channels through its nonlinearities before it pools (E[relu(x_i + x_j)] grows with
  corr(x_i, x_j)), and must learn to do so from the labels.
- A covariance pool reads R_k up to one factor: E[Sigma] = (1 - a) W R_k W^T after a linear 1x1
  convolution W (GSoP-Net Sec. 3.1), a the share of the variance the image's own mean removes
  (notebook 01 derives it), so second-order pooling is the natural statistic here.

The per-image estimate of R_k is noisy (a smooth field has few independent pixels), so no model
reaches 100%: ``rho`` and ``smoothing`` set the difficulty. A first-order model that does well
anyway is a fair result, not a bug: the set is a stress test, not a guarantee.

Generation (all in torch, seeded): white noise z (C, H, W) per image; each channel is blurred by
a Gaussian of std ``smoothing`` pixels with circular padding (so every pixel has the same
statistics) and rescaled to unit variance; channels are then mixed per pixel by the Cholesky
factor L_k of R_k (x = L_k z), which gives Cov(x at a pixel) = R_k exactly and leaves the
spatial autocorrelation the same for all classes. Images are stored as uint8: 128 + 42.5 x,
clipped to [0, 255] (clipping touches 0.3% of pixels, identically for every class).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

PIXEL_CENTRE = 128.0
PIXEL_SCALE = 42.5
MEAN = PIXEL_CENTRE / 255.0
STD = PIXEL_SCALE / 255.0


def sign_patterns(channels: int, num_classes: int) -> list[tuple[int, ...]]:
    """The first ``num_classes`` sign patterns over the channel pairs (i < j), row-major.

    Returns a list of tuples of +1/-1, one per pair, in the order of ``itertools.combinations``.
    """
    pairs = channels * (channels - 1) // 2
    if channels < 2:
        raise ValueError(f"the second-order set needs at least 2 channels, got {channels}")
    if not 2 <= num_classes <= 2**pairs:
        raise ValueError(
            f"num_classes must be between 2 and {2**pairs} for {channels} channels "
            f"(one class per sign pattern of the {pairs} channel pairs), got {num_classes}"
        )
    patterns = itertools.product((1, -1), repeat=pairs)
    return [tuple(p) for p in itertools.islice(patterns, num_classes)]


def correlation_matrices(channels: int, num_classes: int, rho: float) -> torch.Tensor:
    """(num_classes, C, C) float64 correlation matrices: unit diagonal, +-rho off the diagonal.

    Raises ValueError if a pattern is not positive definite at this rho (for C = 3 every pattern
    is when rho < 0.5: the all-negative one has smallest eigenvalue 1 - 2 rho).
    """
    pairs = list(itertools.combinations(range(channels), 2))
    mats = torch.eye(channels, dtype=torch.float64).repeat(num_classes, 1, 1)
    for k, pattern in enumerate(sign_patterns(channels, num_classes)):
        for (i, j), sign in zip(pairs, pattern):
            mats[k, i, j] = mats[k, j, i] = sign * rho
    smallest = torch.linalg.eigvalsh(mats)[:, 0]
    if (smallest <= 1e-6).any():
        raise ValueError(
            f"rho={rho} makes a class's correlation matrix singular or indefinite for "
            f"{channels} channels; choose a smaller rho (for 3 channels, rho < 0.5)"
        )
    return mats


def class_names(channels: int, num_classes: int) -> list[str]:
    """Names like 'corr(+,+,-)': the signs of corr(x_0, x_1), corr(x_0, x_2), corr(x_1, x_2)."""
    return [
        "corr(" + ",".join("+" if s > 0 else "-" for s in p) + ")"
        for p in sign_patterns(channels, num_classes)
    ]


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def smooth_unit_variance(z: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur each channel of (N, C, H, W) white noise; rescale so each pixel has variance 1.

    The generator's own blur, public so that the share a of E[Sigma] = (1 - a) R_k can be
    computed from exactly the filter the images were made with (notebook 01,
    ``viz.lessons_covariance.centring_share``).

    A separable blur with 1-D kernel k turns unit white noise into variance (sum k^2)^2;
    dividing by its square root, sum k^2, restores unit variance at every pixel (circular
    padding keeps that true at the borders too).
    """
    if sigma <= 0:
        return z
    k = _gaussian_kernel(sigma).to(z.dtype)
    r = k.numel() // 2
    n, c, h, w = z.shape
    flat = z.reshape(n * c, 1, h, w)
    flat = F.conv2d(F.pad(flat, (r, r, 0, 0), mode="circular"), k.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, r, r), mode="circular"), k.view(1, 1, -1, 1))
    return flat.reshape(n, c, h, w) / (k.square().sum())


def generate(
    num_samples: int,
    *,
    image_size: int = 32,
    channels: int = 3,
    num_classes: int = 8,
    rho: float = 0.25,
    smoothing: float = 1.5,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, C, S, S) uint8 and balanced labels (N,) int64, reproducible from ``seed``."""
    if image_size < 2 * math.ceil(3 * max(smoothing, 1 / 3)) + 1:
        raise ValueError(
            f"image_size={image_size} is too small for smoothing={smoothing}; "
            f"use at least {2 * math.ceil(3 * max(smoothing, 1 / 3)) + 1}"
        )
    chol = torch.linalg.cholesky(correlation_matrices(channels, num_classes, rho)).float()
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_samples) % num_classes
    labels = labels[torch.randperm(num_samples, generator=g)]
    images = torch.empty(num_samples, channels, image_size, image_size, dtype=torch.uint8)
    chunk = 2048
    for start in range(0, num_samples, chunk):
        y = labels[start : start + chunk]
        z = torch.randn(len(y), channels, image_size, image_size, generator=g)
        z = smooth_unit_variance(z, smoothing)
        x = torch.einsum("nij,njhw->nihw", chol[y], z)
        pixels = (PIXEL_CENTRE + PIXEL_SCALE * x).round_().clamp_(0, 255)
        images[start : start + chunk] = pixels.to(torch.uint8)
    return images, labels
