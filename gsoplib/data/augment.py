"""Standard augmentation and normalisation on whole batches, on the batch's own device.

A random crop of the input size from the image zero-padded by ``padding`` pixels, and a random
horizontal flip: the augmentation of the ResNet CIFAR recipe that GSoP-Net follows ("horizontal
flip and random translation", Sec. 4). Both are one gather over the batch with per-sample
offsets, so no Python runs per sample and the work stays on the GPU when the batch is there.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def crop_flip(
    images: torch.Tensor, padding: int, flip: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Randomly crop (from a zero-padded copy) and flip each image of a batch.

    Args:
        images: (B, C, H, W), any dtype (uint8 stays uint8).
        padding: p; each crop's top-left corner is uniform over the (2p + 1)^2 offsets, as in
            torchvision's ``RandomCrop(size, padding=p)``.
        flip: flip each image left-right with probability 1/2.
        generator: a generator on ``images.device`` for reproducible draws.
    Returns:
        (B, C, H, W), same dtype and device.
    """
    b, c, h, w = images.shape
    if padding == 0 and not flip:
        return images
    dev = images.device
    rows = torch.arange(h, device=dev).expand(b, h)
    cols = torch.arange(w, device=dev).expand(b, w)
    if padding:
        images = F.pad(images, (padding, padding, padding, padding))
        shift = torch.randint(0, 2 * padding + 1, (2, b, 1), device=dev, generator=generator)
        rows, cols = rows + shift[0], cols + shift[1]
    if flip:
        mirror = torch.rand(b, 1, device=dev, generator=generator) < 0.5
        cols = torch.where(mirror, cols.flip(1), cols)
    width = w + 2 * padding
    index = (rows.unsqueeze(2) * width + cols.unsqueeze(1)).view(b, 1, h * w).expand(b, c, h * w)
    return images.flatten(2).gather(2, index).view(b, c, h, w)


def normalize(
    images: torch.Tensor, mean: Sequence[float], std: Sequence[float], dtype=torch.float32
) -> torch.Tensor:
    """uint8 pixels (B, C, H, W) in [0, 255] -> (x / 255 - mean) / std per channel, as ``dtype``."""
    scale = torch.tensor([255.0 * s for s in std], device=images.device, dtype=dtype)
    shift = torch.tensor([255.0 * m for m in mean], device=images.device, dtype=dtype)
    return (images.to(dtype) - shift.view(1, -1, 1, 1)) / scale.view(1, -1, 1, 1)
